"""Turn stored mails into CRM documents (processed, failed or too_large), a batch at a time.

A batch is the mails one fetch stored together. They are loaded in one query, parsed one
by one, and written in one transaction: one broker message, one commit and a handful of
round trips per batch instead of per mail (BENCHMARKS.md, section 5).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.db import is_outage
from common.errors import UnparseableMail
from common.rules import Rule
from common.settings import DEFAULT_PROCESS_BYTES_IN_FLIGHT
from services.processor import attachment_rules, crashes, metrics, store
from services.processor.budget import MemoryBudget
from services.processor.errors import RawMessageMissing
from services.processor.parsing import ParsedMail, parse_headers_only, parse_message

log = structlog.get_logger(__name__)

DUPLICATE = "duplicate"
SKIPPED = "skipped"  # a rule decided on the parsed mail: no document


@dataclass
class ProcessDeps:
    pool: ConnectionPool[Connection[Any]]
    max_message_bytes: int
    budget: MemoryBudget = field(
        default_factory=lambda: MemoryBudget(DEFAULT_PROCESS_BYTES_IN_FLIGHT)
    )


@dataclass
class Parsed:
    """One mail ready to be written, with what its parse cost."""

    draft: store.Draft
    seconds: float


def process_message(deps: ProcessDeps, raw_id: int) -> str:
    """Process one stored mail; return the document state, or ``duplicate``."""
    return process_messages(deps, [raw_id])[raw_id]


def process_messages(
    deps: ProcessDeps, raw_ids: Sequence[int], *, redelivered: bool = False
) -> dict[int, str]:
    """Process stored mails; return each one's document state, ``duplicate``, or ``skipped``
    (a rule skipped it once parsed: no document).

    Database and broker failures propagate, so dramatiq retries the batch with backoff
    (documents already written are skipped on the retry). Only a mail's own defects end
    as a ``failed`` document. Ids with no stored mail raise ``RawMessageMissing`` after
    the others are written. ``redelivered``: RabbitMQ gave this message out before and it
    was never acknowledged, so the process that had it may have died on one of its mails
    (crashes.py).
    """
    crashed = crashes.count(deps.pool, raw_ids) if redelivered else {}
    # After a death the mails go one at a time, so that the next one is pinned on its cause.
    batches = [[raw_id] for raw_id in raw_ids] if crashed else [list(raw_ids)]
    outcomes: dict[int, str] = {}
    for batch in batches:
        outcomes.update(_process_batch(deps, batch))
    missing = [raw_id for raw_id in raw_ids if raw_id not in outcomes]
    if missing:
        raise RawMessageMissing(f"raw messages {missing} do not exist")
    return outcomes


def _process_batch(deps: ProcessDeps, raw_ids: list[int]) -> dict[int, str]:
    with deps.pool.connection() as conn:
        started = store.start_processing(conn, raw_ids)
        conn.commit()
        given_up = {s.raw_id: s.crashes for s in started if s.crashes >= crashes.LIMIT}
        nbytes = sum(s.nbytes for s in started if s.raw_id not in given_up)
        try:
            # Reserved before loading: a batch's peak memory is a multiple of its raw size.
            with deps.budget.reserve(nbytes):
                return _load_parse_write(conn, raw_ids, deps.max_message_bytes, given_up)
        except BaseException:
            _unmark(conn, raw_ids)
            raise


def _unmark(conn: Connection[Any], raw_ids: list[int]) -> None:
    try:
        conn.rollback()
        store.stop_processing(conn, raw_ids)
        conn.commit()
    except psycopg.Error as exc:
        # Likely what failed the attempt. A mark left behind counts as a crash only if this
        # message also comes back redelivered, and a mail needs LIMIT of those.
        log.warning("processing_marks_left", error_type=type(exc).__name__)


def _load_parse_write(
    conn: Connection[Any], raw_ids: Sequence[int], cap: int, given_up: dict[int, int]
) -> dict[int, str]:
    raws = store.load_raws(conn, [raw_id for raw_id in raw_ids if raw_id not in given_up])
    if given_up:  # their headers are all that is read: never more than a head in memory
        raws += store.load_raws(conn, sorted(given_up), head_only=True)
    conn.commit()  # nothing is held open while the mails are parsed
    rules = attachment_rules.rules_for(conn, {r.mailbox_id for r in raws if r.rule_pending})
    conn.commit()
    outcomes: dict[int, str] = {}
    parsed: list[Parsed] = []
    skipped: list[tuple[store.RawMail, ParsedMail, Rule]] = []
    raws.reverse()
    while raws:  # popped as parsed, so each raw mail's bytes can be freed at once
        raw = raws.pop()
        if raw.has_document:
            outcomes[raw.id] = DUPLICATE
        elif raw.id in given_up:
            parsed.append(_given_up(raw, given_up[raw.id]))
        else:
            item = _parse(raw, cap)
            if raw.rule_pending and item.draft.state == "processed":
                # A mail that failed to parse is a document whatever the rules say:
                # its attachments are unknown, and a failure must stay visible.
                rule = attachment_rules.decide_parsed(rules[raw.mailbox_id], raw, item.draft.mail)
                if rule.spec.action == "skip":
                    skipped.append((item.draft.raw, item.draft.mail, rule))
                    outcomes[raw.id] = SKIPPED
                    continue
                item.draft.rule = rule.as_event_data()
            parsed.append(item)
        del raw
    if skipped:
        with conn.transaction():
            attachment_rules.record_skipped(conn, skipped)
    if parsed:
        started = time.monotonic()
        written = _write_all(conn, parsed)
        write_share = (time.monotonic() - started) / len(parsed)
        for item in parsed:
            document_id, draft = written[item.draft.raw.id]
            outcomes[draft.raw.id] = _record(draft, document_id, item.seconds + write_share)
    return outcomes


def _parse(raw: store.RawMail, cap: int) -> Parsed:
    started = time.monotonic()
    mail, state, reason = _parse_mail(raw, cap)
    # The bytes stay in raw_messages; dropping them here keeps a batch's peak memory near
    # one raw mail plus the parsed ones, not every raw mail twice.
    parsed_from = dataclasses.replace(raw, raw=None, headers=None)
    return Parsed(store.Draft(parsed_from, mail, state, reason), time.monotonic() - started)


def _given_up(raw: store.RawMail, crash_count: int) -> Parsed:
    """A mail that killed the processor too often: its headers only, never parsed whole."""
    mail = envelope(raw)
    kept = dataclasses.replace(raw, raw=None, headers=None)
    return Parsed(store.Draft(kept, mail, "failed", crashes.reason(crash_count)), 0.0)


def _parse_mail(raw: store.RawMail, cap: int) -> tuple[ParsedMail, str, str | None]:
    if raw.too_large or raw.raw is None:
        reason = f"message of {raw.size} bytes exceeds the {cap}-byte cap; headers kept"
        return envelope(raw), "too_large", reason
    try:
        return parse_message(raw.raw), "processed", None
    except UnparseableMail as exc:
        return envelope(raw), "failed", exc.reason


def envelope(raw: store.RawMail) -> ParsedMail:
    """The headers of a mail that will not be parsed whole (its stored headers when it was
    over the size cap, else read from its first 256 KiB); a bodiless mail with a defect if
    even those are unreadable."""
    head = raw.headers if raw.too_large or raw.raw is None else raw.raw[: store.HEAD_BYTES]
    try:
        return parse_headers_only(head or b"")
    except UnparseableMail:
        return ParsedMail.bodiless(defects=["unreadable headers"])


Written = dict[int, tuple[Any, store.Draft]]  # raw id → (document id or None, what was written)


def _write_all(conn: Connection[Any], batch: list[Parsed]) -> Written:
    """Write the batch in one transaction; if the CRM refuses one mail, write each alone,
    so that one bad mail cannot hold back (or dead-letter) the mails stored with it."""
    drafts = [item.draft for item in batch]
    try:
        with conn.transaction():
            ids = store.write_documents(conn, drafts)
        return {d.raw.id: (ids[d.raw.id], d) for d in drafts}
    except psycopg.Error as exc:
        if is_outage(exc):
            raise  # the database is unwell, not the data: retry the whole batch later
        log.warning(
            "batch_refused_writing_one_by_one",
            error_type=type(exc).__name__,
            sqlstate=exc.sqlstate,
        )
    return {d.raw.id: _write_alone(conn, d) for d in drafts}


def _write_alone(conn: Connection[Any], draft: store.Draft) -> tuple[Any, store.Draft]:
    try:
        with conn.transaction():
            return store.write_documents(conn, [draft])[draft.raw.id], draft
    except psycopg.Error as exc:
        if is_outage(exc):
            raise
        # What the parser produced broke a CRM constraint. The raw bytes stay in
        # raw_messages; the document says so, so the failure is visible, not silent.
        # No traceback: PostgreSQL's message can quote the mail's content.
        log.error(  # noqa: TRY400
            "document_refused",
            raw_id=draft.raw.id,
            error_type=type(exc).__name__,
            sqlstate=exc.sqlstate,
        )
        refused = store.Draft(
            draft.raw,
            ParsedMail.bodiless(defects=[f"CRM refused the parsed mail: {exc.sqlstate}"]),
            "failed",
            f"the CRM refused the parsed document ({type(exc).__name__})",
        )
    with conn.transaction():
        return store.write_documents(conn, [refused])[draft.raw.id], refused


def _record(draft: store.Draft, document_id: Any, seconds: float) -> str:
    if document_id is None:
        return DUPLICATE  # another worker wrote it between our load and our insert
    metrics.DOCUMENTS.labels(draft.state).inc()
    metrics.PROCESS_DURATION.observe(seconds)
    log.info(
        "document_written",
        raw_id=draft.raw.id,
        document_id=str(document_id),
        state=draft.state,
        attachments=len(draft.mail.attachments),
        reason=draft.reason,
    )
    return draft.state
