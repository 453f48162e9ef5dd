"""Worker RSS over a long run: fetcher and processor sampled every second."""

from __future__ import annotations

import time
from typing import Any

from bench.events import EventSink, processed_in
from bench.report import median
from bench.sampler import RssSampler
from bench.seed import seed
from bench.stack import Harness, Stack

WARM_UP = 0.2  # the first fifth of the run is warm-up


def run(harness: Harness, mailboxes: int, per_mailbox: int, processors: int = 1,
        mail_bytes: int = 60_000) -> dict[str, Any]:
    stack = Stack(harness, processors=processors).start()
    sink = EventSink(stack.vhost.url, "bandeja.document.#")
    try:
        addresses = harness.addresses("mem", mailboxes)
        stack.connect(addresses, threads=4)
        stack.start_fetcher()
        sink.start()
        seeded = seed(harness.standin.dovecot, addresses, per_mailbox, mail_bytes)
        pids = {k: v for k, v in stack.pids().items() if k != "auth" and k != "relay"}
        # Five samples a second: a run of 10,000 mails now takes under 20 s, and each
        # window compared below must hold more than one or two samples.
        sampler = RssSampler(pids, interval=0.2)
        sampler.start()
        started = time.monotonic()
        stack.release(addresses)
        sink.wait_for(processed_in(addresses), seeded.mails, timeout=300 + seeded.mails)
        seconds = time.monotonic() - started
        samples = sampler.stop()
        out: dict[str, Any] = {"mails": seeded.mails, "mean_mail_bytes": round(seeded.mean_size),
               "seconds": round(seconds, 1),
               "documents": stack.processed_documents(addresses)}
        out.update(analyse(samples, started, seconds))
    finally:
        try:
            sink.close()
        finally:
            codes = stack.stop()
    out["exit_codes"] = codes
    return out


def analyse(samples: list[tuple[float, dict[str, float]]], started: float,
            seconds: float) -> dict[str, Any]:
    """Growth = median RSS of the last 10 % of the run over that of 20-30 % (after warm-up)."""
    result: dict[str, Any] = {}
    names = samples[0][1].keys() if samples else []
    for name in names:
        def window(lo: float, hi: float, name: str = name) -> list[float]:
            return [s[name] for t, s in samples
                    if started + lo * seconds <= t <= started + hi * seconds]
        base = median(window(WARM_UP, WARM_UP + 0.1))
        end = median(window(0.9, 1.0))
        result[name] = {
            "rss_mb_start": round(samples[0][1][name], 1),
            "rss_mb_after_warmup": round(base, 1),
            "rss_mb_end": round(end, 1),
            "rss_mb_peak": round(max(s[name] for _, s in samples), 1),
            "growth_after_warmup_pct": round(100 * (end / base - 1), 1),
        }
    result["samples"] = len(samples)
    return result
