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

import psycopg

from common.migrate import migrate

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"

TABLES = (
    "outbox",
    "document_files",
    "documents",
    "raw_messages",
    "folder_state",
    "oauth_flows",
    "mailbox_tokens",
    "mailboxes",
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


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=60)


class TestVhost:
    __test__ = False

    def __init__(self) -> None:
        self.name = f"bandeja-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.url = f"{AMQP_BASE}/{quote(self.name, safe='')}"

    def create(self) -> TestVhost:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def drop(self) -> None:
        rabbitmqctl("delete_vhost", self.name)
