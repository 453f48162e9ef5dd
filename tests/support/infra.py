"""Real PostgreSQL databases and RabbitMQ vhosts, one per test session.

A session gets its own database and vhost, so a test run never touches the demo's
data and two runs on one machine do not meet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from urllib.parse import quote

import pika
import psycopg

from common.broker import WORKER_QUEUES
from common.migrate import migrate
from services.relay.topology import policy_arguments

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"

TABLES = (
    "outbox",
    "document_files",
    "documents",
    "skipped_mails",
    "raw_message_rules",
    "mail_rules",
    "raw_messages",
    "folder_state",
    "oauth_flows",
    "connect_tickets",
    "mailbox_tokens",
    "mailboxes",
    "imap_slots",
    "tenants",
)


class TestDatabase:
    __test__ = False  # a fixture helper, not a test class

    def __init__(self) -> None:
        self.name = f"bandeja_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.dsn = f"postgresql://postgres@127.0.0.1:5432/{self.name}"

    def create(self) -> TestDatabase:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        migrate(self.dsn)
        return self

    def truncate(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")

    def drop(self) -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q args``; its standard output."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run(
        [ctl, "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


class TestVhost:
    __test__ = False

    def __init__(self) -> None:
        self.name = f"bandeja-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.url = f"{AMQP_BASE}/{quote(self.name, safe='')}"

    def create(self, *, alternate_exchange_policy: bool = True) -> TestVhost:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        if alternate_exchange_policy:  # as docs/runbooks.md has operators do
            rabbitmqctl(*policy_arguments(self.name))
        return self

    def drop(self) -> None:
        rabbitmqctl("delete_vhost", self.name)

    def connections(self, *fields: str) -> list[list[str]]:
        """``fields`` (``rabbitmqctl list_connections`` items) of each connection RabbitMQ
        holds open in this vhost."""
        listed = rabbitmqctl("list_connections", "vhost", *fields)
        rows = [line.split("\t") for line in listed.splitlines()]
        return [row[1:] for row in rows if len(row) == len(fields) + 1 and row[0] == self.name]

    def purge_work_queues(self) -> None:
        """Empty the worker queues (and their delay and dead-letter queues). The vhost
        lives for the session while each test's database starts empty with its ids from 1:
        a retry left by one test would otherwise process another test's mail 1."""
        with pika.BlockingConnection(pika.URLParameters(self.url)) as connection:
            for base in WORKER_QUEUES:
                for name in (base, f"{base}.DQ", f"{base}.XQ"):
                    channel = connection.channel()
                    try:
                        channel.queue_purge(name)
                    except pika.exceptions.ChannelClosedByBroker as exc:
                        if exc.reply_code != 404:  # 404: not declared yet, nothing to purge
                            raise
                    else:
                        channel.close()
