"""The end of the road for stored mail whose processing message used up its retries.

Left alone, such a message would sit in ``process.XQ`` with up to a batch of mails that have
no document: stored, but neither processed nor visibly failed. Instead each of its mails
gets one last attempt of its own, so one bad mail cannot hold back the others stored with
it, and a mail that fails again becomes a ``failed`` document: its raw bytes stay in
``raw_messages``, the ERP gets ``bandeja.document.failed``, and ``bandeja reprocess`` can
try it again once the cause is fixed.

A dependency outage is not the mail's fault: while PostgreSQL is unreachable the error
propagates and dramatiq retries the settling later, so no mail is marked failed because
the database was down when its retries ran out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import structlog

from common.db import is_outage
from common.errors import TransientError
from services.processor import crashes, metrics, store
from services.processor.errors import RawMessageMissing
from services.processor.process import DUPLICATE, ProcessDeps, envelope, process_messages

log = structlog.get_logger(__name__)

SETTLED_REASON_PREFIX = "processing failed"
MISSING = "missing"
# Raised into the worker thread when an attempt ran past the actor's time limit: parsing
# the same mail again would only time out again.
_TIME_LIMIT = "TimeLimitExceeded"


def exhausted_raw_ids(message: Mapping[str, Any]) -> list[int]:
    """The raw mail ids of a dead processing message (``process_messages`` or the
    single-mail ``process_message``), as dramatiq's ``Message.asdict()`` gives it."""
    args = message.get("args") or []
    ids = args[0] if args and isinstance(args[0], list) else list(args[:1])
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError(f"not a processing message: args {args!r}")
    return ids


def last_error_type(message: Mapping[str, Any]) -> str:
    """The exception class of the message's last failed attempt (only the name: the
    exception's text can quote the mail)."""
    traceback = str((message.get("options") or {}).get("traceback") or "")
    lines = [line for line in traceback.splitlines() if line and not line.startswith(" ")]
    if not lines:
        return "unknown error"
    return lines[-1].split(":", 1)[0].rsplit(".", 1)[-1] or "unknown error"


def settle(
    deps: ProcessDeps,
    raw_ids: Sequence[int],
    *,
    last_error: str,
    attempts: int,
    redelivered: bool = False,
) -> dict[int, str]:
    """Give each mail without a document one last attempt; record the ones that fail
    again as ``failed``. Returns each id's outcome (document state, ``duplicate`` or
    ``missing``). ``redelivered``: a processor died while settling these mails; the
    deaths are counted as for any processing (crashes.py), so a last attempt that kills
    the processor cannot loop either."""
    if redelivered:
        crashes.count(deps.pool, raw_ids)
    outcomes: dict[int, str] = {}
    for raw_id in raw_ids:
        error = last_error
        if last_error != _TIME_LIMIT:
            try:
                outcomes[raw_id] = process_messages(deps, [raw_id])[raw_id]
                continue
            except TransientError:
                raise  # a busy processor, not the mail: settle again later
            except psycopg.Error as exc:
                if is_outage(exc):
                    raise  # the database, not the mail: settle again later
                error = type(exc).__name__
            except RawMessageMissing:
                outcomes[raw_id] = MISSING
                continue
            except Exception as exc:  # noqa: BLE001 - whatever it is, the mail is settled below
                error = type(exc).__name__
        reason = (
            f"{SETTLED_REASON_PREFIX} {attempts} times (last error: {error});"
            " the raw mail is kept for reprocessing"
        )
        outcomes[raw_id] = _record_failed(deps, raw_id, reason)
    return outcomes


def _record_failed(deps: ProcessDeps, raw_id: int, reason: str) -> str:
    with deps.pool.connection() as conn:
        raws = store.load_raws(conn, [raw_id], head_only=True)  # only its headers are read
        if not raws:
            return MISSING
        raw = raws[0]
        if raw.has_document:
            return DUPLICATE
        draft = store.Draft(raw, envelope(raw), "failed", reason)
        with conn.transaction():
            written = store.write_documents(conn, [draft])
    if written[raw_id] is None:
        return DUPLICATE
    metrics.DOCUMENTS.labels(state="failed").inc()
    log.error("mail_settled_as_failed", raw_id=raw_id, mailbox=raw.mailbox, reason=reason)
    return "failed"
