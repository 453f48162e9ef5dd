"""Every publish of a process on one thread that keeps its connection's heartbeats.

dramatiq's RabbitMQ broker publishes on a connection per thread, and pika's
``BlockingConnection`` answers heartbeats only while its thread calls it. A fetcher worker
thread that published nothing for two heartbeat intervals found its connection closed by
RabbitMQ ("missed heartbeats from client", an error in RabbitMQ's log), and its next publish
failed with a reset, logged by pika with a traceback, before dramatiq reconnected
(docs/architecture.md#ops-dramatiq-broker). Here a process's publishes and queue
declarations go through one thread, which owns the one publishing connection and serves
its heartbeats while idle.

``enqueue`` still returns only once RabbitMQ has confirmed the message, and it runs in the
caller's context (trace and log context), copied into the publishing thread.

One thread means a publish waits for those before it. A caller waits at most
``CALL_TIMEOUT`` (what one publish can take on its own: three connection attempts, a
confirm on a blocked connection, or a dead peer found by two missed heartbeats, with the
settings of common/broker.py); past it, a call not yet started is withdrawn and the caller
gets ``ConnectionClosed``, the error dramatiq retries a message on and restarts a consumer
on. A call left in the queue when the thread stops fails the same way, at once.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import structlog
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.errors import ConnectionClosed

log = structlog.get_logger(__name__)

T = TypeVar("T")

# When no heartbeat was negotiated (0), idle wake-ups only notice a closed connection.
_IDLE_WAKE_WITHOUT_HEARTBEAT = 30.0
# The longest one publish takes by itself (module docstring): 3 x (10 s + 2 s) to connect,
# 30 s blocked, 2 x 30 s of silence; rounded up.
CALL_TIMEOUT = 90.0


class PublishingUnavailable(ConnectionClosed):
    """A call the publishing thread did not run: dramatiq handles it as a lost connection
    (a message's actor is retried, a consumer restarts)."""

    def __init__(self, reason: str) -> None:
        super().__init__(RuntimeError(reason))  # type: ignore[no-untyped-call]


class PublishingThreadBroker(RabbitmqBroker):
    """A ``RabbitmqBroker`` whose enqueues all run on one publishing thread per process."""

    def __init__(self, *, call_timeout: float = CALL_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._publisher = _PublishingThread(self, call_timeout)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        context = contextvars.copy_context()
        return self._publisher.call(context.run, super().enqueue, message, delay=delay)

    def declare_queue(self, queue_name: str, *, ensure: bool = False) -> None:
        # dramatiq's consumer threads ensure their queue on their own thread's publishing
        # connection, then consume on another one: the first was left idle until RabbitMQ
        # closed it for missed heartbeats, two per worker process.
        if ensure:
            self._publisher.call(super().declare_queue, queue_name, ensure=True)
        else:
            super().declare_queue(queue_name)

    def close(self) -> None:
        self._publisher.stop()
        super().close()

    def serve_heartbeats(self) -> None:
        """On the publishing thread: let pika answer and send heartbeats on its connection;
        drop a connection RabbitMQ closed, so the next publish opens a new one."""
        connection = getattr(self.state, "connection", None)
        if connection is None:
            return
        try:
            connection.process_data_events(time_limit=0)
        except Exception as exc:  # noqa: BLE001 - the publishing thread must outlive it
            log.info("publishing_connection_closed", error_type=type(exc).__name__)
            del self.connection

    def idle_wake_seconds(self) -> float:
        """How long the publishing thread may sleep without a publish: a third of the
        heartbeat, so pika's heartbeat frame is never much later than due."""
        parameters = self.parameters[0] if isinstance(self.parameters, list) else self.parameters
        heartbeat = parameters.heartbeat
        if isinstance(heartbeat, int) and heartbeat > 0:
            return heartbeat / 3
        return _IDLE_WAKE_WITHOUT_HEARTBEAT


class _PublishingThread:
    """Runs calls on one daemon thread, started at the first call in each process (a
    forked worker process starts its own)."""

    def __init__(self, broker: PublishingThreadBroker, call_timeout: float) -> None:
        self._broker = broker
        self._call_timeout = call_timeout
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._calls: queue.SimpleQueue[
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None
        ] = queue.SimpleQueue()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on the publishing thread; at once when already on it (an enqueue's own
        queue declaration, a middleware enqueuing from an enqueue hook)."""
        if self._thread is threading.current_thread():
            return fn(*args, **kwargs)
        future: Future[T] = Future()
        with self._lock:
            self._ensure_running()
            self._calls.put((future, fn, args, kwargs))
        try:
            return future.result(timeout=self._call_timeout)
        except TimeoutError:
            if not future.cancel():  # started after all: its own bounds apply
                return future.result()
            raise PublishingUnavailable(
                f"publishing thread busy for {self._call_timeout:.0f} s"
            ) from None

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
            if thread is None or not self._running():
                return
            self._calls.put(None)
        thread.join(timeout=10)

    def _running(self) -> bool:
        """Started in this process and not ended."""
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def _ensure_running(self) -> None:
        if self._running():
            return
        self._calls = queue.SimpleQueue()  # a parent's calls are not this process's
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        calls = self._calls
        wake = self._broker.idle_wake_seconds()
        while True:
            try:
                item = calls.get(timeout=wake)
            except queue.Empty:
                self._broker.serve_heartbeats()
                continue
            if item is None:
                break
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
                future.set_exception(exc)
        del self._broker.connection  # closes this thread's channel and connection
        _fail_left(calls)


def _fail_left(calls: queue.SimpleQueue[Any]) -> None:
    """Calls queued behind the stop: their callers get an error now instead of waiting."""
    while True:
        try:
            item = calls.get_nowait()
        except queue.Empty:
            return
        if item is not None and item[0].set_running_or_notify_cancel():
            item[0].set_exception(PublishingUnavailable("publishing thread stopped"))
