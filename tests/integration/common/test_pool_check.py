"""The pool's check against the real PostgreSQL: a connection whose backend was ended while
it sat in the pool is never lent, and a healthy idle one is lent without a round trip."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from common.db import check_if_server_spoke, create_pool
from tests.support.infra import TestDatabase


def _backend_pid(pool: psycopg.Connection) -> int:  # type: ignore[type-arg]
    return int(pool.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])  # type: ignore[index]


def test_a_connection_whose_backend_was_terminated_is_not_lent(database: TestDatabase) -> None:
    pool = create_pool(database.dsn, name="test-pool-check", max_size=1)
    try:
        with pool.connection() as conn:
            before = _backend_pid(conn)
        with psycopg.connect(database.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (before,))
        time.sleep(0.2)  # the FATAL and the close reach the pooled socket
        # What a restart or failover does to every pooled connection: the next borrower
        # still gets a working one, with no error to retry.
        with pool.connection() as conn:
            assert _backend_pid(conn) != before
    finally:
        pool.close()


def test_a_healthy_idle_connection_is_lent_without_a_round_trip(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    round_trips: list[object] = []
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(round_trips.append))
    with psycopg.connect(database.dsn) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        check_if_server_spoke(conn)
        assert round_trips == []
        with psycopg.connect(database.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        time.sleep(0.2)
        check_if_server_spoke(conn)
        assert round_trips == [conn]
