"""1,000 mailboxes with a few mails each: one full scheduling cycle, process CPU and memory,
and token-endpoint calls per hour with every token kept fresh (the ``make bench`` part).

``python -m bench.scale --mailboxes 10000 --minutes N`` runs the steady-state fleet bench
instead (bench/fleet.py): two fetcher replicas, mail into random mailboxes, freshness.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench import bare, fleet
from bench.events import EventSink, processed_in
from bench.report import Report
from bench.sampler import cpu_seconds, rss_mb
from bench.seed import seed
from bench.stack import Harness, Stack

DEFAULT_LIFETIME = 3600


def run(harness: Harness, count: int, mails_each: int, lifetime: int, window: float,
        poll_interval: float = 60.0) -> dict[str, Any]:
    control = harness.standin.identity.control
    stack = Stack(harness, poll_interval=poll_interval).start()
    sink = EventSink(stack.vhost.url, "bandeja.document.#")
    out: dict[str, Any] = {"mailboxes": count, "mails_each": mails_each,
                           "poll_interval_s": poll_interval}
    try:
        control.set_access_token_lifetime(lifetime)
        addresses = harness.addresses("scale", count)
        started = time.monotonic()
        stack.connect(addresses, threads=8)
        out["connect_s"] = round(time.monotonic() - started, 1)
        sink.start()
        seeded = seed(harness.standin.dovecot, addresses, mails_each, 5_000)
        stack.start_fetcher()
        pids = stack.pids()
        out.update(_cycle(stack, sink, addresses, seeded.mails, pids))
        out.update(_token_window(stack, pids, lifetime, window, count))
        out.update(_empty_cycles(harness, stack, addresses, pids))
    finally:
        try:
            control.set_access_token_lifetime(DEFAULT_LIFETIME)
            sink.close()
        finally:
            out["exit_codes"] = stack.stop()
    return out


def _one_cycle(stack: Stack, addresses: list[str]) -> float:
    """Release every mailbox at once; seconds until each has finished one fetch run."""
    db_t0 = stack.scalar("SELECT now()")
    started = time.monotonic()
    stack.release(addresses)
    fetched = 0
    while fetched < len(addresses):
        if time.monotonic() - started > 900:
            raise TimeoutError(f"only {fetched} of {len(addresses)} mailboxes fetched")
        time.sleep(0.25)
        fetched = int(stack.scalar(
            "SELECT count(*) FROM mailboxes WHERE last_fetch_at >= %s", db_t0))
    return time.monotonic() - started


def _empty_cycles(harness: Harness, stack: Stack, addresses: list[str],
                  pids: dict[str, int]) -> dict[str, Any]:
    """The same cycle with nothing to fetch, for Bandeja and for the bare loop (8 threads):
    what one poll of every mailbox costs, and the floor for it on this machine."""
    cpu0 = cpu_seconds(pids)
    cycle = _one_cycle(stack, addresses)
    cpu1 = cpu_seconds(pids)
    bare_floor = bare.run(harness.standin, harness.tenant["id"], addresses, 8)
    return {
        "empty_cycle_s": round(cycle, 2),
        "empty_cycle_fetcher_cpu_s": round(cpu1["fetcher"] - cpu0["fetcher"], 1),
        "bare8_empty_cycle_s": round(bare_floor.seconds, 2),
    }


def _cycle(stack: Stack, sink: EventSink, addresses: list[str], mails: int,
           pids: dict[str, int]) -> dict[str, Any]:
    cpu0 = cpu_seconds(pids)
    started = time.monotonic()
    cycle = _one_cycle(stack, addresses)
    cpu1 = cpu_seconds(pids)
    sink.wait_for(processed_in(addresses), mails, timeout=600)
    drained = time.monotonic() - started
    return {
        "cycle_s": round(cycle, 2),
        "cycle_cpu_cores": {n: round((cpu1[n] - cpu0[n]) / cycle, 2) for n in pids},
        "all_documents_s": round(drained, 2),
        "documents": stack.processed_documents(addresses),
        "rss_mb_after_cycle": {n: round(v, 1) for n, v in rss_mb(pids).items()},
    }


def _token_window(stack: Stack, pids: dict[str, int], lifetime: int, window: float,
                  count: int) -> dict[str, Any]:
    control = stack.harness.standin.identity.control
    control.reset_stats()
    cpu0 = cpu_seconds(pids)
    time.sleep(window)
    grants = control.stats()["grants"]
    cpu1 = cpu_seconds(pids)
    refreshes = int(grants.get("refresh_token", 0))
    per_hour = refreshes * 3600 / window
    return {
        "token_lifetime_s": lifetime,
        "window_s": window,
        "token_calls_in_window": dict(grants),
        "token_calls_per_hour_measured": round(per_hour),
        # Refreshes scale with 1/lifetime: the same schedule at Microsoft's 3600 s tokens.
        "token_calls_per_hour_at_3600s": round(per_hour * lifetime / 3600),
        "ideal_per_hour_at_3600s": count,
        "steady_cpu_cores": {n: round((cpu1[n] - cpu0[n]) / window, 3) for n in pids},
        "rss_mb_end": {n: round(v, 1) for n, v in rss_mb(pids).items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=5.0,
                        help="measured window, after one poll interval of warm-up")
    parser.add_argument("--mails-per-minute", type=float, default=60.0)
    parser.add_argument("--poll-interval", type=float, default=60.0)
    parser.add_argument("--connect-threads", type=int, default=8)
    parser.add_argument("--warmup-intervals", type=float, default=1.0,
                        help="poll intervals before the window (parked sessions: 3)")
    parser.add_argument("--env", action="append", default=[], metavar="BANDEJA_X=VALUE",
                        help="a setting for every service of the run (repeatable)")
    args = parser.parse_args(argv)
    report = Report()
    report.add("fleet", "refresh_load_3600s_tokens", fleet.refresh_load(args.mailboxes))
    harness = Harness(args.env).start()
    try:
        result = fleet.run(harness, args.mailboxes, args.minutes,
                           mails_per_minute=args.mails_per_minute,
                           poll_interval=args.poll_interval,
                           connect_threads=args.connect_threads,
                           warmup_intervals=args.warmup_intervals)
        result["target_p95_<=60s_fetcher_<=1core"] = (
            "PASS" if result["freshness_p95_s"] <= 60
            and result["fetcher_cpu_cores_total"] <= 1.0 else "FAIL")
        report.add("fleet", "result", result)
    finally:
        harness.stop()
        print(f"results: {report.save(sys.argv)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
