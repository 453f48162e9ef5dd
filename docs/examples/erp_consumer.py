"""A consumer of Bandeja's events, as an ERP team would write one.

It follows docs/asyncapi.yaml and nothing else:

- declares the exchange `bandeja.events` exactly as documented (topic, durable, no
  arguments), so it may start before Bandeja ever ran;
- reads from its own durable **quorum** queue (replicated, survives a broker restart),
  bound to `bandeja.document.*` by default;
- parses every message with the official CloudEvents SDK (`pip install cloudevents`), its
  RabbitMQ binding, and checks `data` against the JSON Schema of the event's type
  (`common/schemas/<type>.json`, published with the AsyncAPI document);
- handles each event once: delivery is at least once, so the CloudEvent `(source, id)` is
  recorded in the same database transaction as the event's effect, and a second copy is
  acknowledged without effect;
- acknowledges only after that commit, and reconnects after a broker restart.

Run:  python erp_consumer.py --broker amqp://erp:secret@rabbitmq/ --state erp.sqlite3 \
          --schemas path/to/common/schemas
Each handled event is printed as one JSON line (id, type, subject, traceparent): the
`traceparent` (CloudEvents distributed-tracing extension) leads back to the mail's fetch
run in Bandeja's traces and logs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pika
from cloudevents.core.bindings import rabbitmq as cloudevents_rabbitmq

EXCHANGE = "bandeja.events"


class Schemas:
    """The `data` schema of each event type, read once from the published JSON Schemas."""

    def __init__(self, directory: Path) -> None:
        self._validators = {}
        for path in sorted(directory.glob("*.json")):
            envelope = json.loads(path.read_text())
            data_schema = envelope["properties"]["data"]
            self._validators[path.stem] = jsonschema.Draft202012Validator(
                data_schema, format_checker=jsonschema.FormatChecker()
            )

    def validate(self, event_type: str, data: Any) -> None:
        validator = self._validators.get(event_type)
        if validator is None:
            raise jsonschema.ValidationError(f"no schema for event type {event_type!r}")
        validator.validate(data)


class Inbox:
    """The ERP's side: handled event ids and their effect, committed together."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path)
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS handled_events ("
            " source TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (source, id));"
            "CREATE TABLE IF NOT EXISTS documents ("
            " document_id TEXT PRIMARY KEY, state TEXT NOT NULL, mailbox TEXT NOT NULL,"
            " subject TEXT, traceparent TEXT);"
        )

    def handle_once(self, event: Any) -> bool:
        """Apply the event unless it was handled before; False for a duplicate."""
        data = event.get_data()
        with self._db:  # one transaction: the id and the effect, or neither
            seen = self._db.execute(
                "INSERT OR IGNORE INTO handled_events (source, id) VALUES (?, ?)",
                (event.get_source(), event.get_id()),
            )
            if seen.rowcount == 0:
                return False
            state = "processed" if event.get_type() == "bandeja.document.processed" else "failed"
            self._db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)",
                (
                    data["document_id"],
                    data.get("state", state),
                    data["mailbox"],
                    data["subject"],
                    event.get_extension("traceparent"),
                ),
            )
        return True


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def consume(args: argparse.Namespace, schemas: Schemas, inbox: Inbox) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(args.broker))
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(args.queue, durable=True, arguments={"x-queue-type": "quorum"})
    for binding in args.binding:
        channel.queue_bind(args.queue, EXCHANGE, routing_key=binding)
    channel.basic_qos(prefetch_count=50)

    def on_message(
        ch: Any, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        message = cloudevents_rabbitmq.RabbitMQMessage(
            headers={k: str(v) for k, v in (properties.headers or {}).items()},
            content_type=properties.content_type,
            body=body,
        )
        try:
            event = cloudevents_rabbitmq.from_rabbitmq_event(message)
            schemas.validate(event.get_type(), event.get_data())
        except Exception as exc:  # noqa: BLE001 - a message outside the contract
            # Not retried: it would fail the same way. A dead-letter exchange on the
            # queue (policy) would keep it for a person to look at.
            say(rejected=method.delivery_tag, error=f"{type(exc).__name__}: {exc}"[:300])
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        if inbox.handle_once(event):
            say(
                id=event.get_id(),
                type=event.get_type(),
                subject=event.get_subject(),
                traceparent=event.get_extension("traceparent"),
            )
        else:
            say(duplicate=event.get_id())
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(args.queue, on_message)
    say(ready=args.queue)
    try:
        channel.start_consuming()
    finally:
        if connection.is_open:
            connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="AMQP URL of the broker and vhost")
    parser.add_argument("--queue", default="erp.bandeja.documents")
    parser.add_argument(
        "--binding", action="append", help="routing key pattern (default bandeja.document.*)"
    )
    parser.add_argument("--schemas", type=Path, required=True, help="the JSON Schemas folder")
    parser.add_argument("--state", type=Path, required=True, help="the SQLite file")
    args = parser.parse_args()
    args.binding = args.binding or ["bandeja.document.*"]
    schemas, inbox = Schemas(args.schemas), Inbox(args.state)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                consume(args, schemas, inbox)
            except pika.exceptions.AMQPConnectionError as exc:  # broker restart, network
                say(reconnecting=type(exc).__name__)
                time.sleep(2)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
