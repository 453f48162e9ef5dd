"""The publishing thread's waits are bounded (common/publishing.py): a caller stuck behind
another publish, or queued when the thread stops, gets the error dramatiq retries on
instead of waiting forever. No RabbitMQ: the calls here never open a connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from dramatiq.errors import ConnectionClosed

from common.publishing import PublishingThreadBroker


@pytest.fixture
def broker() -> Iterator[PublishingThreadBroker]:
    built = PublishingThreadBroker(url="amqp://127.0.0.1:1", call_timeout=0.5)
    yield built
    built.close()


def test_a_call_stuck_behind_another_is_withdrawn_with_a_connection_error(
    broker: PublishingThreadBroker,
) -> None:
    """While one publish hangs, the next caller gets ConnectionClosed after the call
    timeout, and its publish is withdrawn: it never runs later, behind the caller's back."""
    release = threading.Event()
    first = threading.Thread(target=broker._publisher.call, args=(release.wait, 10.0))
    first.start()
    ran: list[str] = []
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        broker._publisher.call(ran.append, "second")
    waited = time.monotonic() - started
    release.set()
    first.join(5)
    assert broker._publisher.call(ran.append, "third") is None
    assert ran == ["third"]
    assert 0.5 <= waited < 5


def test_a_call_queued_when_the_thread_stops_fails_at_once(
    broker: PublishingThreadBroker,
) -> None:
    """A call that reached the queue behind the stop fails as soon as the thread ends,
    without waiting out its timeout."""
    broker._publisher._call_timeout = 30.0
    release = threading.Event()
    first = threading.Thread(target=broker._publisher.call, args=(release.wait, 10.0))
    first.start()
    time.sleep(0.1)  # the first call is running
    stopper = threading.Thread(target=broker._publisher.stop)
    stopper.start()
    time.sleep(0.1)  # the stop is queued behind it
    outcome: list[BaseException] = []

    def late_call() -> None:
        try:
            broker._publisher.call(print, "too late")
        except BaseException as exc:  # recorded for the assertion
            outcome.append(exc)

    late = threading.Thread(target=late_call)
    late.start()
    time.sleep(0.1)  # the late call is queued behind the stop
    started = time.monotonic()
    release.set()
    late.join(10)
    assert not late.is_alive()
    assert time.monotonic() - started < 5
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConnectionClosed)
    stopper.join(5)
    first.join(5)
