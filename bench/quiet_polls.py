"""What one quiet poll costs: N connected mailboxes with nothing to fetch, all released at
once, each cycle timed until every mailbox has finished one fetch run; CPU per poll by
component (``bench/cpu.py``).

    .venv/bin/python -m bench.quiet_polls --mailboxes 1000 --cycles 3 [--env BANDEJA_X=V]

The first cycle creates each mailbox's folder on the Dovecot side; compare the later ones.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.cpu import CpuAccount
from bench.report import Report
from bench.scale import _one_cycle
from bench.stack import Harness, Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quiet_polls", description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="BANDEJA_X=VALUE")
    args = parser.parse_args(argv)
    report, harness = Report(), Harness(args.env).start()
    stack = Stack(harness, poll_interval=3600).start()  # only the releases make them due
    try:
        addresses = harness.addresses("quiet", args.mailboxes)
        started = time.monotonic()
        stack.connect(addresses, threads=8)
        print(f"connected {args.mailboxes} in {time.monotonic() - started:.1f} s", flush=True)
        stack.start_fetcher()
        for cycle in range(args.cycles):
            with CpuAccount(stack.pids()) as account:
                seconds = _one_cycle(stack, addresses)
            report.add("quiet_polls", f"cycle{cycle}", {
                "seconds": round(seconds, 2),
                "polls_per_s": round(args.mailboxes / seconds, 1),
                "cpu_ms_per_poll": account.milliseconds_per(args.mailboxes),
            })
    finally:
        stack.stop()
        harness.stop()
        print(f"results: {report.save(sys.argv)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
