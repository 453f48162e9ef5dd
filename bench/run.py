"""``make bench``: ``python -m bench.run [--quick] [--only PART]``.

Parts: throughput (60 KB mails, with the bare loop, fetchmail, Bandeja and a py-spy
profile), throughput-1mb, latency, scale, memory, admin-api (the admin API and status
page at 10,000 mailboxes). Everything runs against its own database
and RabbitMQ vhost and one stand-in, all removed at the end. Results are printed and saved
as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench import admin_api, latency, memory, scale, throughput
from bench.events import EventSink
from bench.report import RESULTS_DIR, Report
from bench.stack import Harness, Stack, fetcher_has_idle


@dataclass(frozen=True)
class Sizes:
    mailboxes: int = 20
    per_mailbox: int = 100
    mb_per_mailbox: int = 10
    repeats: int = 3
    latency_mails: int = 200
    scale_mailboxes: int = 1000
    scale_mails: int = 3
    token_lifetime: int = 180
    token_window: float = 360.0
    memory_mailboxes: int = 20
    memory_per_mailbox: int = 500
    # Processor replicas in the throughput and memory parts: one per core, as KEDA would
    # scale them under a backlog (deploy/k8s/base/keda.yaml).
    processors: int = 2
    admin_mailboxes: int = 10_000  # the admin API's listing (quick: same, it takes seconds)


QUICK = Sizes(mailboxes=20, per_mailbox=10, mb_per_mailbox=2, repeats=1, latency_mails=40,
              scale_mailboxes=100, scale_mails=2, token_lifetime=120, token_window=150.0,
              memory_mailboxes=10, memory_per_mailbox=100)


def part_throughput(h: Harness, r: Report, s: Sizes) -> None:
    throughput.run(h, r, "throughput_60k", mailboxes=s.mailboxes, per_mailbox=s.per_mailbox,
                   mail_bytes=60_000, repeats=s.repeats, processors=s.processors,
                   profile_dir=RESULTS_DIR / time.strftime("profile-%Y%m%d-%H%M%S"))


def part_throughput_1mb(h: Harness, r: Report, s: Sizes) -> None:
    throughput.run(h, r, "throughput_1mb", mailboxes=s.mailboxes, per_mailbox=s.mb_per_mailbox,
                   mail_bytes=1_000_000, repeats=s.repeats, processors=s.processors,
                   profile_dir=RESULTS_DIR / time.strftime("profile-%Y%m%d-%H%M%S-1mb"))


def part_latency(h: Harness, r: Report, s: Sizes) -> None:
    r.add("latency", "polling_2s", _latency(h, s, idle=False))
    if fetcher_has_idle():
        r.add("latency", "idle", _latency(h, s, idle=True))
    else:
        r.add("latency", "idle", latency.IDLE_SLOT)


def _latency(h: Harness, s: Sizes, *, idle: bool) -> dict[str, Any]:
    stack = Stack(h, poll_interval=2.0, idle=idle).start()
    sink = EventSink(stack.vhost.url, "bandeja.document.#")
    result: dict[str, Any] = {}
    try:
        addresses = h.addresses("lat", 10)
        stack.connect(addresses, threads=4)
        stack.start_fetcher()
        sink.start()
        stack.release(addresses)
        time.sleep(5)  # first cycle (and IDLE sessions) settle before the first mail
        result = latency.run(stack, sink, addresses, s.latency_mails)
        result["idle"] = idle
        result["target_p95_<_poll+1s"] = "PASS" if float(result["p95_s"]) < 3.0 else "FAIL"
    finally:
        try:
            sink.close()
        finally:
            result["exit_codes"] = stack.stop()
    return result


def part_scale(h: Harness, r: Report, s: Sizes) -> None:
    result = scale.run(h, s.scale_mailboxes, s.scale_mails, s.token_lifetime, s.token_window)
    fetcher_cpu = result["cycle_cpu_cores"]["fetcher"]
    result["target_cycle_<60s_fetcher_<1core"] = (
        "PASS" if result["cycle_s"] < 60 and fetcher_cpu < 1.0 else "FAIL")
    r.add("scale", "result", result)


def part_admin_api(h: Harness, r: Report, s: Sizes) -> None:
    r.add("admin_api", "result", admin_api.run(h, s.admin_mailboxes))


def part_memory(h: Harness, r: Report, s: Sizes) -> None:
    result = memory.run(h, s.memory_mailboxes, s.memory_per_mailbox, s.processors)
    worst = max(v["growth_after_warmup_pct"] for v in result.values()
                if isinstance(v, dict) and "growth_after_warmup_pct" in v)
    result["target_growth_<10pct"] = "PASS" if worst < 10 else "FAIL"
    r.add("memory", "result", result)


PARTS: dict[str, Callable[[Harness, Report, Sizes], None]] = {
    "throughput": part_throughput,
    "throughput-1mb": part_throughput_1mb,
    "latency": part_latency,
    "scale": part_scale,
    "memory": part_memory,
    "admin-api": part_admin_api,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes)")
    parser.add_argument("--only", choices=sorted(PARTS), action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--token-window", type=float,
                        help="seconds to count token-endpoint calls in the scale part")
    parser.add_argument("--processors", type=int,
                        help="processor replicas for throughput and memory (default 2)")
    parser.add_argument("--env", action="append", default=[], metavar="BANDEJA_X=VALUE",
                        help="a setting for every service of the run (repeatable)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.processors:
        sizes = replace(sizes, processors=args.processors)
    if args.token_window:
        sizes = replace(sizes, token_window=args.token_window)
    report = Report()
    harness = Harness(args.env).start()
    failed = []
    try:
        for name in args.only or list(PARTS):
            print(f"== {name} ==", flush=True)
            started = time.monotonic()
            try:
                PARTS[name](harness, report, sizes)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                report.add(name, "error", traceback.format_exc(limit=5))
            report.add(name, "part_seconds", round(time.monotonic() - started, 1))
    finally:
        harness.stop()
        path = report.save(sys.argv)
        print(f"results: {path}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
