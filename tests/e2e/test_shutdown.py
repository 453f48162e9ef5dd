"""A worker stops on SIGTERM whichever of its threads the kernel hands the signal to.

``kill`` sends a signal to the process, and Linux may deliver it to any thread that does
not block it; CPython runs the Python handler only in the main thread. A main thread
blocked in an untimed wait did not run it: a fetcher went on polling for 30 s after its
SIGTERM until it was killed (common/runtime.py).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

import psutil

from tests.support.services import Services

_SYS_TGKILL = 234  # x86_64; tgkill(2) has no wrapper in Python's os module


def _tgkill(pid: int, tid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def test_a_sigterm_taken_by_a_worker_thread_still_stops_the_fetcher(
    start_services: Callable[..., Services],
) -> None:
    services = start_services("fetcher")
    fetcher = services.running["fetcher"]
    pid = fetcher.process.pid
    others = [t.id for t in psutil.Process(pid).threads() if t.id != pid]
    assert others, "the fetcher runs its workers on threads"

    _tgkill(pid, others[-1], signal.SIGTERM)

    assert fetcher.process.wait(timeout=20) == 0
    assert "shutdown_requested" in fetcher.logs()
