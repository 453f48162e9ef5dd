"""A shutdown that runs long prints every thread's stack once (common/runtime.py), so a
stuck one shows where it waits; one that ends in time prints nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

_AFTER_SIGTERM = """
import os, signal, sys, threading, time
from common.runtime import stop_event_on_signals
stop = stop_event_on_signals(stacks_after=0.5)
def stuck_in_shutdown():
    threading.Event().wait()
threading.Thread(target=stuck_in_shutdown, name="stuck", daemon=True).start()
os.kill(os.getpid(), signal.SIGTERM)
stop.wait(5)
time.sleep(float(sys.argv[1]))
"""


def _run(seconds_after_stop: float) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_SIGTERM, str(seconds_after_stop)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stderr


def test_a_shutdown_that_runs_long_prints_where_every_thread_waits() -> None:
    stacks = _run(2.0)
    assert "Thread 0x" in stacks
    assert "stuck_in_shutdown" in stacks  # the stuck thread, by function name


def test_a_shutdown_that_ends_in_time_prints_no_stacks() -> None:
    assert "Thread 0x" not in _run(0.0)
