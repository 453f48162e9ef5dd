"""The relay alone: events/s and CPU per event, one source tree against another, same run.

``python -m bench.relay_throughput --before <commit> [--events 5000] [--rounds 3]
[--relay-batch 200]``

A scratch database's outbox is filled with ``--events`` document events (the processor's
shape, about 0.8 KB each) and a relay drains it into a scratch vhost of the shared
RabbitMQ (alternate-exchange policy applied, one durable queue bound to ``bandeja.#``, so
every event is persisted as in production). The relay runs as a child process from
either tree, importing that tree's ``services`` and ``common``: ``--before`` is exported
with ``git archive``, "after" is this checkout. Rounds alternate before/after; medians
are printed, each round as JSON lines.

The timed window starts after the relay connected (start-up is excluded) and ends when
``relay_batch()`` returns 0 (every event confirmed and marked). CPU seconds: the relay's
own (``time.process_time`` in the child), the PostgreSQL backends of the scratch
database, and every RabbitMQ process (psutil, summed over the window). The broker and
the cores are shared with whatever else runs on the machine; the broker's figure
includes that traffic, the relay's and PostgreSQL's do not. Wall time is noisy there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

import pika
import psutil
import psycopg

from common import events
from tests.support.infra import TestDatabase, TestVhost

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench-relay"
_RABBITMQ = {"beam.smp", "erl_child_setup", "epmd", "inet_gethost"}

# Runs inside the child, with the tree under test first on sys.path.
_CHILD = """
import json, sys, time
from common.db import create_pool
from services.relay.publisher import EventPublisher
from services.relay import relay as relay_module
from services.relay.relay import Relay
dsn, url = sys.argv[1], sys.argv[2]
relay_module.BATCH = int(sys.argv[3])
pool = create_pool(dsn, name="relay", max_size=3)
publisher = EventPublisher(url)
publisher.connect()
relay = Relay(pool, dsn, publisher)
with pool.connection() as conn:
    conn.execute("SELECT 1")
print("ready", flush=True)
sys.stdin.readline()
cpu0, wall0 = time.process_time(), time.monotonic()
published = 0
while True:
    n = relay.relay_batch()
    if n == 0:
        break
    published += n
print(json.dumps({"wall": time.monotonic() - wall0, "cpu": time.process_time() - cpu0,
                  "published": published}), flush=True)
publisher.close()
pool.close()
"""


def _event(n: int) -> dict[str, Any]:
    return events.cloud_event(
        events.DOCUMENT_PROCESSED,
        event_id=uuid.uuid4(),
        source="urn:bandeja:processor",
        subject=f"document/{uuid.uuid4()}",
        data={
            "document_id": str(uuid.uuid4()),
            "mailbox_id": n % 20 + 1,
            "mailbox": f"user{n % 20}@contoso.example",
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "message_id": f"<{uuid.uuid4()}@mail.contoso.example>",
            "subject": f"Invoice INV-{n:06d} for October",
            "from": "Billing <billing@supplier.example>",
            "received_at": "2026-11-27T09:00:00+00:00",
            "attachments": [
                {
                    "filename": f"INV-{n:06d}.pdf",
                    "original_filename": f"INV-{n:06d}.pdf",
                    "content_type": "application/pdf",
                    "size": 48213,
                    "sha256": uuid.uuid4().hex + uuid.uuid4().hex,
                }
            ],
        },
    )


def _export(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "services", "common"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _rabbitmq_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in _RABBITMQ:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return total


def _backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _fill(database: TestDatabase, count: int) -> None:
    with psycopg.connect(database.dsn) as conn:
        conn.execute("TRUNCATE outbox")
        for start in range(0, count, 1000):
            events.add_all_to_outbox(
                conn, [_event(n) for n in range(start, min(start + 1000, count))]
            )
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE outbox")


def _run_once(
    tree: Path, database: TestDatabase, vhost: TestVhost, count: int, batch: int
) -> dict[str, Any]:
    _fill(database, count)
    with pika.BlockingConnection(pika.URLParameters(vhost.url)) as connection:
        connection.channel().queue_purge(QUEUE)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, database.dsn, vhost.url, str(batch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tree,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the relay did not start")
    with psycopg.connect(database.dsn) as conn:
        backends = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        ]
    pg0, mq0 = _backend_cpu(backends), _rabbitmq_cpu()
    child.stdin.write("go\n")
    child.stdin.flush()
    result = json.loads(child.stdout.readline())
    pg, mq = _backend_cpu(backends) - pg0, _rabbitmq_cpu() - mq0
    child.wait(30)
    with psycopg.connect(database.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    left = row[0] if row is not None else None
    assert left == 0, f"{left} events left unpublished"
    per_1000 = 1000 / count
    return {
        "events": count,
        "events_per_s": round(count / result["wall"], 1),
        "wall_s": round(result["wall"], 3),
        "relay_cpu_s_per_1000": round(result["cpu"] * per_1000, 4),
        "postgres_cpu_s_per_1000": round(pg * per_1000, 4),
        "rabbitmq_cpu_s_per_1000": round(mq * per_1000, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="commit of the 'before' tree")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--relay-batch",
        type=int,
        default=200,
        help="rows per relay batch (200 in production; in the pipeline, events arrive about"
        " 20 at a time, one processor batch, so the relay's batches are often that small)",
    )
    args = parser.parse_args()
    database, vhost = TestDatabase().create(), TestVhost().create()
    try:
        with pika.BlockingConnection(pika.URLParameters(vhost.url)) as connection:
            channel = connection.channel()
            channel.exchange_declare(events.EXCHANGE, exchange_type="topic", durable=True)
            channel.queue_declare(QUEUE, durable=True)
            channel.queue_bind(QUEUE, events.EXCHANGE, routing_key="bandeja.#")
        with tempfile.TemporaryDirectory(prefix="relay-before-") as tmp:
            trees = {"before": _export(args.before, Path(tmp)), "after": ROOT}
            results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for round_ in range(args.rounds):
                for name, tree in trees.items():
                    result = _run_once(tree, database, vhost, args.events, args.relay_batch)
                    results[name].append(result)
                    print(json.dumps({"round": round_ + 1, "tree": name, **result}), flush=True)
        print(
            f"median of {args.rounds}, {args.events} events each,"
            f" {args.relay_batch} per relay batch:"
        )
        for name, rows in results.items():
            medians = {
                key: statistics.median(row[key] for row in rows)
                for key in rows[0]
                if key != "events"
            }
            print(f"  {name:6} " + "  ".join(f"{k}={v}" for k, v in medians.items()))
    finally:
        vhost.drop()
        database.drop()


if __name__ == "__main__":
    main()
