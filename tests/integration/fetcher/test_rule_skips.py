"""Skipping mail on its headers against the real PostgreSQL, the IMAP side played by a
recording session: a skip is committed before its post-action, a run cut short between
the two applies the recorded post-action on the next run and records nothing twice, and a
mail a rule leaves unread is recognised on every later run without being read again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from psycopg.types.json import Jsonb

from common.db import connect, create_pool
from services.fetcher import fetch, store, sync
from services.fetcher.errors import ConnectionDropped
from services.fetcher.screening import MailHead
from tests.support.infra import TestDatabase

ADDRESS = "docs@corp.example"
POSITION = sync.FolderPosition(uidvalidity=7, last_uid=0)
SLOT = 0  # the tenant connection slot the run holds


def _head(subject: str) -> MailHead:
    header = f"From: a@b.example\r\nSubject: {subject}\r\n\r\n".encode()
    return MailHead(header, 5_000_000, datetime.now(UTC))


class RecordingSession:
    """What the fetcher asks of IMAP, with the post-action failing on demand."""

    def __init__(self, heads: dict[int, MailHead], *, post_action_fails: bool = False) -> None:
        self._heads = heads
        self.post_action_fails = post_action_fails
        self.post_actions: list[tuple[list[int], str]] = []
        self.heads_asked: list[list[int]] = []

    def heads(self, uids: list[int]) -> dict[int, MailHead]:
        self.heads_asked.append(uids)
        return {uid: self._heads[uid] for uid in uids if uid in self._heads}

    def apply_post_action(self, uids: list[int], action: str, move_to: str | None) -> None:
        if self.post_action_fails:
            raise ConnectionDropped("BYE", kind="bye")
        self.post_actions.append((uids, action))


@pytest.fixture
def deps(clean_database: TestDatabase) -> Iterator[fetch.FetchDeps]:
    pool = create_pool(clean_database.dsn, name="test-rules", max_size=2)
    settings = SimpleNamespace(fetch_batch_size=20)
    yield fetch.FetchDeps(settings=cast(Any, settings), pool=pool, cipher=cast(Any, None))
    pool.close()


@pytest.fixture
def mailbox(deps: fetch.FetchDeps, clean_database: TestDatabase) -> store.LeasedMailbox:
    with connect(clean_database.dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES (%s, 't1') RETURNING id",
            (ADDRESS,),
        ).fetchone()
        assert row is not None
        for position, spec in enumerate(
            [
                {"name": "newsletters", "action": "skip", "conditions": {"subject": "*news*"}},
                {
                    "name": "ads",
                    "action": "skip",
                    "conditions": {"subject": "*oferta*"},
                    "apply_post_action": False,
                },
            ]
        ):
            conn.execute(
                "INSERT INTO mail_rules (tenant_id, mailbox_id, position, spec)"
                " VALUES ('t1', %s, %s, %s)",
                (row["id"], position, Jsonb(spec)),
            )
        conn.execute("INSERT INTO tenants (tenant_id) VALUES ('t1')")
        conn.execute("INSERT INTO imap_slots (tenant_id, slot) VALUES ('t1', %s)", (SLOT,))
        leased = store.start_run(conn, row["id"], deps.owner, cap=1)  # the lease and a slot
    assert leased is not None
    assert leased.slot == SLOT
    return leased.mailbox


def _skipped(dsn: str) -> list[dict[str, Any]]:
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT uid, rule_name, post_action, post_action_done_at IS NOT NULL AS done"
            " FROM skipped_mails ORDER BY uid"
        ).fetchall()


def test_a_skip_is_recorded_before_its_post_action_and_finished_by_the_next_run(
    deps: fetch.FetchDeps, mailbox: store.LeasedMailbox, clean_database: TestDatabase
) -> None:
    heads = {1: _head("News of the week"), 2: _head("Oferta"), 3: _head("Factura 12")}
    cut_short = RecordingSession(heads, post_action_fails=True)
    with pytest.raises(ConnectionDropped):
        fetch._apply_rules(deps, mailbox, SLOT, cast(Any, cut_short), POSITION, [1, 2, 3])
    # Recorded, not yet marked read: the server still has it unread, nothing is lost.
    assert _skipped(clean_database.dsn) == [
        {"uid": 1, "rule_name": "newsletters", "post_action": "mark_read", "done": False},
        {"uid": 2, "rule_name": "ads", "post_action": None, "done": False},
    ]

    next_run = RecordingSession(heads)
    to_download, matches = fetch._apply_rules(
        deps, mailbox, SLOT, cast(Any, next_run), POSITION, [1, 2, 3]
    )
    assert next_run.post_actions == [([1], "mark_read")]  # the recorded one, applied once
    assert next_run.heads_asked == [[3]]  # the skipped ones are not read again
    assert to_download == [3]
    assert matches == {3: {"id": None, "name": "default", "document_kind": None, "tags": []}}
    assert [row["done"] for row in _skipped(clean_database.dsn)] == [True, False]

    later = RecordingSession(heads)
    assert fetch._apply_rules(deps, mailbox, SLOT, cast(Any, later), POSITION, [2]) == ([], {})
    assert later.post_actions == []  # the ad stays unread, and is not read again
    assert later.heads_asked == []
    assert len(_skipped(clean_database.dsn)) == 2
