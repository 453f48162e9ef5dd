"""Processor and relay as processes: poison messages, a database outage, two relays
(issue 5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import dramatiq
import pika
import psycopg
import requests

from common import events
from services.processor import crashes
from standin.testing import StandIn
from tests.support.events import EventConsumer
from tests.support.flows import connect_new_mailbox
from tests.support.infra import PG_ADMIN_DSN, TestDatabase, TestVhost
from tests.support.mail import invoice_mail
from tests.support.services import ServiceProcess, Services, free_port
from tests.support.waiting import metric_value, query, wait_until


def _connect(standin: StandIn, services: Services, tenant: dict, name: str) -> str:
    return connect_new_mailbox(standin, services.auth_url, tenant, name)


def _queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_poison_message_goes_to_the_dead_letter_queue_and_good_mail_flows(
    standin: StandIn,
    tenant: dict,
    vhost: TestVhost,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """A processing message that can never succeed is dead-lettered (visible in metrics)
    while the good mails around it all become documents."""
    services = start_services(idle_sessions="0")
    address = _connect(standin, services, tenant, "poison")
    poison = dramatiq.Message(
        queue_name="process",
        actor_name="process_message",
        args=(987654321,),
        kwargs={},
        options={},
    )
    connection = pika.BlockingConnection(pika.URLParameters(vhost.url))
    for n in range(10):
        standin.dovecot.append(address, invoice_mail(n, to=address)[0])
        if n == 3:
            connection.channel().basic_publish(
                "", "process", poison.encode(), pika.BasicProperties(delivery_mode=2)
            )
    connection.close()
    erp_consumer.wait_for("bandeja.document.processed", 10, timeout=60)
    wait_until(lambda: _queue_depth(vhost.url, "process.XQ") == 1, 20, what="a dead letter")
    processor = services.running["processor"]
    dead = metric_value(
        f"{processor.ops_url}/metrics",
        "bandeja_actor_messages_total",
        {"actor": "process_message", "result": "dead"},
    )
    assert dead == 1
    assert processor.process.poll() is None


def test_database_outage_mid_run_loses_nothing(
    standin: StandIn,
    tenant: dict,
    clean_database: TestDatabase,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """The database refuses every connection for a while during a drain; once it is back,
    every mail is one document with one event, and no process has died."""
    services = start_services(idle_sessions="0", poll_interval="1")
    address = _connect(standin, services, tenant, "outage")
    standin.dovecot.append_many(
        address, (invoice_mail(n, to=address, pdf_size=50_000)[0] for n in range(30))
    )
    wait_until(
        lambda: len(query(clean_database.dsn, "SELECT id FROM documents")) >= 5,
        60,
        interval=0.05,
        what="the drain to start",
    )
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{clean_database.name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (clean_database.name,),
        )
        time.sleep(8)
        admin.execute(f'ALTER DATABASE "{clean_database.name}" ALLOW_CONNECTIONS true')
    processed = erp_consumer.wait_for("bandeja.document.processed", 30, timeout=180)
    assert len({e["id"] for e in processed}) == 30
    docs = query(clean_database.dsn, "SELECT message_id FROM documents")
    assert len(docs) == 30
    assert len({d["message_id"] for d in docs}) == 30
    assert all(p.process.poll() is None for p in services.running.values())


REFUSE_ALL_DOCUMENTS = (
    "CREATE FUNCTION refuse_documents() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN IF NEW.reason IS NULL OR NEW.reason NOT LIKE 'processing failed%%' THEN"
    " RAISE EXCEPTION 'the CRM is refusing documents'; END IF; RETURN NEW; END $$;"
    " CREATE TRIGGER refuse_documents BEFORE INSERT ON documents"
    " FOR EACH ROW EXECUTE FUNCTION refuse_documents()"
)


def test_mail_the_crm_keeps_refusing_is_settled_as_failed_then_reprocessed(
    standin: StandIn,
    tenant: dict,
    clean_database: TestDatabase,
    services_env: dict[str, str],
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """When processing keeps failing until its retries run out, the mails do not sit in
    the dead letters without a document: each becomes a `failed` document (the ERP is
    told), and once the cause is fixed `bandeja reprocess --failed` turns them into
    processed documents (the ERP is told again)."""
    services = start_services(idle_sessions="0", process_max_retries="1")
    address = _connect(standin, services, tenant, "refused")
    dsn = clean_database.dsn
    with psycopg.connect(dsn) as conn:
        conn.execute(REFUSE_ALL_DOCUMENTS)
    try:
        for n in range(3):
            standin.dovecot.append(address, invoice_mail(n, to=address)[0])
        failed = erp_consumer.wait_for("bandeja.document.failed", 3, timeout=90)
        docs = query(dsn, "SELECT state, reason FROM documents")
        assert [d["state"] for d in docs] == ["failed"] * 3
        assert all(d["reason"].startswith("processing failed 2 times") for d in docs)
        assert {e["data"]["mailbox"] for e in failed} == {address}
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute("DROP TRIGGER refuse_documents ON documents")
            conn.execute("DROP FUNCTION refuse_documents")

    def reprocess_failed(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services", "reprocess", "--failed", "--mailbox", address],
            env={**os.environ, **services_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # With the broker unreachable, the operator is told and nothing is deleted.
    refused = reprocess_failed(BANDEJA_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    assert refused.returncode == 1
    assert "the broker does not answer (AMQPConnectionError); nothing changed" in refused.stderr
    assert [d["state"] for d in query(dsn, "SELECT state FROM documents")] == ["failed"] * 3

    done = reprocess_failed()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["failed_documents_deleted"] == 3
    erp_consumer.wait_for("bandeja.document.processed", 3, timeout=60)
    docs = query(dsn, "SELECT state FROM documents")
    assert [d["state"] for d in docs] == ["processed"] * 3
    assert len(query(dsn, "SELECT id FROM raw_messages")) == 3


def test_two_relays_publish_each_event_once(
    clean_database: TestDatabase,
    vhost: TestVhost,
    services_env: dict[str, str],
    tmp_path: Path,
    erp_consumer: EventConsumer,
) -> None:
    """Two relay replicas drain one outbox: every event arrives, none twice."""
    with psycopg.connect(clean_database.dsn) as conn:
        for n in range(400):
            event = events.cloud_event(
                events.MAILBOX_CONNECTED,
                event_id=uuid.uuid4(),
                source="urn:test",
                subject=f"mailbox/{n}",
                data={
                    "mailbox_id": n,
                    "mailbox": f"m{n}@x.example",
                    "tenant_id": "t",
                    "reference": None,
                },
            )
            events.add_to_outbox(conn, event)
    relays = [ServiceProcess("relay", services_env, tmp_path, free_port()) for _ in range(2)]
    try:
        for relay in relays:
            relay.wait_ready()
        received = erp_consumer.wait_for("bandeja.mailbox.connected", 400, timeout=60)
        time.sleep(2)
        erp_consumer.drain()
        ids = [e["id"] for e in erp_consumer.of_type("bandeja.mailbox.connected")]
        assert len(ids) == len(set(ids)) == 400
        assert len(received) >= 400
        pending = query(clean_database.dsn, "SELECT id FROM outbox WHERE published_at IS NULL")
        assert pending == []
        backlog = metric_value(f"{relays[0].ops_url}/metrics", "bandeja_outbox_pending")
        assert backlog == 0
        per_relay = [
            metric_value(
                f"{r.ops_url}/metrics",
                "bandeja_events_published_total",
                {"type": "bandeja.mailbox.connected"},
            )
            for r in relays
        ]
        assert sum(per_relay) == 400
    finally:
        for relay in relays:
            relay.stop()


def test_a_mail_that_kills_the_processor_every_time_ends_failed_without_a_crash_loop(
    standin: StandIn,
    tenant: dict,
    clean_database: TestDatabase,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """A processor SIGKILLed whenever it parses one big mail (what the kernel's OOM killer
    does to a pod) is restarted each time, as Kubernetes would. After three deaths that
    mail is a `failed` document saying so, with its event, and the other mails are
    processed; without the count the fourth processor would parse it, or die again."""
    services = start_services(idle_sessions="0")
    address = _connect(standin, services, tenant, "killer")
    big = invoice_mail(1, to=address, pdf_size=12_000_000)[0]
    standin.dovecot.append_many(address, [invoice_mail(2, to=address)[0], big])
    standin.dovecot.append(address, invoice_mail(3, to=address)[0])
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 3 and time.monotonic() < deadline:
        processor = services.running["processor"]
        url = f"{processor.ops_url}/metrics"
        try:
            parsing_big = metric_value(url, "bandeja_process_bytes_in_flight") >= len(big)
        except (requests.RequestException, AssertionError):
            parsing_big = False
        if not parsing_big:
            time.sleep(0.02)
            continue
        processor.stop(signal.SIGKILL)
        kills += 1
        replacement = ServiceProcess("processor", services.env, services.log_dir, free_port())
        services.running["processor"] = replacement
        replacement.wait_ready()
    assert kills == 3

    events = erp_consumer.wait_for("bandeja.document.failed", 1, timeout=60)
    erp_consumer.wait_for("bandeja.document.processed", 2, timeout=60)
    docs = query(
        clean_database.dsn,
        "SELECT d.state, d.reason, r.size, r.processing_crashes FROM documents d"
        " JOIN raw_messages r ON r.id = d.raw_message_id ORDER BY r.size",
    )
    assert [d["state"] for d in docs] == ["processed", "processed", "failed"]
    assert docs[-1]["reason"] == crashes.reason(3)
    assert docs[-1]["size"] >= len(big)  # its bytes kept (CRLF) for `bandeja reprocess`
    assert {e["data"]["mailbox"] for e in events} == {address}
