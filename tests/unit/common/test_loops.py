"""The shared background loop: heartbeat every turn, no wait while work is pending, one
pause after an error (instead of the idle wait), and a stop that ends it."""

from __future__ import annotations

import threading
import time

from structlog.testing import capture_logs

from common.health import Heartbeat
from common.loops import Loop, Pause


class Script:
    """Work that answers from a list (True: more pending; an exception: a failure) and
    stops the loop when the list runs out; it records each wait it was asked to do."""

    def __init__(self, stop: threading.Event, answers: list[bool | Pause | Exception]) -> None:
        self.stop = stop
        self.answers = answers
        self.calls = 0
        self.waits: list[float] = []

    def work(self) -> bool | Pause:
        self.calls += 1
        answer = self.answers.pop(0)
        if not self.answers:
            self.stop.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def wake(self, timeout: float) -> None:
        self.waits.append(timeout)


def test_pending_work_runs_again_without_waiting() -> None:
    """A turn that reports more work is followed at once by another; an idle turn waits
    on the wake-up (LISTEN) for the idle timeout."""
    stop = threading.Event()
    script = Script(stop, [True, True, False, False])
    Loop("t", work=script.work, idle_wait=7.0, wake=script.wake).run(stop)
    assert script.calls == 4
    assert script.waits == [7.0]  # after the first idle turn; the last one was stopped


def test_an_error_is_logged_once_and_paused_on_instead_of_the_idle_wait() -> None:
    """A failing turn is logged at the loop's level under its event name, the loop pauses
    ``error_pause`` (cut short by a stop) and carries on."""
    stop = threading.Event()
    script = Script(stop, [RuntimeError("database away"), False, False])
    paused = _record_stop_waits(stop)
    with capture_logs() as logs:
        Loop(
            "purge",
            work=script.work,
            idle_wait=60.0,
            wake=script.wake,
            error_pause=30.0,
            error_level="warning",
        ).run(stop)
    assert [(e["event"], e["log_level"]) for e in logs] == [("purge_failed", "warning")]
    assert logs[0]["exc_info"] is True  # a traceback unless the loop says otherwise
    assert paused == [30.0]
    assert script.calls == 3
    assert script.waits == [60.0]  # the idle wait only after the good turn


def _record_stop_waits(stop: threading.Event) -> list[float | None]:
    """The pauses the loop takes on ``stop`` (each returns at once)."""
    paused: list[float | None] = []
    real_wait = stop.wait
    stop.wait = lambda timeout=None: paused.append(timeout) or real_wait(0)  # type: ignore[method-assign,func-returns-value]
    return paused


def test_a_work_result_can_ask_for_a_pause_instead_of_the_idle_wait() -> None:
    """Work that handled a failure itself (a broker refusal only an operator can fix) asks
    for a longer pause; the loop takes it instead of waiting on the wake-up, logs nothing,
    and then goes back to its usual waits."""
    stop = threading.Event()
    script = Script(stop, [Pause(10.0), False, False])
    paused = _record_stop_waits(stop)
    with capture_logs() as logs:
        Loop("relay", work=script.work, idle_wait=1.0, wake=script.wake, error_pause=1.0).run(stop)
    assert paused == [10.0]
    assert script.waits == [1.0]
    assert logs == []


def test_an_outage_can_be_logged_without_a_traceback() -> None:
    """A loop whose errors are expected outages logs each as one line with the error's type
    and (shortened) text instead of a traceback that says nothing new every turn."""
    stop = threading.Event()
    script = Script(stop, [ConnectionError("broker away " + "x" * 500)])
    _record_stop_waits(stop)
    with capture_logs() as logs:
        Loop(
            "relay",
            work=script.work,
            idle_wait=1.0,
            error_level="warning",
            error_event="relay_error",
            error_traceback=False,
        ).run(stop)
    (entry,) = logs
    assert entry["event"] == "relay_error"
    assert entry["error_type"] == "ConnectionError"
    assert entry["error"].startswith("broker away")
    assert len(entry["error"]) == 200
    assert "exc_info" not in entry


def test_every_turn_beats_the_heartbeat() -> None:
    """The liveness check stays green while turns go by, errors included."""
    stop = threading.Event()
    heartbeat = Heartbeat(max_age=5.0)
    heartbeat._last = time.monotonic() - 60  # as if silent for a minute: check() would fail
    script = Script(stop, [RuntimeError("x")])
    Loop("t", work=script.work, idle_wait=0.0, heartbeat=heartbeat, error_pause=0.0).run(stop)
    heartbeat.check()


def test_a_stopped_loop_does_no_work() -> None:
    stop = threading.Event()
    stop.set()
    script = Script(stop, [True])
    Loop("t", work=script.work, idle_wait=1.0).run(stop)
    assert script.calls == 0
