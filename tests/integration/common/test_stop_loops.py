"""Stopping a service's background loops (common.runtime.stop_loops) with the real
PostgreSQL up and down: a turn in progress finishes and commits, and loops that wait for
a database that is not there end in about a second, not after the pool's 30 s timeout."""

from __future__ import annotations

import threading
import time

import psycopg

from common.db import create_pool
from common.loops import Loop
from common.runtime import start_loops, stop_loops
from tests.support.infra import TestDatabase
from tests.support.services import free_port


def test_loops_waiting_for_an_unreachable_database_stop_within_seconds() -> None:
    pool = create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/bandeja", name="t")
    turns = threading.Semaphore(0)

    def work() -> bool:
        turns.release()
        with pool.connection():  # waits for a connection the database never gives
            return False

    stop = threading.Event()
    loop = Loop("waits", work, idle_wait=1.0)
    threads = start_loops([(f"waits-{n}", loop.run) for n in range(3)], stop)
    for _ in threads:
        assert turns.acquire(timeout=10)
    stop.set()
    started = time.monotonic()
    stop_loops(threads, pool)
    assert time.monotonic() - started < 10  # the pool's timeout is 30 s
    assert not any(t.is_alive() for t in threads)


def test_a_turn_in_progress_finishes_and_commits(database: TestDatabase) -> None:
    pool = create_pool(database.dsn, name="test-stop-loops", max_size=4)
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS stop_loops_turns (n int)")
        conn.execute("TRUNCATE stop_loops_turns")
    working = threading.Event()

    def work() -> bool:
        with pool.connection() as conn:
            working.set()
            # Longer than the second that marks a loop stuck on the pool: it holds its
            # connection, so it is not stuck.
            conn.execute("SELECT pg_sleep(1.5)")
            conn.execute("INSERT INTO stop_loops_turns VALUES (1)")
        return False

    stop = threading.Event()
    threads = start_loops([("writes", Loop("writes", work, idle_wait=60.0).run)], stop)
    assert working.wait(10)
    stop.set()
    stop_loops(threads, pool)
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM stop_loops_turns").fetchone() == (1,)
        conn.execute("DROP TABLE stop_loops_turns")
