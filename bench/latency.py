"""Mail appended to a mailbox → ``document.processed`` event received, one mail at a time."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

from bench.events import EventSink
from bench.report import median, percentile
from bench.seed import pdf_size_for
from bench.stack import Stack
from tests.support.mail import invoice_mail

_numbers = itertools.count(500_000)


def run(stack: Stack, sink: EventSink, addresses: list[str], mails: int,
        mail_bytes: int = 60_000, gap: float = 0.15) -> dict[str, Any]:
    """Append ``mails`` mails round the mailboxes, ``gap`` s apart (±50 %), then wait."""
    dovecot = stack.harness.standin.dovecot
    appended: dict[str, float] = {}
    rng = random.Random(7)
    for i in range(mails):
        n = next(_numbers)
        raw, _ = invoice_mail(n, to=addresses[i % len(addresses)],
                              pdf_size=pdf_size_for(mail_bytes))
        dovecot.append(addresses[i % len(addresses)], raw)
        appended[f"Factura electrónica N° {1000 + n}"] = time.monotonic()
        time.sleep(gap * rng.uniform(0.5, 1.5))
    wanted = set(appended)
    events = sink.wait_for(lambda e: e["type"] == "bandeja.document.processed"
                           and e["data"].get("subject") in wanted, mails, timeout=120 + mails)
    latencies = [t - appended[e["data"]["subject"]] for t, e in events]
    return {
        "mails": len(latencies),
        "poll_interval_s": stack.poll_interval,
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies), 3),
        "mean_s": round(sum(latencies) / len(latencies), 3),
        "median_s": round(median(latencies), 3),
    }


IDLE_SLOT = ("not measured: this fetcher has no IMAP IDLE (no BANDEJA_IDLE_SESSIONS setting); "
             "bench.run measures it automatically once common.settings has idle_sessions")
