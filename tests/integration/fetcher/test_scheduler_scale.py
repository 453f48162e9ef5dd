"""The scheduler in the real PostgreSQL with thousands of mailboxes (issue 19, the 10,000
mailbox target): every due mailbox enqueued once across two replicas, mailboxes that fall
due close together claimed together, and the poll-age scan kept off the per-claim path."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from common.db import create_pool
from services.fetcher import scheduler
from services.fetcher.scheduler import Scheduler
from services.fetcher.store import schedule
from tests.support.infra import TestDatabase


@pytest.fixture
def pool(clean_database: TestDatabase) -> Iterator[ConnectionPool[Any]]:
    pool = create_pool(clean_database.dsn, name="test-scheduler", max_size=4)
    yield pool
    pool.close()


def _add_mailboxes(dsn: str, count: int, due_within: float) -> None:
    """``count`` active mailboxes, each due at a random moment in the next ``due_within`` s."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mailboxes (address, tenant_id, state, next_fetch_at)"
            " SELECT 'm' || g || '@corp.example', 't1', 'active',"
            "        now() + make_interval(secs => random() * %s)"
            " FROM generate_series(1, %s) g",
            (due_within, count),
        )


def _count_claims(sched: Scheduler, claims: list[int]) -> None:
    """Record how many mailboxes each claim that found any took."""
    original = sched.run_once

    def counting_run_once() -> int:
        due = original()
        if due:
            claims.append(due)
        return due

    sched.run_once = counting_run_once  # type: ignore[method-assign]


def _run_for(sched: Scheduler, seconds: float) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=sched.run_forever, args=(stop,))
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(10)


def test_two_replicas_claim_every_due_mailbox_exactly_once(
    clean_database: TestDatabase, pool: ConnectionPool[Any]
) -> None:
    """3,000 due mailboxes claimed by two schedulers racing in small batches: each one is
    enqueued by exactly one of them."""
    _add_mailboxes(clean_database.dsn, 3000, due_within=0)

    def replica(_: int) -> list[int]:
        claimed: list[int] = []
        while batch := _claim(pool, limit=50):
            claimed += batch
        return claimed

    with ThreadPoolExecutor(2) as replicas:
        first, second = replicas.map(replica, range(2))
    assert first, "both replicas took a share"
    assert second, "both replicas took a share"
    assert not set(first) & set(second)
    assert len(first) + len(second) == len(set(first) | set(second)) == 3000


def _claim(pool: ConnectionPool[Any], limit: int) -> list[int]:
    with pool.connection() as conn:
        return schedule.claim_due(conn, poll_interval=60, limit=limit)


def test_mailboxes_falling_due_close_together_are_claimed_together(
    clean_database: TestDatabase, pool: ConnectionPool[Any]
) -> None:
    """600 mailboxes falling due over 3 s with a one-minute poll: each is enqueued once,
    none waits more than the claim gap (0.5 s), in a handful of claims instead of ~600."""
    _add_mailboxes(clean_database.dsn, 600, due_within=3)
    enqueued: Counter[int] = Counter()
    claims: list[int] = []
    sched = Scheduler(
        pool,
        clean_database.dsn,
        poll_interval=60,
        enqueue=lambda mailbox_id: enqueued.update([mailbox_id]),
    )
    _count_claims(sched, claims)
    _run_for(sched, 6)
    assert len(enqueued) == 600
    assert set(enqueued.values()) == {1}
    # 3 s at one claim per 0.5 s gap, plus the first and a NOTIFY-free margin of two.
    assert len(claims) <= 10, claims
    with psycopg.connect(clean_database.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM mailboxes WHERE next_fetch_at <= now()")
        assert row.fetchone() == (0,)


def test_poll_ages_are_scanned_once_per_interval_not_per_claim(
    clean_database: TestDatabase, pool: ConnectionPool[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan of every mailbox's poll age runs once per FETCH_AGE_EVERY, however many
    claims the scheduler makes meanwhile (it ran every 15th claim: with 10,000 mailboxes
    that was several full scans a second)."""
    _add_mailboxes(clean_database.dsn, 400, due_within=3)
    scans: list[float] = []
    real_observe = scheduler.observe_fetch_age

    def counted(conn: psycopg.Connection[Any]) -> None:
        scans.append(time.monotonic())
        real_observe(conn)

    monkeypatch.setattr(scheduler, "observe_fetch_age", counted)
    # A 2 s poll: a claim every 20 ms or so, well over 15 of them in the run.
    enqueued: set[int] = set()
    claims: list[int] = []
    sched = Scheduler(pool, clean_database.dsn, poll_interval=2, enqueue=enqueued.add)
    _count_claims(sched, claims)
    _run_for(sched, 3.5)
    assert len(enqueued) == 400
    assert len(claims) > 15
    assert len(scans) == 1


def test_a_claim_reads_the_due_mailboxes_not_the_whole_table(
    clean_database: TestDatabase,
) -> None:
    """With 10,000 mailboxes of which ~100 are due, the claim's plan reads them through
    the due index and updates them by key: no sequential scan of the table."""
    _add_mailboxes(clean_database.dsn, 10_000, due_within=60)
    with psycopg.connect(clean_database.dsn, autocommit=True) as conn:
        conn.execute("UPDATE mailboxes SET next_fetch_at = next_fetch_at - interval '0.6 s'")
        conn.execute("ANALYZE mailboxes")
        conn.execute("BEGIN")
        plan = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + schedule._CLAIM_DUE, (60, scheduler.BATCH)
        ).fetchone()
        conn.execute("ROLLBACK")
    assert plan is not None
    nodes = _plan_nodes(plan[0][0]["Plan"])
    assert "Seq Scan" not in {n["Node Type"] for n in nodes}, nodes
    assert any(n.get("Index Name") == "mailboxes_due" for n in nodes)


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


def test_no_mailbox_is_scheduled_further_than_one_poll_interval_ahead(
    clean_database: TestDatabase, pool: ConnectionPool[Any]
) -> None:
    """ "Checked at least once a minute": with a 60 s poll every claimed mailbox's next poll
    is 54-60 s ahead, spread over those six seconds (the jitter only shortens it)."""
    _add_mailboxes(clean_database.dsn, 2000, due_within=0)
    claimed = _claim(pool, limit=2000)
    assert len(claimed) == 2000
    with psycopg.connect(clean_database.dsn) as conn:
        row = conn.execute(
            "SELECT min(extract(epoch FROM next_fetch_at - now())),"
            "       max(extract(epoch FROM next_fetch_at - now())) FROM mailboxes"
        ).fetchone()
    assert row is not None
    soonest, latest = float(row[0]), float(row[1])
    assert 53 < soonest < 55
    assert 59 < latest <= 60
