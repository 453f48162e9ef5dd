"""One processor's CPU per mail with nothing else running: the bench's 60 KB invoice mails
(CRLF, as IMAP serves them) stored in a fresh database, then ``process_messages`` called
in-process on batches, as the actor does (no broker, no fetcher, no relay).

    .venv/bin/python -m bench.processor_alone [--mails 2000] [--batch 20]

Prints the process's CPU time per mail over every batch after the first (the warm-up).
Run it under ``py-spy record -f raw`` to see where that time goes.
"""

from __future__ import annotations

import argparse
import time

from bench.seed import pdf_size_for
from common.db import create_pool
from common.logging import configure_logging
from services.processor.process import ProcessDeps, process_messages
from standin.samples import invoice_mail
from tests.integration.processor.stored import store_raw
from tests.support.infra import TestDatabase
from tests.support.mailboxes import insert_mailbox


def store(dsn: str, mails: int) -> list[int]:
    mailbox_id = insert_mailbox(dsn, "docs@bench.example")
    pdf_size = pdf_size_for(60_000)
    return [
        store_raw(
            dsn,
            mailbox_id,
            n + 1,
            _crlf(invoice_mail(n, to="docs@bench.example", pdf_size=pdf_size)[0]),
        )
        for n in range(mails)
    ]


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\n", b"\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    configure_logging(level="INFO", fmt="json", process="processor")
    database = TestDatabase().create()
    try:
        raw_ids = store(database.dsn, args.mails)
        pool = create_pool(database.dsn, name="bench-processor-alone", max_size=2)
        try:
            deps = ProcessDeps(pool=pool, max_message_bytes=50_000_000)
            batches = [raw_ids[i : i + args.batch] for i in range(0, len(raw_ids), args.batch)]
            process_messages(deps, batches[0])  # warm-up: imports, prepared statements
            started = time.process_time()
            for batch in batches[1:]:
                process_messages(deps, batch)
            seconds = time.process_time() - started
        finally:
            pool.close()
    finally:
        database.drop()
    timed = len(raw_ids) - len(batches[0])
    print(f"processor alone: {1000 * seconds / timed:.3f} ms of CPU per mail ({timed} mails)")


if __name__ == "__main__":
    main()
