"""Readiness: the schema version, and the waiting start of a worker whose dependencies
are not there yet."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from common.health import SchemaBehind, database_check, run_checks, wait_until_ready
from common.migrate import available_migrations, migrate
from tests.support.infra import PG_ADMIN_DSN


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"bandeja_schema_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_readiness_names_the_migrations_a_database_lacks(empty_database: str) -> None:
    """Unmigrated: not ready, naming every missing migration; one missing: that one;
    all applied: ready; a migration the code does not know (a rollback): still ready."""
    check = database_check(empty_database)
    names = [name for name, _ in available_migrations()]
    with pytest.raises(SchemaBehind, match=", ".join(names)):
        check()
    migrate(empty_database)
    check()
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE name = %s", (names[-1],))
    ok, results = run_checks({"database": check})
    assert not ok
    assert results["database"] == f"failing: SchemaBehind: migrations not applied: {names[-1]}"
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (name) VALUES (%s), ('9999_future')", (names[-1],)
        )
    check()


def test_an_unreachable_database_is_reported_by_type_only() -> None:
    """Connection failures say what failed, never the URL (it may carry a password)."""
    ok, results = run_checks({"database": database_check("postgresql://u:pw@127.0.0.1:1/x")})
    assert not ok
    assert results["database"] == "failing: OperationalError"


def test_waiting_start_retries_with_backoff_until_ready() -> None:
    """A dependency that comes up on the fourth try: waited for, with growing pauses."""
    calls: list[float] = []

    def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise ConnectionError("not yet")

    assert wait_until_ready({"dep": flaky}, threading.Event(), first_delay=0.05, max_delay=0.2)
    pauses = [b - a for a, b in itertools.pairwise(calls)]
    assert len(pauses) == 3
    assert pauses[1] > pauses[0] * 1.2  # doubled, within the ±20 % jitter
    assert max(pauses) < 0.2 * 1.2 + 0.1  # capped


def test_waiting_start_ends_on_stop() -> None:
    """SIGTERM while waiting (the stop event): the wait ends at once, reporting not ready."""
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()

    def down() -> None:
        raise ConnectionError("down")

    assert wait_until_ready({"dep": down}, stop, first_delay=10) is False
    assert time.monotonic() - started < 5
