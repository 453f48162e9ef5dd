"""Results: one record per measurement, printed as it comes and saved as JSON at the end."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Throughput:
    name: str
    mails: int
    bytes: int
    seconds: float
    note: str = ""

    @property
    def mails_per_s(self) -> float:
        return self.mails / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.name:<34} {self.mails:>6} mails {self.bytes / 1e6:>8.1f} MB "
                f"{self.seconds:>8.2f} s {self.mails_per_s:>8.1f} mails/s "
                f"{self.mb_per_s:>7.2f} MB/s  {self.note}")


@dataclass
class Report:
    started: float = field(default_factory=time.time)
    sections: dict[str, Any] = field(default_factory=dict)
    # Each part starts fresh service processes, so record the tree at both ends.
    source_at_start: dict[str, Any] = field(default_factory=lambda: source())  # noqa: PLW0108 - defined below

    def add(self, section: str, key: str, value: Any) -> None:
        if isinstance(value, Throughput):
            print(value.line(), flush=True)
            value = {**asdict(value), "mails_per_s": value.mails_per_s, "mb_per_s": value.mb_per_s}
        else:
            print(f"[{section}] {key}: {value}", flush=True)
        self.sections.setdefault(section, {})[key] = value

    def save(self, argv: list[str]) -> Path:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / time.strftime("bench-%Y%m%d-%H%M%S.json")
        body = {"argv": argv, "machine": machine(), "versions": versions(),
                "source_at_start": self.source_at_start, "source_at_end": source(),
                "seconds": round(time.time() - self.started, 1), **self.sections}
        path.write_text(json.dumps(body, indent=2, default=str))
        return path


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), "?")
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
    return {"nproc": _run("nproc"), "cpu": cpu, "memory_gb": round(mem_kb / 1e6, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def versions() -> dict[str, str]:
    out = {name: _version(name) for name in
           ("dramatiq", "pika", "psycopg", "IMAPClient", "msal", "psutil", "py-spy")}
    out["dovecot"] = _run("dovecot", "--version")
    fetchmail = _run("fetchmail", "--version").splitlines()
    out["fetchmail"] = next((ln for ln in fetchmail if "release" in ln), "?")
    out["postgresql"] = _run("psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc",
                             "SHOW server_version")
    out["rabbitmq"] = _run("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server")
    return out


def source() -> dict[str, Any]:
    """The commit measured, and the files that differed from it in what is measured: the
    services, and the stand-in, whose Dovecot settings move the figures too."""
    dirty = _run("git", "status", "--short", "--", "services", "common", "standin").splitlines()
    return {"commit": _run("git", "rev-parse", "--short", "HEAD"), "uncommitted": dirty}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _run(*cmd: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip()
