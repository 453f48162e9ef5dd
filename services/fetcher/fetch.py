"""One fetch run of one mailbox: lease it, log in, store unread mail, enqueue its
processing, and only then apply the post-action (mark read, move or flag).

Order matters for "nothing lost": raw bytes are committed before the processing message
is published (with a publisher confirm), and the mail is marked read only after both.
A crash anywhere leaves the mail unread on the server, so the next run finds it again;
the raw store's keys make that second pass a no-op.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.broker import PROCESS_MESSAGES_ACTOR, PROCESS_QUEUE, send
from common.db import single_statements
from common.errors import BandejaError, ServiceUnavailable, TokenNotReady
from common.rule_metrics import MAILS_SKIPPED as RULE_SKIPS
from common.settings import Settings
from common.tokens import ExpiryMargin, TokenCipher, request_refresh
from common.tracing import tracer
from services.fetcher import failure_policy, metrics, screening, store, sync
from services.fetcher.errors import LeaseLost, MessageOverCap, TenantBusy
from services.fetcher.imap import ImapSession
from services.fetcher.sessions import SessionPool
from services.fetcher.store import rules as rules_store
from services.fetcher.store import tenant_limits

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A token this close to expiry is not worth a login: Exchange would end the session
# with BYE AccessTokenExpired mid-fetch (docs/architecture.md#exo-limits). Short, because a fetch
# run is short and auth refreshes tokens 15-30 % of their lifetime ahead anyway.
TOKEN_MARGIN = ExpiryMargin(timedelta(seconds=10), 0.05)
MAX_BATCH_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


@dataclass
class FetchDeps:
    settings: Settings
    pool: ConnectionPool[Connection[Any]]
    cipher: TokenCipher
    # One processing message per stored batch: the processor writes it in one transaction.
    enqueue: Callable[[list[int]], None] = lambda raw_ids: send(
        PROCESS_QUEUE, PROCESS_MESSAGES_ACTOR, raw_ids
    )
    owner: str = socket.gethostname()
    # Off unless the process configures it: every run logs in and out.
    sessions: SessionPool = field(default_factory=lambda: SessionPool(0, 0))


@dataclass
class RunStats:
    stored: int = 0
    bytes: int = 0
    unread: int = 0


@dataclass(frozen=True)
class RunStart:
    """What one transaction at the start of a run took and read."""

    mailbox: store.LeasedMailbox
    tenant_wait: float  # > 0: the tenant was told to back off this long; no slot taken
    slot: int | None  # the tenant connection slot held for the run; None: none was free
    position: sync.FolderPosition | None
    token: store.UsableToken | None = field(repr=False)  # None: none usable, auth must refresh


# Its trace (common/tracing.py) goes with the processing messages to the document events.
@tracer.start_as_current_span("fetch mailbox")
def fetch_mailbox(deps: FetchDeps, mailbox_id: int) -> str:
    """Run one fetch; return the result label. Failures are recorded on the mailbox."""
    started = time.monotonic()
    try:
        start = _start_run(deps, mailbox_id)
    except psycopg.Error as exc:
        log.warning("fetch_skipped_database_unavailable", error_type=type(exc).__name__)
        return "skipped"  # the scheduler enqueues it again once the database answers
    if start is None:
        metrics.FETCH_RUNS.labels("skipped").inc()
        return "skipped"
    mailbox = start.mailbox
    log.debug("fetch_started", mailbox_id=mailbox_id)
    try:
        try:
            stats = _run(deps, start)
        except BaseException:
            _release_slot(deps, start)
            raise
        _with_database_retries(partial(_release_ok, deps, start))
    except BandejaError as exc:
        result = _with_database_retries(partial(_record_failure, deps, mailbox, exc)) or "error"
    except psycopg.Error as exc:
        # The database went away mid-run: nothing was marked read that is not stored
        # (the post-action follows the commit), so the next run picks up where this one was.
        log.warning(
            "fetch_interrupted_database_unavailable",
            mailbox_id=mailbox.id,
            error_type=type(exc).__name__,
        )
        failure = ServiceUnavailable(f"database unavailable: {type(exc).__name__}")
        record = partial(_record_failure, deps, mailbox, failure)
        result = _with_database_retries(record) or "error"
    else:
        result = "ok"
        log.info(
            "fetch_finished",
            mailbox_id=mailbox.id,
            stored=stats.stored,
            unread=stats.unread,
            seconds=round(time.monotonic() - started, 3),
        )
    metrics.FETCH_RUNS.labels(result).inc()
    metrics.FETCH_DURATION.observe(time.monotonic() - started)
    return result


def _start_run(deps: FetchDeps, mailbox_id: int) -> RunStart | None:
    """Lease the mailbox, take a tenant connection slot, read the folder position and the
    access token; None if the mailbox is not active or another run has it.

    One statement (store/runs.py): a quiet poll is mostly this bookkeeping. A run that
    finds no free slot in it tries once more.
    """
    cap = deps.settings.imap_connections_per_tenant
    with single_statements(deps.pool) as conn:
        leased = store.start_run(conn, mailbox_id, deps.owner, cap)
        if leased is None:
            return None
        mailbox, wait, slot = leased.mailbox, leased.tenant_wait, leased.slot
        # No free slot in the statement: its slot rows may be missing (a new tenant, a
        # raised cap), or the one free row was locked by the run freeing it (SKIP LOCKED).
        # One more try covers both; without it, 27 runs in 3 minutes of the 10,000-mailbox
        # bench ended as TenantBusy, each a warning and a second's delay (BENCHMARKS.md).
        if slot is None and wait <= 0:
            holder = store.slot_owner(deps.owner, mailbox.id)
            slot = tenant_limits.acquire_slot(conn, mailbox.tenant_id, holder, cap)
    if slot is None:  # the run ends as TenantBusy: its token is not needed
        return RunStart(mailbox, wait, None, None, None)
    token = store.usable_from_row(deps.cipher, leased.token_row, TOKEN_MARGIN)
    return RunStart(mailbox, wait, slot, leased.position, token)


def _release_slot(deps: FetchDeps, start: RunStart) -> None:
    if start.slot is None:
        return
    with single_statements(deps.pool) as conn:
        holder = store.slot_owner(deps.owner, start.mailbox.id)
        tenant_limits.release_slot(conn, start.mailbox.tenant_id, start.slot, holder)


def _release_ok(deps: FetchDeps, start: RunStart) -> None:
    mailbox = start.mailbox
    with single_statements(deps.pool) as conn:
        store.finish_ok(conn, mailbox.id, deps.owner, mailbox.tenant_id, start.slot)


def _with_database_retries(
    action: Callable[[], T], attempts: int = 12, pause: float = 2.0
) -> T | None:
    """Run a bookkeeping write, riding out a short database outage.

    Giving up leaves the mailbox lease to expire on its own (store.LEASE_TTL).
    """
    for attempt in range(attempts):
        try:
            return action()
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                log.warning("fetch_bookkeeping_abandoned")
                return None
            time.sleep(pause)
    return None


def _run(deps: FetchDeps, start: RunStart) -> RunStats:
    if start.tenant_wait > 0:
        raise TenantBusy("tenant throttled by the IMAP server", start.tenant_wait)
    if start.slot is None:
        raise TenantBusy("all IMAP connections of the tenant are in use", 1.0)
    mailbox = start.mailbox
    usable = start.token
    if usable is None:
        raise TokenNotReady(mailbox.id)
    expires_at = usable.expires_at
    session = deps.sessions.take(mailbox.id, mailbox.address, expires_at, usable.issued_at)
    if session is None:
        session = ImapSession.open(deps.settings, mailbox.address, usable.token)
    try:
        stats = _drain(deps, mailbox, start.slot, session, start.position)
    except BaseException as exc:
        if failure_policy.ends_without_logout(exc):
            session.drop()
        else:
            session.close()
        raise
    deps.sessions.park(mailbox.id, mailbox.address, session, expires_at)
    return stats


def _renew_run(
    conn: Connection[Any], deps: FetchDeps, mailbox: store.LeasedMailbox, slot: int
) -> None:
    """Keep the mailbox lease and the tenant slot for another ``store.LEASE_TTL``, in the
    transaction of each batch; a run that lost either stores nothing more."""
    if not store.renew_run(conn, mailbox.id, deps.owner, mailbox.tenant_id, slot):
        raise LeaseLost(f"mailbox {mailbox.id} or its tenant slot is no longer ours")


def _drain(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    slot: int,
    session: ImapSession,
    known: sync.FolderPosition | None,
) -> RunStats:
    status = session.select(mailbox.folder)
    position = sync.position_after_select(known, status.uidvalidity)
    unseen = session.unseen_uids()
    stats = RunStats(unread=len(unseen))
    if not unseen:
        return stats
    with deps.pool.connection() as conn:
        stored = store.stored_uids(conn, mailbox.id, mailbox.folder, position.uidvalidity, unseen)
    _finish_stored(deps, mailbox, session, [s for s in stored.values() if not s.post_action_done])
    new = [uid for uid in unseen if uid not in stored]
    new, matches = _apply_rules(deps, mailbox, slot, session, position, new)
    metrics.UNREAD_BACKLOG.inc(len(new))
    cap = deps.settings.max_message_bytes
    try:
        sizes = session.sizes(new)
        # A mail without a size is read in chunks: bounded memory whatever it turns out to be.
        unsized = [uid for uid in new if uid not in sizes]
        if unsized:
            log.warning("imap_sizes_missing", mailbox_id=mailbox.id, count=len(unsized))
        small, large = sync.split_by_size([u for u in new if u in sizes], sizes, cap)
        whole, chunked = sync.split_by_size(small, sizes, deps.settings.chunk_threshold_bytes)
        for batch in sync.batches(
            whole, sizes, max_count=deps.settings.fetch_batch_size, max_bytes=MAX_BATCH_BYTES
        ):
            bodies = session.fetch_bodies(batch)
            # Checked as read, not as announced: RFC822.SIZE is the server's word.
            for uid in [uid for uid, body in bodies.items() if len(body) > cap]:
                sizes[uid] = len(bodies.pop(uid))
                large.append(uid)
            _store_batch(deps, mailbox, slot, session, position, bodies, stats, matches)
        for uid in sorted(chunked + unsized):
            try:
                _store_chunked(deps, mailbox, slot, session, position, uid, stats, matches)
            except MessageOverCap as exc:
                sizes[uid] = exc.size
                large.append(uid)
        if large:
            _store_batch(
                deps,
                mailbox,
                slot,
                session,
                position,
                session.fetch_headers(large),
                stats,
                matches,
                too_large_sizes=sizes,
            )
    finally:
        metrics.UNREAD_BACKLOG.dec(len(new))
    return stats


def _store_batch(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    slot: int,
    session: ImapSession,
    position: sync.FolderPosition,
    bodies: dict[int, bytes],
    stats: RunStats,
    matches: RuleMatches,
    too_large_sizes: dict[int, int] | None = None,
) -> None:
    if not bodies:
        return
    with deps.pool.connection() as conn, conn.transaction():
        _renew_run(conn, deps, mailbox, slot)
        raw_ids = store.save_raw_batch(
            conn,
            mailbox.id,
            mailbox.folder,
            position.uidvalidity,
            bodies,
            too_large_sizes=too_large_sizes,
        )
        rules_store.save_matches(conn, _matches_of(raw_ids, matches))
        store.save_position(
            conn,
            mailbox.id,
            mailbox.folder,
            sync.FolderPosition(position.uidvalidity, max(bodies)),
        )
    stored = [store.StoredMail(raw_id, uid, False, False) for uid, raw_id in raw_ids.items()]
    _finish_stored(deps, mailbox, session, stored)
    stats.stored += len(bodies)
    stats.bytes += sum(len(b) for b in bodies.values())
    metrics.MESSAGES_FETCHED.inc(len(bodies))
    metrics.BYTES_FETCHED.inc(sum(len(b) for b in bodies.values()))


def _store_chunked(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    slot: int,
    session: ImapSession,
    position: sync.FolderPosition,
    uid: int,
    stats: RunStats,
    matches: RuleMatches,
) -> None:
    with deps.pool.connection() as conn, conn.transaction():
        _renew_run(conn, deps, mailbox, slot)
        raw_id, size = store.save_raw_chunked(
            conn,
            mailbox.id,
            mailbox.folder,
            position.uidvalidity,
            uid,
            session.fetch_chunks(uid, CHUNK_BYTES, deps.settings.max_message_bytes),
        )
        rules_store.save_matches(conn, _matches_of({uid: raw_id}, matches))
        store.save_position(
            conn, mailbox.id, mailbox.folder, sync.FolderPosition(position.uidvalidity, uid)
        )
    _finish_stored(deps, mailbox, session, [store.StoredMail(raw_id, uid, False, False)])
    stats.stored += 1
    stats.bytes += size
    metrics.MESSAGES_FETCHED.inc()
    metrics.BYTES_FETCHED.inc(size)


# uid → the rule its headers matched (as event data), None when only its parsed
# attachments can decide; a uid absent: the mailbox has no rules.
RuleMatches = dict[int, dict[str, Any] | None]


def _matches_of(raw_ids: dict[int, int], matches: RuleMatches) -> dict[int, dict[str, Any] | None]:
    return {raw_id: matches[uid] for uid, raw_id in raw_ids.items() if uid in matches}


def _apply_rules(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    slot: int,
    session: ImapSession,
    position: sync.FolderPosition,
    new: list[int],
) -> tuple[list[int], RuleMatches]:
    """Skip what the rules skip on headers alone; return the mails still to download.

    A mailbox without rules costs one query and nothing on the IMAP side. A skipped mail
    is recorded before its post-action, like stored mail: a crash between the two leaves
    it recorded and unread, and the next run applies the post-action it was recorded with.
    """
    if not new:
        return new, {}
    with deps.pool.connection() as conn:
        rules = rules_store.rules_for(conn, mailbox.id)
        skipped = rules_store.skipped_uids(
            conn, mailbox.id, mailbox.folder, position.uidvalidity, new
        )
    _finish_skipped(
        deps,
        mailbox,
        session,
        position,
        [m for m in skipped.values() if m.post_action and not m.post_action_done],
    )
    new = [uid for uid in new if uid not in skipped]
    if not rules or not new:
        return new, {}
    matches: RuleMatches = {}
    to_download = []
    now = datetime.now(UTC)
    per_fetch = max(deps.settings.fetch_batch_size, 1)
    for start in range(0, len(new), per_fetch):
        batch = new[start : start + per_fetch]
        heads = session.heads(batch)
        # A mail whose headers did not come is decided after parsing, never skipped blind.
        matches.update({uid: None for uid in batch if uid not in heads})
        to_download += [uid for uid in batch if uid not in heads]
        skips = []
        for mail in screening.screen(rules, heads, now):
            if mail.rule is not None and mail.rule.spec.action == "skip":
                skips.append(mail)
            else:
                to_download.append(mail.uid)
                matches[mail.uid] = None if mail.rule is None else mail.rule.as_event_data()
        _record_skipped(deps, mailbox, slot, session, position, skips)
    return sorted(to_download), matches


def _record_skipped(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    slot: int,
    session: ImapSession,
    position: sync.FolderPosition,
    mails: list[screening.Screened],
) -> None:
    if not mails:
        return
    with deps.pool.connection() as conn, conn.transaction():
        _renew_run(conn, deps, mailbox, slot)
        action, _ = store.post_action(conn, mailbox.id)
        rules_store.record_skipped(
            conn,
            mailbox.id,
            mailbox.folder,
            position.uidvalidity,
            [
                rules_store.Skipped(
                    uid=m.uid,
                    message_id=m.message_id,
                    size=m.head.size,
                    rule=m.rule,
                    post_action=action if m.rule.spec.apply_post_action else None,
                )
                for m in mails
                if m.rule is not None
            ],
        )
    RULE_SKIPS.labels("headers").inc(len(mails))
    log.info("mails_skipped_by_rules", mailbox_id=mailbox.id, count=len(mails))
    _finish_skipped(
        deps,
        mailbox,
        session,
        position,
        [
            rules_store.SkippedMail(m.uid, action, False)
            for m in mails
            if m.rule is not None and m.rule.spec.apply_post_action
        ],
    )


def _finish_skipped(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    session: ImapSession,
    position: sync.FolderPosition,
    mails: list[rules_store.SkippedMail],
) -> None:
    """The post-action of recorded skipped mails, each with the one it was recorded with."""
    if not mails:
        return
    with deps.pool.connection() as conn:
        _, move_to = store.post_action(conn, mailbox.id)
    for action in sorted({m.post_action for m in mails if m.post_action}):
        uids = [m.uid for m in mails if m.post_action == action]
        session.apply_post_action(uids, action, move_to)
        with deps.pool.connection() as conn:
            rules_store.mark_skipped_done(
                conn, mailbox.id, mailbox.folder, position.uidvalidity, uids
            )


def _finish_stored(
    deps: FetchDeps,
    mailbox: store.LeasedMailbox,
    session: ImapSession,
    mails: list[store.StoredMail],
) -> None:
    """Enqueue processing (confirmed by the broker), then apply the post-action."""
    if not mails:
        return
    raw_ids = [m.raw_id for m in mails]
    # Mails left over from an interrupted run arrive here all at once; the processor's
    # batches stay the size of a fetch batch.
    size = max(deps.settings.fetch_batch_size, 1)
    for start in range(0, len(raw_ids), size):
        deps.enqueue(raw_ids[start : start + size])
    with deps.pool.connection() as conn:
        store.mark_enqueued(conn, raw_ids)
        # Read now, not at lease time: a setting changed mid-run applies to this batch.
        action, move_to = store.post_action(conn, mailbox.id)
    session.apply_post_action([m.uid for m in mails], action, move_to)
    with deps.pool.connection() as conn:
        store.mark_post_action_done(conn, raw_ids)


def _record_failure(deps: FetchDeps, mailbox: store.LeasedMailbox, exc: BandejaError) -> str:
    history = failure_policy.History(mailbox.error_count, deps.settings.mailbox_error_threshold)
    decision = failure_policy.after_fetch_failure(exc, history)
    if decision.error_kind:
        metrics.IMAP_ERRORS.labels(decision.error_kind).inc()
    with deps.pool.connection() as conn:
        if decision.request_token_refresh:
            request_refresh(conn, mailbox.id)
        if decision.throttle_tenant_seconds > 0:
            tenant_limits.throttle_tenant(conn, mailbox.tenant_id, decision.throttle_tenant_seconds)
            metrics.THROTTLE_WAIT.inc(decision.throttle_tenant_seconds)
        if decision.move_to_error:
            with conn.transaction():
                store.move_to_error(conn, mailbox.id, f"{type(exc).__name__}: {exc}")
            log.error("mailbox_error", mailbox_id=mailbox.id, error=str(exc)[:300])
    log.warning(
        "fetch_failed",
        mailbox_id=mailbox.id,
        error_type=type(exc).__name__,
        error=str(exc)[:300],
        retry_in=round(decision.retry_in, 1),
    )
    with deps.pool.connection() as conn:
        store.release_failed(
            conn, mailbox.id, deps.owner, f"{type(exc).__name__}: {exc}", decision.retry_in
        )
    return decision.result
