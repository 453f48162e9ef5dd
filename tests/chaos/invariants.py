"""The end-state checks, written without Bandeja's code: plain SQL on the CRM tables, the
events as the ERP received them, and the \\Seen times the IMAP observer recorded."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tests.chaos.seed import Seeded, normalise_message_id

# time.time() and PostgreSQL's now() read the same clock; now() has µs resolution and the
# observer stamps the reply after parsing it. 5 ms absorbs scheduling between the two.
CLOCK_SLACK = 0.005
PROCESSED = "bandeja.document.processed"


@dataclass
class Outcome:
    seeded: int = 0
    documents: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    unknown_documents: list[str] = field(default_factory=list)
    bad_documents: list[str] = field(default_factory=list)
    event_problems: list[str] = field(default_factory=list)
    seen_violations: list[str] = field(default_factory=list)
    seen_margin_ms: list[float] = field(default_factory=list)
    leftovers: dict[str, int] = field(default_factory=dict)
    process_problems: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} seeded mails have no document, e.g. {self.lost[:3]}")
        if self.duplicates:
            out.append(
                f"{sum(self.duplicates.values())} duplicate documents, "
                f"e.g. {list(self.duplicates.items())[:3]}"
            )
        for label, items in (
            ("unknown documents", self.unknown_documents),
            ("bad documents", self.bad_documents),
            ("event invariant", self.event_problems),
            ("\\Seen before stored", self.seen_violations),
            ("processes", self.process_problems),
        ):
            if items:
                out.append(f"{label}: {len(items)}: {items[:5]}")
        out += [f"left over: {k} = {v}" for k, v in self.leftovers.items() if v]
        return out


def _rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def check_documents(dsn: str, seeded: dict[str, Seeded], out: Outcome) -> dict[str, str]:
    """Exactly one processed document per seeded Message-ID, with the seeded files.
    Returns {document id: message id}."""
    docs = _rows(dsn, "SELECT id::text, message_id, state, mailbox FROM documents")
    files: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for doc_id, name, sha, actual in _rows(
        dsn,
        "SELECT document_id::text, filename, sha256, encode(sha256(content), 'hex')"
        " FROM document_files",
    ):
        files[doc_id][name] = (sha, actual)
    by_mid: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    owner: dict[str, str] = {}
    for doc_id, message_id, state, mailbox in docs:
        mid = normalise_message_id(message_id)
        if mid not in seeded:
            out.unknown_documents.append(f"{doc_id} message_id={message_id!r}")
            continue
        by_mid[mid].append((doc_id, state, mailbox))
        owner[doc_id] = mid
    out.seeded, out.documents = len(seeded), len(docs)
    for mid, mail in seeded.items():
        found = by_mid.get(mid, [])
        if not found:
            out.lost.append(mid)
        elif len(found) > 1:
            out.duplicates[mid] = len(found) - 1
        for doc_id, state, mailbox in found:
            stored = files.get(doc_id, {})
            hashes = {name: sha for name, (sha, _) in stored.items()}
            if state != "processed" or mailbox != mail.address or hashes != mail.attachments:
                out.bad_documents.append(
                    f"{mid}: state={state} mailbox={mailbox} files={sorted(hashes)}"
                )
            if any(sha != actual for sha, actual in stored.values()):
                out.bad_documents.append(f"{mid}: sha256 column does not match content")
    return owner


def check_events(events: list[dict[str, Any]], owner: dict[str, str], out: Outcome) -> None:
    """Each document: ≥ 1 processed event, and every event about it carries one id."""
    ids_by_doc: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] != PROCESSED:
            if event["type"].startswith("bandeja.document."):
                out.event_problems.append(f"{event['type']} {event['id']}")
            continue
        doc_id = event["data"]["document_id"]
        ids_by_doc[doc_id].add(event["id"])
        mid = normalise_message_id(event["data"].get("message_id"))
        if doc_id in owner and mid != owner[doc_id]:
            out.event_problems.append(f"event {event['id']} message_id {mid} != {owner[doc_id]}")
    for doc_id in owner:
        ids = ids_by_doc.get(doc_id, set())
        if not ids:
            out.event_problems.append(f"no processed event for document {doc_id}")
        elif len(ids) > 1:
            out.event_problems.append(f"document {doc_id} has event ids {sorted(ids)}")
    seen: dict[str, str] = {}
    for doc_id, ids in ids_by_doc.items():
        for event_id in ids:
            if seen.setdefault(event_id, doc_id) != doc_id:
                out.event_problems.append(f"event id {event_id} used by two documents")
        if doc_id not in owner:
            out.event_problems.append(f"event for unknown document {doc_id}")


def check_seen_after_stored(
    dsn: str, seeded: dict[str, Seeded], first_seen: dict[tuple[str, int], float], out: Outcome
) -> None:
    """No mail observed \\Seen before its raw bytes' row says it was stored."""
    stored: dict[tuple[str, int], float] = {}
    for address, uid, fetched_at in _rows(
        dsn,
        "SELECT m.address, r.uid, extract(epoch FROM r.fetched_at)::float8"
        " FROM raw_messages r JOIN mailboxes m ON m.id = r.mailbox_id",
    ):
        key = (address, int(uid))
        stored[key] = min(stored.get(key, float("inf")), float(fetched_at))
    for mail in seeded.values():
        key = (mail.address, mail.uid)
        seen_at = first_seen.get(key)
        if seen_at is None:
            continue
        if key not in stored:
            out.seen_violations.append(f"{mail.message_id}: \\Seen but never stored")
            continue
        margin = seen_at - stored[key]
        out.seen_margin_ms.append(margin * 1000)
        if margin < -CLOCK_SLACK:
            out.seen_violations.append(
                f"{mail.message_id}: \\Seen observed {-margin * 1000:.1f} ms before fetched_at"
            )


def check_leftovers(
    dsn: str, seeded: dict[str, Seeded], first_seen: dict[tuple[str, int], float], out: Outcome
) -> None:
    out.leftovers["still unseen"] = sum(
        1 for m in seeded.values() if (m.address, m.uid) not in first_seen
    )
    ((pending,),) = _rows(dsn, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    ((orphans,),) = _rows(
        dsn,
        "SELECT count(*) FROM raw_messages r WHERE NOT EXISTS"
        " (SELECT 1 FROM documents d WHERE d.raw_message_id = r.id)",
    )
    out.leftovers["outbox unpublished"] = int(pending)
    out.leftovers["raw mails without document"] = int(orphans)
