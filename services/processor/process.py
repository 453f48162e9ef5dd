"""Turn one stored mail into one CRM document (processed, failed or too_large)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.errors import PermanentError, UnparseableMail
from services.processor import metrics, store
from services.processor.parsing import ParsedMail, parse_headers_only, parse_message

log = structlog.get_logger(__name__)


class RawMessageMissing(PermanentError):
    pass


@dataclass
class ProcessDeps:
    pool: ConnectionPool[Connection[Any]]
    max_message_bytes: int


def process_message(deps: ProcessDeps, raw_id: int) -> str:
    """Process one raw mail; return the document state, or ``duplicate``.

    Database and broker failures propagate, so dramatiq retries with backoff; only the
    mail's own defects end as a ``failed`` document.
    """
    started = time.monotonic()
    with deps.pool.connection() as conn:
        raw = store.load_raw(conn, raw_id)
        conn.commit()  # nothing is held open while the mail is parsed
        if raw is None:
            raise RawMessageMissing(f"raw message {raw_id} does not exist")
        if raw.has_document:
            return "duplicate"
        mail, state, reason = _parse(raw, deps.max_message_bytes)
        with conn.transaction():
            document_id = store.write_document(conn, raw, mail, state=state, reason=reason)
    if document_id is None:
        return "duplicate"
    metrics.DOCUMENTS.labels(state).inc()
    metrics.PROCESS_DURATION.observe(time.monotonic() - started)
    log.info(
        "document_written",
        raw_id=raw_id,
        document_id=str(document_id),
        state=state,
        attachments=len(mail.attachments),
        reason=reason,
    )
    return state


def _parse(raw: store.RawMail, cap: int) -> tuple[ParsedMail, str, str | None]:
    if raw.too_large or raw.raw is None:
        reason = f"message of {raw.size} bytes exceeds the {cap}-byte cap; headers kept"
        return _headers_only(raw.headers or b""), "too_large", reason
    try:
        return parse_message(raw.raw), "processed", None
    except UnparseableMail as exc:
        return _headers_only(raw.raw[: 256 * 1024]), "failed", exc.reason


def _headers_only(head: bytes) -> ParsedMail:
    try:
        return parse_headers_only(head)
    except UnparseableMail:
        return ParsedMail.bodiless(defects=["unreadable headers"])
