"""Peak memory of one processor process parsing large mails with eight threads, with and
without the parse budget (``BANDEJA_PROCESS_BYTES_IN_FLIGHT``).

    .venv/bin/python -m bench.parse_memory --pdf-bytes 26000000 --budget-mib 128
    .venv/bin/python -m bench.parse_memory --pdf-bytes 26000000 --budget-mib 0   # unbounded

The mails are stored in a fresh PostgreSQL database and processed by ``process_messages``
in this process (one mail per batch, eight at once: a processor pod's eight worker threads
on a backlog of large mail); RSS is sampled every 10 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import psycopg

from common.db import create_pool
from services.processor.budget import MemoryBudget
from services.processor.process import ProcessDeps, process_messages
from standin.samples import invoice_mail
from tests.support.infra import TestDatabase

ADDRESS = "large@bench.example"


def _store(dsn: str, count: int, pdf_bytes: int) -> tuple[list[int], int]:
    ids, size = [], 0
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES (%s, 't') RETURNING id", (ADDRESS,)
        ).fetchone()
        assert row is not None
        for n in range(count):
            raw = invoice_mail(n, to=ADDRESS, pdf_size=pdf_bytes)[0]
            size = len(raw)
            stored = conn.execute(
                "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, raw)"
                " VALUES (%s, 'INBOX', 1, %s, %s, %s, %s) RETURNING id",
                (row[0], n + 1, hashlib.sha256(raw).hexdigest(), size, raw),
            ).fetchone()
            assert stored is not None
            ids.append(stored[0])
    return ids, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf-bytes", type=int, default=26_000_000)
    parser.add_argument("--mails", type=int, default=8)
    parser.add_argument("--budget-mib", type=int, default=128, help="0: unbounded")
    args = parser.parse_args()
    db = TestDatabase().create()
    try:
        ids, size = _store(db.dsn, args.mails, args.pdf_bytes)
        limit = args.budget_mib * 2**20 if args.budget_mib else 2**62
        pool = create_pool(db.dsn, name="bench-parse-memory", max_size=args.mails + 2)
        deps = ProcessDeps(pool=pool, max_message_bytes=2**62, budget=MemoryBudget(limit))
        process = psutil.Process()
        start_rss = peak = process.memory_info().rss
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.01):
                peak = max(peak, process.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(8) as threads:
            outcomes = list(threads.map(lambda raw_id: process_messages(deps, [raw_id]), ids))
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        pool.close()
        states = sorted({state for outcome in outcomes for state in outcome.values()})
        budget = f"{args.budget_mib} MiB" if args.budget_mib else "unbounded"
        print(
            f"budget {budget}: {args.mails} mails of {size / 1e6:.1f} MB, 8 threads:"
            f" {seconds:.1f} s, RSS {start_rss / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB,"
            f" documents {states}"
        )
    finally:
        db.drop()


if __name__ == "__main__":
    main()
