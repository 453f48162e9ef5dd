"""The servers a benchmark part runs against.

:class:`Harness` is the one stand-in (identity emulator + Dovecot) and tenant for the whole
``make bench`` run; :class:`Stack` is one isolated Bandeja deployment (its own PostgreSQL
database, RabbitMQ vhost and four service processes) that a part starts and drops.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from common.settings import Settings
from standin.testing import StandIn
from tests.support.flows import connect_mailbox
from tests.support.infra import TestDatabase, TestVhost
from tests.support.services import (
    CLIENT_ID,
    CLIENT_SECRET,
    Services,
    free_port,
    new_token_keys,
    service_env,
)


def fetcher_has_idle() -> bool:
    return "idle_sessions" in Settings.model_fields


class Harness:
    """Stand-in, a consented tenant and the auth port every stack reuses."""

    def __init__(self, settings: list[str] | None = None) -> None:
        """``settings``: ``BANDEJA_X=VALUE`` items (a bench's repeatable ``--env``)."""
        self.directory = Path(tempfile.mkdtemp(prefix="bandeja-bench-"))
        self.directory.chmod(0o755)
        # Many sessions per imap process: parked sessions at 10,000 mailboxes are 20,000
        # logged-in sessions, past Dovecot's process_limit at one process each.
        self.standin = StandIn(self.directory / "standin", imap_sessions_per_process=50)
        self.auth_port = free_port()
        self.domain = f"bench{uuid.uuid4().hex[:6]}.example"
        self.tenant: dict[str, str] = {}
        # BANDEJA_* settings for every stack of the run (``--env``), e.g. to compare one.
        self.extra_env: dict[str, str] = dict(item.split("=", 1) for item in settings or [])

    def start(self) -> Harness:
        self.standin.start()
        control = self.standin.identity.control
        base = f"http://127.0.0.1:{self.auth_port}"
        control.register_client(CLIENT_ID, CLIENT_SECRET,
                                [f"{base}/oauth/callback", f"{base}/admin-consent/callback"])
        self.tenant = control.create_tenant(self.domain)
        # App-only tokens (the bare loop) need the tenant's admin consent.
        control.grant_admin_consent(self.tenant["id"], CLIENT_ID)
        return self

    def addresses(self, prefix: str, count: int) -> list[str]:
        tag = uuid.uuid4().hex[:4]
        return [f"{prefix}{tag}-{i}@{self.domain}" for i in range(count)]

    def stop(self) -> None:
        self.standin.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class Stack:
    """One Bandeja: database, vhost, auth + processor + relay, and the fetcher on demand."""

    def __init__(self, harness: Harness, *, poll_interval: float = 2.0, idle: bool = False,
                 processors: int = 1) -> None:
        self.harness = harness
        self.processors = processors
        self.poll_interval = poll_interval
        self.idle = idle
        self.db = TestDatabase()
        self.vhost = TestVhost()
        self.services: Services | None = None

    @property
    def dsn(self) -> str:
        return self.db.dsn

    def start(self) -> Stack:
        self.db.create()
        self.vhost.create()
        env = service_env(
            database_url=self.db.dsn, broker_url=self.vhost.url, standin=self.harness.standin,
            http_port=self.harness.auth_port, token_keys=new_token_keys(),
            poll_interval=self.poll_interval)
        # Polling only unless asked: IDLE watchers would wake paused mailboxes while they
        # are seeded, before the timed window starts.
        if not self.idle:
            env["BANDEJA_IDLE_SESSIONS"] = "0"
        env.update(self.harness.extra_env)
        log_dir = self.harness.directory / f"logs-{self.db.name}"
        log_dir.mkdir()
        self.services = Services(env, log_dir).start("auth", "processor", "relay")
        if self.processors > 1:
            self.services.add_replicas("processor", self.processors - 1)
        return self

    def connect(self, addresses: list[str], threads: int = 1) -> None:
        """Users in the emulator, then the real HTTP connect flow; leaves them paused."""
        standin = self.harness.standin
        assert self.services is not None

        def one(address: str) -> None:
            standin.identity.control.create_user(address, tenant=self.harness.tenant["id"])
            page = connect_mailbox(self.services.auth_url, standin, address)  # type: ignore[union-attr]
            if page.status_code != 200 or "Buzón conectado" not in page.text:
                raise RuntimeError(f"connect {address}: {page.status_code} {page.text[:300]}")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, addresses))
        self.pause(addresses)

    def start_fetcher(self) -> None:
        assert self.services is not None
        self.services.start("fetcher")

    def add_fetcher_replicas(self, count: int) -> None:
        assert self.services is not None
        self.services.add_replicas("fetcher", count)

    def ops_url(self, name: str) -> str:
        assert self.services is not None
        return self.services.running[name].ops_url

    def log_path(self, name: str) -> Path:
        assert self.services is not None
        return self.services.running[name].log_path

    def spread(self, addresses: list[str], interval: float) -> None:
        """Make each due at a random moment within the next ``interval`` seconds: the
        steady state of a fleet connected over time, rather than all at once."""
        self._sql("UPDATE mailboxes SET next_fetch_at = now()"
                  " + make_interval(secs => random() * %s) WHERE address = ANY(%s)",
                  interval, addresses)

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def pause(self, addresses: list[str]) -> None:
        """No scheduled fetch for these mailboxes until :meth:`release`."""
        self._sql("UPDATE mailboxes SET next_fetch_at = 'infinity' WHERE address = ANY(%s)",
                  addresses)

    def release(self, addresses: list[str]) -> None:
        """Make them due now and wake the scheduler (what a fresh connect does)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("UPDATE mailboxes SET next_fetch_at = now() WHERE address = ANY(%s)",
                         (addresses,))
            conn.execute("NOTIFY bandeja_mailbox")

    def scalar(self, query: str, *params: object) -> Any:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
        return row[0] if row else None

    def _sql(self, query: str, *params: object) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(query, params)

    def processed_documents(self, addresses: list[str]) -> int:
        return int(self.scalar(
            "SELECT count(*) FROM documents WHERE state = 'processed' AND mailbox = ANY(%s)",
            addresses))

    def pids(self) -> dict[str, int]:
        assert self.services is not None
        return {name: proc.process.pid for name, proc in self.services.running.items()}

    def stop(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        try:
            if self.services is not None:
                codes = self.services.stop()
        finally:
            self.vhost.drop()
            self.db.drop()
        return codes
