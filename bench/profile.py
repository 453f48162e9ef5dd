"""py-spy on the service processes while a run is going; a text summary of where time went."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


class Profiler:
    """``py-spy record --format raw`` per process (collapsed stacks), stopped with SIGINT."""

    def __init__(self, pids: dict[str, int], out_dir: Path, rate: int = 100) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.pids = pids
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        exe = Path(sys.executable).parent / "py-spy"
        self.binary = str(exe) if exe.exists() else (shutil.which("py-spy") or "")

    def start(self) -> bool:
        if not self.binary:
            return False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self._procs[name] = subprocess.Popen(
                [self.binary, "record", "-p", str(pid), "-r", str(self.rate), "--nonblocking",
                 "-f", "raw", "-o", str(self.out_dir / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=(self.out_dir / f"{name}.err").open("wb"))
        return True

    def stop(self) -> dict[str, Path]:
        for proc in self._procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in self._procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return {n: self.out_dir / f"{n}.txt" for n in self._procs
                if (self.out_dir / f"{n}.txt").exists()}


def load(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def summarise(path: Path, top: int = 15) -> dict[str, object]:
    """Samples (CPU, non-idle), top self frames, and inclusive time in our own code."""
    stacks = load(path)
    total = sum(stacks.values())
    leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for frames, count in stacks.items():
        leaf[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames if _is_ours(f)}:
            ours[frame] += count
    pct = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "self": [(f, pct(n)) for f, n in leaf.most_common(top)],
        "inclusive_ours": [(f, pct(n)) for f, n in ours.most_common(top)],
    }


def _is_ours(frame: str) -> bool:
    return "services/" in frame or "common/" in frame


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module.py)``, lines folded."""
    name, _, where = frame.partition(" (")
    module = where.rsplit(":", 1)[0]
    parts = module.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else module
    return f"{name} ({tail})"
