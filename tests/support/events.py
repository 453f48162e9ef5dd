"""A plain pika consumer, as the ERP would write one: its own durable queue bound to
``bandeja.events``. Every event it sees is validated against the repo's JSON Schema."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pika

SCHEMAS = Path(__file__).resolve().parents[2] / "common" / "schemas"


def validate_event(event: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{event['type']}.json").read_text())
    jsonschema.validate(event, schema, format_checker=jsonschema.FormatChecker())


class EventConsumer:
    def __init__(self, amqp_url: str, queue: str, binding: str = "bandeja.#") -> None:
        self.queue = queue
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel = self._conn.channel()
        # As the README documents it, whether or not the relay has declared it yet.
        self._channel.exchange_declare("bandeja.events", exchange_type="topic", durable=True)
        self._channel.queue_declare(queue, durable=True)
        self._channel.queue_bind(queue, "bandeja.events", routing_key=binding)
        self.events: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        new = []
        while True:
            method, props, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return new
            assert props.content_type.startswith("application/cloudevents+json"), props.content_type
            assert props.delivery_mode == 2
            event = json.loads(body)
            validate_event(event)
            new.append(event)
            self.events.append(event)

    def wait_for(self, event_type: str, count: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            matching = self.of_type(event_type)
            if len({e["id"] for e in matching}) >= count:
                return matching
            time.sleep(0.2)
        raise AssertionError(
            f"saw {len(self.of_type(event_type))} {event_type} events, expected {count}"
        )

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    def close(self) -> None:
        try:
            self._channel.queue_delete(self.queue)
        finally:
            self._conn.close()
