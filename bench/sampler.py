"""psutil on the service processes: CPU seconds and RSS, once or every second."""

from __future__ import annotations

import threading
import time

import psutil


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        times = psutil.Process(pid).cpu_times()
        out[name] = times.user + times.system + times.children_user + times.children_system
    return out


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    return {name: psutil.Process(pid).memory_info().rss / 1e6 for name, pid in pids.items()}


class RssSampler(threading.Thread):
    """Samples (monotonic time, {name: RSS MB}) every ``interval`` seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic(), rss_mb(self.pids)))
            self._halt.wait(self.interval)

    def stop(self) -> list[tuple[float, dict[str, float]]]:
        self._halt.set()
        self.join(5)
        return self.samples
