"""Bandeja end to end: from releasing the seeded mailboxes to the scheduler (t0) to the last
``bandeja.document.processed`` event received by a plain consumer.

The mailboxes were connected through the real HTTP flow and then paused
(``next_fetch_at = 'infinity'``) with the fetcher already running and idle; t0 is the
moment they are made due and the scheduler is woken with NOTIFY, exactly what a fresh
connect does. So the time covers scheduling, IMAP, the raw store, the process queue,
parsing, the CRM write, the outbox relay and RabbitMQ — not process start-up. Once the
last event is in, the mailboxes are paused again.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.events import EventSink, processed_in
from bench.postgresql import checkpoint
from bench.profile import Profiler
from bench.report import Throughput
from bench.seed import Seeded
from bench.stack import Stack


def run(stack: Stack, sink: EventSink, seeded: Seeded, label: str,
        profile_dir: Path | None = None) -> tuple[Throughput, dict[str, Path]]:
    profiler = None
    if profile_dir is not None:
        pids = {k: v for k, v in stack.pids().items() if k != "auth"}
        profiler = Profiler(pids, profile_dir)
        if profiler.start():
            time.sleep(1.0)  # let py-spy attach
        else:
            print("py-spy not installed: profile skipped", flush=True)
            profiler = None
    db_t0 = stack.scalar("SELECT now()")
    started = time.monotonic()
    stack.release(seeded.addresses)
    timeout = 120 + seeded.mails * 0.5
    events = sink.wait_for(processed_in(seeded.addresses), seeded.mails, timeout=timeout)
    last = max(t for t, _ in events)
    first = min(t for t, _ in events)
    fetched = stack.scalar(
        "SELECT extract(epoch FROM max(r.fetched_at) - %s) FROM raw_messages r"
        " JOIN mailboxes m ON m.id = r.mailbox_id WHERE m.address = ANY(%s)",
        db_t0, seeded.addresses)
    written = stack.scalar(
        "SELECT extract(epoch FROM max(created_at) - %s) FROM documents WHERE mailbox = ANY(%s)",
        db_t0, seeded.addresses)
    seconds = last - started
    profiles = profiler.stop() if profiler else {}
    # Paused again once measured: left active, these mailboxes would be polled every
    # BANDEJA_POLL_INTERVAL through every later run of every peer (a TLS login each, for
    # the fetcher, Dovecot and PostgreSQL), loading the machine more with each run.
    stack.pause(seeded.addresses)
    # The pages the run dirtied are written now, inside the caller's CPU account, and the
    # next run starts with no checkpoint pending (bench/postgresql.py).
    checkpoint()
    stored = stack.processed_documents(seeded.addresses)
    note = (f"documents table: {stored} processed; first event {first - started:.2f} s,"
            f" last raw mail stored {float(fetched or 0):.2f} s,"
            f" last document written {float(written or 0):.2f} s")
    if stored != seeded.mails:
        note += f" (EXPECTED {seeded.mails})"
    if profiler:
        note += ", under py-spy"
    # Bytes: what was seeded (the peers count what they fetched, the same mails).
    return Throughput(label, len(events), seeded.bytes, seconds, note), profiles
