"""Processor worker threads: Bandeja end to end on 60 KB mail with the processors' thread
count set per stack (the fetcher keeps 8), each stack run three times on fresh mailboxes.

    .venv/bin/python -m bench.processor_threads 8 2 8 2

Prints, per stack: (mails/s, machine CPU ms per mail, processors' CPU ms per mail) for
each of its runs. Stacks alternate as given, so a machine that drifts affects both.
"""

from __future__ import annotations

import argparse
import sys

from bench import bandeja_e2e
from bench.cpu import CpuAccount
from bench.events import EventSink
from bench.report import Report
from bench.seed import seed
from bench.stack import Harness, Stack

MAILBOXES = 20
PER_MAILBOX = 100
RUNS = 3


def one_stack(harness: Harness, threads: int) -> list[tuple[float, float, float]]:
    harness.extra_env = {"BANDEJA_PROCESSOR_THREADS": str(threads)}
    stack = Stack(harness, processors=2).start()
    sink = EventSink(stack.vhost.url, "bandeja.document.#")
    out = []
    try:
        sets = [harness.addresses(f"t{threads}r{i}-", MAILBOXES) for i in range(RUNS)]
        stack.connect([a for s in sets for a in s], threads=4)
        stack.start_fetcher()
        sink.start()
        seeded = [seed(harness.standin.dovecot, s, PER_MAILBOX, 60_000) for s in sets]
        for mails in seeded:
            with CpuAccount(stack.pids()) as account:
                result, _ = bandeja_e2e.run(stack, sink, mails, "Bandeja end to end")
            ms = account.milliseconds_per(result.mails)
            processors = ms.get("processor", 0.0) + ms.get("processor-2", 0.0)
            out.append((round(result.mails_per_s, 1), ms["machine total"], round(processors, 2)))
    finally:
        sink.close()
        stack.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.processor_threads", description=__doc__)
    parser.add_argument("threads", type=int, nargs="+")
    args = parser.parse_args(argv)
    report, harness = Report(), Harness().start()
    try:
        for index, threads in enumerate(args.threads):
            report.add("processor_threads", f"stack{index}_threads{threads}",
                       one_stack(harness, threads))
    finally:
        harness.stop()
        print(f"results: {report.save(sys.argv)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
