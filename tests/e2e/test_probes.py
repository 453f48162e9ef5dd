"""Probes as the kubelet sees them when a dependency is down: liveness never depends on
PostgreSQL or RabbitMQ, a scrape never waits for them, and a worker started before its
database, broker or migrations waits, not ready, instead of exiting (issue 17)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from common.migrate import migrate
from tests.support.infra import PG_ADMIN_DSN, TestDatabase
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import wait_until

WORKERS = ("fetcher", "processor", "relay")


def _nobody_listens() -> str:
    """A PostgreSQL URL whose port nothing listens on: the database is down."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/bandeja"


def _timed_get(url: str) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = requests.get(url, timeout=20)
    return time.monotonic() - started, response


def _live_url(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _live(process: ServiceProcess) -> bool:
    return _live_url(f"{process.ops_url}/healthz")


def test_auth_stays_live_and_scrapable_with_the_database_unreachable(
    services_env: dict[str, str], tmp_path: Path
) -> None:
    """Auth with PostgreSQL down: /healthz keeps answering 200 while /metrics is scraped
    again and again, each scrape answers at once and says `bandeja_database_up 0`, and
    /readyz says not ready. (Before, a scrape waited 30 s for the pool on the event loop
    and /healthz timed out with it, so the kubelet restarted every auth pod.)"""
    env = {**services_env, "BANDEJA_DATABASE_URL": _nobody_listens()}
    auth = ServiceProcess("auth", env, tmp_path, int(env["BANDEJA_HTTP_PORT"]))
    base = env["BANDEJA_PUBLIC_URL"]
    try:
        wait_until(lambda: _live_url(f"{base}/healthz"), 30, what="auth to answer /healthz")
        wait_until(
            lambda: "bandeja_database_up 0.0" in requests.get(f"{base}/metrics", timeout=5).text,
            30,
            what="auth's metrics to mark the database unreachable",
        )
        slowest = {"/metrics": 0.0, "/healthz": 0.0}
        deadline = time.monotonic() + 6  # while the background sample waits on the pool
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < deadline:
                scrapes = [pool.submit(_timed_get, f"{base}/metrics") for _ in range(3)]
                took, health = _timed_get(f"{base}/healthz")
                assert health.status_code == 200, health.text
                slowest["/healthz"] = max(slowest["/healthz"], took)
                for scrape in scrapes:
                    took, metrics = scrape.result()
                    assert metrics.status_code == 200
                    assert "bandeja_database_up 0.0" in metrics.text
                    assert "bandeja_mailboxes{" not in metrics.text  # no stale states
                    slowest["/metrics"] = max(slowest["/metrics"], took)
        assert all(took < 3 for took in slowest.values()), slowest
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["database"].startswith("failing"), ready.json()
        assert auth.process.poll() is None, auth.logs()[-2000:]
        # SIGTERM ends it in seconds, well inside the pod's grace period: its loops wait
        # for a connection the database never gives, and the pool is closed under them
        # (it took 19-30 s, one 10 s join per loop, of the 45 s deploy/k8s allows).
        stopping = time.monotonic()
        assert auth.stop() == 0, auth.logs()[-2000:]
        assert time.monotonic() - stopping < 10, auth.logs()[-2000:]
        assert "PoolClosed" not in auth.logs(), auth.logs()[-2000:]  # no error for the stop
    finally:
        auth.stop()


def test_workers_wait_not_ready_while_database_and_broker_are_down(
    services_env: dict[str, str], tmp_path: Path
) -> None:
    """Fetcher, processor and relay started with PostgreSQL and RabbitMQ unreachable keep
    running: live, not ready, naming what fails; SIGTERM ends them cleanly."""
    env = {
        **services_env,
        "BANDEJA_DATABASE_URL": _nobody_listens(),
        "BANDEJA_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
    }
    workers = {name: ServiceProcess(name, env, tmp_path, free_port()) for name in WORKERS}
    try:
        for worker in workers.values():
            wait_until(lambda w=worker: _live(w), 30, what=f"{worker.command} /healthz")
        time.sleep(6)  # several retries (1, 2, 4 s): waiting, not exiting
        for name, worker in workers.items():
            assert worker.process.poll() is None, f"{name} exited:\n{worker.logs()[-2000:]}"
            assert _live(worker), name
            ready = requests.get(f"{worker.ops_url}/readyz", timeout=10)
            assert ready.status_code == 503, name
            database = "database" if name == "fetcher" else "crm_database"
            assert ready.json()[database].startswith("failing"), (name, ready.json())
            assert ready.json()["broker"].startswith("failing"), (name, ready.json())
    finally:
        codes = {name: worker.stop() for name, worker in workers.items()}
    assert codes == dict.fromkeys(WORKERS, 0), codes


def test_the_relay_stops_in_seconds_after_its_database_went_away(
    services_env: dict[str, str], tmp_path: Path
) -> None:
    """The relay at work, then its database gone (dropped: every connection ends and no
    new one is accepted, as after a failover to nowhere): SIGTERM still ends it cleanly
    within seconds, inside its pod's 30 s grace period. It waited out the pool's 30 s
    timeout in its main thread, then 10 s more for the retention loop."""
    database = TestDatabase().create()
    relay = ServiceProcess(
        "relay", {**services_env, "BANDEJA_DATABASE_URL": database.dsn}, tmp_path, free_port()
    )
    try:
        wait_until(lambda: _ready(relay), 30, what="the relay to be ready")
        database.drop()
        time.sleep(2)  # its loops are back for a connection the database will not give
        stopping = time.monotonic()
        assert relay.stop() == 0, relay.logs()[-2000:]
        assert time.monotonic() - stopping < 10, relay.logs()[-2000:]
        assert "PoolClosed" not in relay.logs(), relay.logs()[-2000:]
    finally:
        relay.stop()
        database.drop()


def _ready(process: ServiceProcess) -> bool:
    try:
        return requests.get(f"{process.ops_url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database with no migrations applied yet, dropped after the test."""
    name = f"bandeja_unmigrated_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_workers_are_ready_only_once_their_migrations_are_applied(
    services_env: dict[str, str], tmp_path: Path, empty_database: str
) -> None:
    """Pointed at a database that answers but lacks the schema, each worker reports not
    ready and names the missing migrations (the processor and relay on their CRM
    database); once `bandeja migrate` has run they become ready on their own."""
    env = {**services_env, "BANDEJA_DATABASE_URL": empty_database}
    workers = {name: ServiceProcess(name, env, tmp_path, free_port()) for name in WORKERS}
    try:
        for name, worker in workers.items():
            wait_until(lambda w=worker: _live(w), 30, what=f"{name} /healthz")
            ready = requests.get(f"{worker.ops_url}/readyz", timeout=10)
            assert ready.status_code == 503, name
            database = "database" if name == "fetcher" else "crm_database"
            assert "migrations not applied: 0001_" in ready.json()[database], ready.json()
            assert ready.json()["broker"] == "ok", ready.json()
        migrate(empty_database)
        for worker in workers.values():
            worker.wait_ready(timeout=60)
    finally:
        codes = {name: worker.stop() for name, worker in workers.items()}
    assert codes == dict.fromkeys(WORKERS, 0), codes
