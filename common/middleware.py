"""dramatiq middleware shared by every worker: log context and metrics in seconds.

dramatiq's own Prometheus middleware is off by default, forks its own HTTP server and
measures milliseconds (docs/architecture.md#ops-dramatiq-prometheus); ours records into the process
registry that the ops server already exposes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from dramatiq import Message, Middleware
from dramatiq.broker import Broker, MessageProxy
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from common import tracing

ACTOR_MESSAGES = Counter(
    "bandeja_actor_messages", "Messages handled by actors, by outcome", ["actor", "result"]
)
ACTOR_DURATION = Histogram(
    "bandeja_actor_duration_seconds",
    "Time spent in an actor",
    ["actor"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)


class TraceContext(Middleware):
    """W3C trace context across messages (common/tracing.py).

    A message enqueued inside a trace carries its ``traceparent`` in its options; each
    message is processed in a span continuing it (a new trace without one), so whatever
    the actor logs, sends or emits carries the trace. The span lives on the worker thread
    from before to after processing; a thread processes one message at a time.
    """

    def __init__(self) -> None:
        self._current = threading.local()

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int | None) -> None:
        traceparent = tracing.current_traceparent()
        if traceparent is not None:
            # A retry keeps the trace it was first sent in.
            message.options.setdefault(tracing.TRACEPARENT, traceparent)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        parent = tracing.context_from(message.options.get(tracing.TRACEPARENT))
        span = tracing.tracer.start_span(
            f"{message.actor_name} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._current.active = (span, token)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        active = getattr(self._current, "active", None)
        if active is None:
            return
        self._current.active = None
        span, token = active
        if exception is not None:
            span.record_exception(exception)
            span.set_status(trace.StatusCode.ERROR, type(exception).__name__)
        span.end()
        otel_context.detach(token)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


class LogContext(Middleware):
    """Bind the message's identity into the log context of the worker thread, and clear it after.

    Worker threads are long-lived: without clearing, one message's context leaks into the next.
    """

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id,
            actor=message.actor_name,
            retries=message.options.get("retries", 0),
        )

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()


class WorkerMetrics(Middleware):
    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        self._started[message.message_id] = time.monotonic()

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._started.pop(message.message_id, None)
        if started is not None:
            ACTOR_DURATION.labels(message.actor_name).observe(time.monotonic() - started)
        if exception is None:
            outcome = "success"
        elif message.failed:
            outcome = "dead"
        else:
            outcome = "retry"
        ACTOR_MESSAGES.labels(message.actor_name, outcome).inc()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        ACTOR_MESSAGES.labels(message.actor_name, "dead" if message.failed else "skipped").inc()
