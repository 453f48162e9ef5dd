"""The ERP side: a plain pika consumer on its own durable queue bound to ``bandeja.events``,
reconnecting across RabbitMQ restarts. It acks after recording, so a restart may hand it
an event twice (at-least-once); the invariants look at CloudEvent ids, not deliveries."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pika
import pika.exceptions

from tests.support.events import validate_event

QUEUE = "erp.chaos"


class ResilientConsumer:
    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.deliveries: list[dict[str, Any]] = []
        self.reconnects = 0
        self.invalid: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="erp-consumer", daemon=True)

    def start(self) -> ResilientConsumer:
        self._connect().close()  # declare the queue before anything is published
        self._thread.start()
        return self

    def _connect(self) -> pika.BlockingConnection:
        params = pika.URLParameters(self.url + "?heartbeat=10&connection_attempts=1")
        conn = pika.BlockingConnection(params)
        channel = conn.channel()
        # As documented (docs/asyncapi.yaml); the relay declares the same.
        channel.exchange_declare("bandeja.events", exchange_type="topic", durable=True)
        channel.queue_declare(QUEUE, durable=True)
        channel.queue_bind(QUEUE, "bandeja.events", routing_key="bandeja.#")
        return conn

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.5)
                continue
            try:
                channel = conn.channel()
                channel.basic_qos(prefetch_count=200)
                channel.basic_consume(QUEUE, self._on_message)
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.5)
                conn.close()
            except (pika.exceptions.AMQPError, OSError):
                self.reconnects += 1
                time.sleep(0.5)

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        try:
            event = json.loads(body)
            validate_event(event)
            if props.delivery_mode != 2:
                self.invalid.append(f"{event.get('id')}: not persistent")
        except Exception as exc:
            self.invalid.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            event = None
        if event is not None:
            with self._lock:
                self.deliveries.append(event)
        channel.basic_ack(method.delivery_tag)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.deliveries)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
