"""An ERP-style consumer that timestamps every event as it arrives (a plain pika thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pika

Event = dict[str, Any]


class EventSink(threading.Thread):
    """Its own exclusive queue bound to ``bandeja.events``; keeps (monotonic time, event)."""

    def __init__(self, amqp_url: str, binding: str = "bandeja.#") -> None:
        super().__init__(name="event-sink", daemon=True)
        self._url = amqp_url
        self._binding = binding
        self._halt = threading.Event()
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self.received: list[tuple[float, Event]] = []

    def start(self) -> None:
        super().start()
        if not self._ready.wait(30):
            raise RuntimeError("event sink did not connect")

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self._url))
        channel = conn.channel()
        # As documented (docs/asyncapi.yaml); the relay declares the same.
        channel.exchange_declare("bandeja.events", exchange_type="topic", durable=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, "bandeja.events", routing_key=self._binding)
        channel.basic_consume(queue, self._on_message, auto_ack=True)
        self._ready.set()
        while not self._halt.is_set():
            conn.process_data_events(time_limit=0.1)
        conn.close()

    def _on_message(self, _ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        now = time.monotonic()
        with self._cond:
            self.received.append((now, json.loads(body)))
            self._cond.notify_all()

    def matching(self, predicate: Callable[[Event], bool]) -> list[tuple[float, Event]]:
        with self._cond:
            return [(t, e) for t, e in self.received if predicate(e)]

    def wait_for(self, predicate: Callable[[Event], bool], count: int,
                 timeout: float) -> list[tuple[float, Event]]:
        """The first ``count`` distinct events matching; raises on timeout.

        Each wake-up looks only at the events that came since the last one: rescanning
        all of them on every event cost the bench a quadratic share of the CPU it measures.
        """
        deadline = time.monotonic() + timeout
        found: list[tuple[float, Event]] = []
        seen: set[str] = set()
        scanned = 0
        with self._cond:
            while True:
                for t, e in self.received[scanned:]:
                    if e["id"] not in seen and predicate(e):
                        seen.add(e["id"])
                        found.append((t, e))
                scanned = len(self.received)
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"saw {len(found)} of {count} events")
                self._cond.wait(min(left, 1.0))

    def close(self) -> None:
        self._halt.set()
        self.join(5)


def processed_in(addresses: list[str]) -> Callable[[Event], bool]:
    wanted = set(addresses)
    return lambda e: (e["type"] == "bandeja.document.processed"
                      and e["data"].get("mailbox") in wanted)
