"""PostgreSQL's CPU for storing mail: TOAST's default (try lz4, then store out of line)
against ``STORAGE EXTERNAL`` (out of line, no compression attempt) on the binary columns.

``python -m bench.toast_storage [--mails 500] [--rounds 5]``

Each variant gets copies of ``raw_messages`` and ``document_files`` (``LIKE … INCLUDING
ALL``: same columns, indexes, lz4 compression) in a scratch database; only the storage
of ``raw`` and ``content`` differs. A round writes ``--mails`` mails the way the pipeline
does, in transactions of 20: the raw mail (the bench's 60 KB invoice mail: a random,
PDF-like attachment and a small XML) and its two decoded files. The CPU is the
connection's own backend process (psutil on ``pg_backend_pid()``): it does the TOAST work
and nothing else runs on it. Rounds alternate the variants. A second data set of
compressible 60 KB text-only mails shows what ``EXTERNAL`` costs in space when
compression would have helped. The cores are shared: read CPU seconds, not wall time.
"""

from __future__ import annotations

import argparse
import email
import random
import statistics
import time
from email.policy import compat32
from typing import Any

import psutil
import psycopg

from bench.seed import pdf_size_for
from tests.support.infra import TestDatabase
from tests.support.mail import invoice_mail

BATCH = 20
VARIANTS = {"extended": "EXTENDED", "external": "EXTERNAL"}
# Spanish business words: text that lz4 shrinks, as real text-only mail would be.
_WORDS = "factura pago proveedor cliente monto neto iva total fecha orden despacho saludos"


Mail = tuple[bytes, bytes, list[bytes]]  # raw, headers, decoded attachments


def _invoice_mails(count: int) -> list[Mail]:
    mails: list[Mail] = []
    for n in range(count):
        raw, _hashes = invoice_mail(n, to="bench@contoso.example", pdf_size=pdf_size_for(60_000))
        message = email.message_from_bytes(raw, policy=compat32)
        files = [
            payload
            for part in message.walk()
            if part.get_filename() is not None
            and isinstance(payload := part.get_payload(decode=True), bytes)
        ]
        headers = raw.split(b"\n\n", 1)[0]
        mails.append((raw, headers, files))
    return mails


def _text_mails(count: int) -> list[Mail]:
    rng = random.Random(19)
    mails: list[Mail] = []
    for n in range(count):
        headers = f"From: a@x.example\nTo: b@y.example\nSubject: texto {n}\n".encode()
        words = " ".join(rng.choice(_WORDS.split()) for _ in range(7_500)).encode()
        mails.append((headers + b"\n" + words, headers, []))
    return mails


def _prepare(conn: psycopg.Connection[Any]) -> None:
    for name, storage in VARIANTS.items():
        conn.execute(f"CREATE TABLE raw_{name} (LIKE raw_messages INCLUDING ALL)")
        conn.execute(f"CREATE TABLE files_{name} (LIKE document_files INCLUDING ALL)")
        conn.execute(f"ALTER TABLE raw_{name} ALTER COLUMN raw SET STORAGE {storage}")
        conn.execute(f"ALTER TABLE files_{name} ALTER COLUMN content SET STORAGE {storage}")


def _write(conn: psycopg.Connection[Any], name: str, mails: list[Mail]) -> None:
    for start in range(0, len(mails), BATCH):
        with conn.transaction(), conn.cursor() as cursor:
            batch = mails[start : start + BATCH]
            cursor.executemany(
                f"INSERT INTO raw_{name} (mailbox_id, folder, uidvalidity, uid, sha256, size,"
                " raw, headers) VALUES (1, 'INBOX', 1, %s, 'x', %s, %b, %b)",
                [(start + i, len(raw), raw, headers) for i, (raw, headers, _) in enumerate(batch)],
            )
            cursor.executemany(
                f"INSERT INTO files_{name} (document_id, position, filename, content_type,"
                " disposition, source, size, sha256, content)"
                " VALUES (gen_random_uuid(), %s, 'f', 'application/pdf', 'attachment',"
                " 'part', %s, 'x', %b)",
                [(p, len(f), f) for _, _, files in batch for p, f in enumerate(files)],
            )


def _round(dsn: str, name: str, mails: list[Mail]) -> tuple[float, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE raw_{name}, files_{name}")
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = psutil.Process(row[0])
        before, wall = backend.cpu_times(), time.monotonic()
        _write(conn, name, mails)
        after, wall = backend.cpu_times(), time.monotonic() - wall
    cpu = (after.user + after.system) - (before.user + before.system)
    return cpu, wall


def _size(dsn: str, name: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT pg_total_relation_size('raw_{name}') + pg_total_relation_size('files_{name}')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data_sets = {
        "invoice 60 KB": _invoice_mails(args.mails),
        "text 60 KB": _text_mails(args.mails // 2),
    }
    database = TestDatabase().create()
    try:
        with psycopg.connect(database.dsn, autocommit=True) as conn:
            _prepare(conn)
        for label, mails in data_sets.items():
            stored = sum(len(raw) + sum(map(len, files)) for raw, _, files in mails)
            rounds = args.rounds
            cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
            wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(rounds):
                for name in VARIANTS:
                    seconds, elapsed = _round(database.dsn, name, mails)
                    cpu[name].append(seconds * 1000 / len(mails))
                    wall[name].append(elapsed * 1000 / len(mails))
            print(
                f"{label}: {len(mails)} mails, {stored / len(mails) / 1000:.1f} kB stored each,"
                f" median of {rounds}"
            )
            for name in VARIANTS:
                print(
                    f"  {name:9} backend CPU {statistics.median(cpu[name]):.3f} ms/mail"
                    f" (rounds: {', '.join(f'{c:.3f}' for c in cpu[name])}),"
                    f" wall {statistics.median(wall[name]):.3f} ms/mail,"
                    f" tables {_size(database.dsn, name) / len(mails) / 1000:.1f} kB/mail"
                )
    finally:
        database.drop()


if __name__ == "__main__":
    main()
