"""Trace context from a fetch to its events, with no exporter configured (issue 15)."""

from __future__ import annotations

import http.server
import re
import threading
import uuid
from collections.abc import Iterator
from typing import ClassVar

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from common import broker as common_broker
from common import events
from common.middleware import TraceContext
from common.tracing import current_traceparent, setup_tracing, tracer, tracer_provider

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@pytest.fixture(autouse=True)
def tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    setup_tracing("test")


@pytest.fixture
def stub_broker() -> Iterator[StubBroker]:
    previous = dramatiq.get_broker()
    stub = StubBroker(middleware=[TraceContext()])
    stub.declare_queue("process")
    dramatiq.set_broker(stub)
    yield stub
    dramatiq.set_broker(previous)


def _trace_id(traceparent: str | None) -> str:
    match = TRACEPARENT.match(traceparent or "")
    assert match, traceparent
    return match.group(1)


def _event() -> dict:
    return events.cloud_event(
        events.DOCUMENT_PROCESSED,
        event_id=uuid.uuid4(),
        source="urn:test",
        subject="document/1",
        data={},
    )


def test_trace_ids_exist_without_an_exporter_and_events_carry_them() -> None:
    """With no OTLP endpoint the spans still have real ids; an event raised inside one
    carries its traceparent, an event raised outside any trace carries none."""
    with tracer.start_as_current_span("fetch mailbox") as span:
        event = _event()
        trace_id = f"{span.get_span_context().trace_id:032x}"
    assert trace_id != "0" * 32
    assert _trace_id(event["traceparent"]) == trace_id
    assert "traceparent" not in _event()


def test_the_processing_message_continues_the_fetch_trace(stub_broker: StubBroker) -> None:
    """A message sent inside the fetch's trace carries its traceparent; the worker
    middleware runs the actor in that trace and leaves the thread without it after."""
    with tracer.start_as_current_span("fetch mailbox"):
        fetch_trace = _trace_id(current_traceparent())
        common_broker.send("process", "process_messages", [1, 2])
    (sent,) = stub_broker.queues["process"].queue
    message = dramatiq.Message.decode(sent)
    assert _trace_id(message.options["traceparent"]) == fetch_trace

    middleware = TraceContext()
    proxy = dramatiq.broker.MessageProxy(message)
    middleware.before_process_message(stub_broker, proxy)
    event = _event()
    # What the worker sends meanwhile (dramatiq's retry, the settling message) goes on too.
    common_broker.send("process", "settle_exhausted_processing", {}, {})
    middleware.after_process_message(stub_broker, proxy)
    assert _trace_id(event["traceparent"]) == fetch_trace
    assert event["traceparent"] != message.options["traceparent"]  # the processor's own span
    assert current_traceparent() is None
    settle = dramatiq.Message.decode(stub_broker.queues["process"].queue[-1])
    assert _trace_id(settle.options["traceparent"]) == fetch_trace


def test_a_message_without_trace_context_starts_a_new_trace(stub_broker: StubBroker) -> None:
    middleware = TraceContext()
    message = dramatiq.Message(
        queue_name="process", actor_name="process_messages", args=([1],), kwargs={}, options={}
    )
    proxy = dramatiq.broker.MessageProxy(message)
    middleware.before_process_message(stub_broker, proxy)
    traceparent = current_traceparent()
    middleware.after_skip_message(stub_broker, proxy)
    assert _trace_id(traceparent)
    assert current_traceparent() is None


class _Collector(http.server.BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP receiver: keeps each request's path and body."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_are_exported_over_otlp_only_when_an_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        quiet = tracer_provider("fetcher")
        assert quiet._active_span_processor._span_processors == ()

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        exporting = tracer_provider("fetcher")
        with exporting.get_tracer("test").start_as_current_span("fetch mailbox") as span:
            trace_id = span.get_span_context().trace_id
        assert exporting.force_flush(10_000)
        exporting.shutdown()
    finally:
        server.shutdown()
    ((path, body),) = _Collector.received
    assert path == "/v1/traces"
    assert trace_id.to_bytes(16, "big") in body  # protobuf carries the raw 16-byte id
    assert b"bandeja-fetcher" in body


def test_trace_context_wraps_retries_so_their_sends_stay_in_the_trace() -> None:
    """Middleware after-hooks run in reverse order: TraceContext must come before Retries
    (whose after-hook sends the retry and the settling message) to still be in effect."""
    previous = dramatiq.get_broker()
    try:
        broker = common_broker.setup_broker("amqp://guest:guest@127.0.0.1:1/")
        kinds = [type(m) for m in broker.middleware]
        assert kinds.index(TraceContext) < kinds.index(Retries)
    finally:
        dramatiq.set_broker(previous)
