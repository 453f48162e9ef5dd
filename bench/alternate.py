"""Bandeja end to end with settings given per stack, the stacks run in turn: how two
settings (or two values of one) are compared on a host whose speed drifts.

    .venv/bin/python -m bench.alternate BANDEJA_WORKER_THREADS=4 - BANDEJA_WORKER_THREADS=4 -

Each argument is one stack: comma-separated ``BANDEJA_X=VALUE`` settings for every service
of that stack, or ``-`` for the defaults. Stacks run in the order given, so alternate them
(A B A B) and a machine that drifts affects both. Each stack runs the throughput bench's
60 KB mail set (20 mailboxes x 100 mails) three times on fresh mailboxes, two processor
replicas. Printed per stack, per run: mails/s, then milliseconds of CPU per mail for the
whole machine, the processors together, the fetcher and PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench import bandeja_e2e
from bench.cpu import CpuAccount
from bench.events import EventSink
from bench.report import Report
from bench.seed import seed
from bench.stack import Harness, Stack
from bench.throughput import DRAIN_POLL_INTERVAL

MAILBOXES = 20
PER_MAILBOX = 100
RUNS = 3

Run = tuple[float, float, float, float, float]


def one_stack(harness: Harness, name: str, settings: dict[str, str]) -> list[Run]:
    harness.extra_env = settings
    stack = Stack(harness, processors=2, poll_interval=DRAIN_POLL_INTERVAL).start()
    sink = EventSink(stack.vhost.url, "bandeja.document.#")
    out: list[Run] = []
    try:
        sets = [harness.addresses(f"{name}r{i}-", MAILBOXES) for i in range(RUNS)]
        stack.connect([a for s in sets for a in s], threads=4)
        stack.start_fetcher()
        sink.start()
        seeded = [seed(harness.standin.dovecot, s, PER_MAILBOX, 60_000) for s in sets]
        for mails in seeded:
            with CpuAccount(stack.pids()) as account:
                result, _ = bandeja_e2e.run(stack, sink, mails, "Bandeja end to end")
            ms = account.milliseconds_per(result.mails)
            processors = ms.get("processor", 0.0) + ms.get("processor-2", 0.0)
            out.append((round(result.mails_per_s, 1), ms["machine total"], round(processors, 2),
                        ms.get("fetcher", 0.0), ms.get("postgresql", 0.0)))
    finally:
        sink.close()
        stack.stop()
    return out


def run_stacks(section: str, stacks: list[tuple[str, dict[str, str]]]) -> int:
    """Run each (label, settings) stack in turn; print and save the figures."""
    report, harness = Report(), Harness().start()
    try:
        for index, (label, settings) in enumerate(stacks):
            runs = one_stack(harness, f"s{index}", settings)
            report.add(section, f"stack{index} {label}", runs)
            print(f"{label}: median {statistics.median(r[0] for r in runs)} mails/s", flush=True)
    finally:
        harness.stop()
        print(f"results: {report.save(sys.argv)}", flush=True)
    return 0


def _settings(spec: str) -> dict[str, str] | None:
    """The settings a stack argument names; None when it is not of that form."""
    if spec == "-":
        return {}
    pairs = [item.partition("=") for item in spec.split(",")]
    if any(not key.startswith("BANDEJA_") or not sep for key, sep, _ in pairs):
        return None
    return {key: value for key, _, value in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alternate", description=__doc__)
    parser.add_argument("stacks", nargs="+", metavar="BANDEJA_X=VALUE[,...]|-")
    args = parser.parse_args(argv)
    stacks = []
    for spec in args.stacks:
        settings = _settings(spec)
        if settings is None:
            parser.error(f"expected BANDEJA_X=VALUE[,...] or -, got {spec!r}")
        stacks.append((spec if settings else "defaults", settings))
    return run_stacks("alternate", stacks)


if __name__ == "__main__":
    raise SystemExit(main())
