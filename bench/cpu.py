"""Where a run's CPU went: seconds per part of the system, from psutil, over one window.

Everything shares the same two cores, so the cost of a peer is not only its own process:
Dovecot, PostgreSQL and RabbitMQ work for it too. Dovecot forks one ``imap`` process per
session and it exits at LOGOUT, so its CPU is not in any snapshot; the machine-wide busy
time minus what the long-lived processes used is reported as ``exited`` for that reason.
"""

from __future__ import annotations

import os

import psutil

_RABBITMQ = {"beam.smp", "erl_child_setup", "epmd", "inet_gethost"}
_DOVECOT = {"dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats"}


def _group(proc: psutil.Process, services: dict[int, str], bench: int) -> str:
    if proc.pid in services:
        return services[proc.pid]
    if proc.pid == bench:
        return "bench process (bare loop, fetchmail child, event consumer)"
    name = proc.name()
    if name == "postgres":
        return "postgresql"
    if name in _RABBITMQ:
        return "rabbitmq"
    if name in _DOVECOT:
        return "dovecot"
    if "standin" in " ".join(proc.cmdline()):
        return "identity emulator"
    return "other"


def _snapshot(services: dict[int, str]) -> dict[int, tuple[str, float]]:
    bench = os.getpid()
    out = {}
    for proc in psutil.process_iter():
        try:
            times = proc.cpu_times()
            cpu = times.user + times.system
            if proc.pid == bench:  # fetchmail runs as a child of the bench and has exited
                cpu += times.children_user + times.children_system
            out[proc.pid] = (_group(proc, services, bench), cpu)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _machine_busy() -> float:
    times = psutil.cpu_times()
    busy: float = sum(times) - times.idle
    # iowait and steal exist on Linux only; they are idle time for this purpose.
    return busy - float(getattr(times, "iowait", 0.0)) - float(getattr(times, "steal", 0.0))


class CpuAccount:
    """``with CpuAccount(services) as account: ...`` then ``account.milliseconds_per(n)``."""

    def __init__(self, services: dict[str, int] | None = None) -> None:
        self._services = {pid: name for name, pid in (services or {}).items()}
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> CpuAccount:
        self._before = _snapshot(self._services)
        self._busy_before = _machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        after = _snapshot(self._services)
        busy = _machine_busy() - self._busy_before
        groups: dict[str, float] = {}
        for pid, (group, cpu) in after.items():
            start = self._before.get(pid, (group, 0.0))[1]
            groups[group] = groups.get(group, 0.0) + max(cpu - start, 0.0)
        groups["exited (Dovecot imap sessions, mostly)"] = max(busy - sum(groups.values()), 0.0)
        groups["machine total"] = busy
        self.seconds = groups

    def milliseconds_per(self, mails: int) -> dict[str, float]:
        ordered = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return {name: round(1000 * sec / max(mails, 1), 2) for name, sec in ordered if sec > 0.005}
