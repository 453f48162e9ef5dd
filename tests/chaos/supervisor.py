"""Bandeja's four processes under a tiny "kubelet": restart whatever exits.

A process the suite killed is restarted at once (a pod's first restart). A process that
exited on its own is an *unexpected exit*: recorded with its code and log tail, then
restarted with a growing delay, like Kubernetes' CrashLoopBackOff (scaled down).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.services import ServiceProcess, free_port

SERVICES = ("auth", "fetcher", "processor", "relay")


@dataclass
class Exit:
    service: str
    code: int | None
    at: float
    log_tail: str


@dataclass
class Slot:
    name: str
    port: int
    process: ServiceProcess
    killed_by_us: bool = False
    restarts_by_us: int = 0
    unexpected: list[Exit] = field(default_factory=list)
    backoff: float = 1.0
    restart_at: float | None = None
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.slots: dict[str, Slot] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        for name in SERVICES:
            port = int(self.env["BANDEJA_HTTP_PORT"]) if name == "auth" else free_port()
            self.slots[name] = Slot(name, port, ServiceProcess(name, self.env, self.log_dir, port))
        for slot in self.slots.values():
            slot.process.wait_ready(60)
        self._thread.start()
        return self

    def kill(self, name: str) -> int:
        """SIGKILL one service and restart it right away; returns the killed pid."""
        with self._lock:
            slot = self.slots[name]
            pid = slot.process.process.pid
            slot.killed_by_us = True
            slot.process.process.send_signal(signal.SIGKILL)
            slot.process.process.wait(10)
            self._respawn(slot)
            slot.restarts_by_us += 1
            slot.killed_by_us = False
        return pid

    def _respawn(self, slot: Slot) -> None:
        slot.process.stop()  # closes the log handle; the process is already gone
        slot.process = ServiceProcess(slot.name, self.env, self.log_dir, slot.port)
        slot.started = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                for slot in self.slots.values():
                    self._check(slot)

    def _check(self, slot: Slot) -> None:
        now = time.monotonic()
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                slot.restart_at = None
                self._respawn(slot)
            return
        code = slot.process.process.poll()
        if code is None or slot.killed_by_us:
            if code is None and slot.backoff > 1.0 and now - slot.started > 30:
                slot.backoff = 1.0
            return
        tail = slot.process.logs()[-4000:]
        slot.unexpected.append(Exit(slot.name, code, time.time(), tail))
        slot.restart_at = now + slot.backoff
        slot.backoff = min(slot.backoff * 2, 20.0)

    def unexpected_exits(self) -> list[Exit]:
        return [e for slot in self.slots.values() for e in slot.unexpected]

    def status(self) -> dict[str, dict[str, object]]:
        """Per service: alive, /readyz code, restarts we caused, exits we did not."""
        out: dict[str, dict[str, object]] = {}
        for name, slot in self.slots.items():
            ready: int | str
            try:
                ready = requests.get(f"{slot.process.ops_url}/readyz", timeout=3).status_code
            except requests.RequestException as exc:
                ready = type(exc).__name__
            out[name] = {
                "alive": slot.process.process.poll() is None,
                "readyz": ready,
                "killed_and_restarted": slot.restarts_by_us,
                "unexpected_exits": len(slot.unexpected),
                "pid": slot.process.process.pid,
            }
        return out

    def wait_all_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if all(s["alive"] and s["readyz"] == 200 for s in status.values()):
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> dict[str, int]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        return {name: slot.process.stop() for name, slot in self.slots.items()}
