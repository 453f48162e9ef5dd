"""Distributed tracing (OpenTelemetry): one trace from a mail's fetch run to its CloudEvent.

A fetch run starts a trace; its W3C ``traceparent`` (https://www.w3.org/TR/trace-context/)
rides in the options of every message sent within it (the processing message, then its
retries and settling message: common.middleware.TraceContext), the processor continues
the trace, and the document event carries it as the CloudEvents distributed-tracing
extension attribute
(https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/extensions/distributed-tracing.md),
so the ERP can follow a document back to its mail run, and logs carry the trace id.

The SDK's tracer provider is always installed, so trace ids exist with no exporter at
all; spans are exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, configured by the standard ``OTEL_*``
variables (https://opentelemetry.io/docs/specs/otel/protocol/exporter/).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

tracer = trace.get_tracer("bandeja")


def setup_tracing(process: str) -> None:
    """Install the tracer provider of this process (once; later calls are ignored)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(tracer_provider(process))


def tracer_provider(process: str) -> TracerProvider:
    """The SDK's provider (real ids), exporting over OTLP/HTTP only when an endpoint is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"bandeja-{process}"}))
    if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_from(traceparent: str | None) -> context.Context:
    """A context continuing ``traceparent``; an empty one (a new trace) when it is missing
    or malformed."""
    return _PROPAGATOR.extract({TRACEPARENT: traceparent} if traceparent else {})


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current trace and span ids on every log line in a trace."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", f"{span_context.trace_id:032x}")
        event_dict.setdefault("span_id", f"{span_context.span_id:016x}")
    return event_dict
