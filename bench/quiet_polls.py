"""What one quiet poll costs: N connected mailboxes with nothing to fetch, all released at
once, each cycle timed until every mailbox has finished one fetch run; CPU per poll by
component (``bench/cpu.py``).

    .venv/bin/python -m bench.quiet_polls --mailboxes 1000 --cycles 3 [--env BANDEJA_X=V]

The first cycle creates each mailbox's folder on the Dovecot side; compare the later ones.
"""

from __future__ import annotations

import argparse
import time

from bench.cpu import CpuAccount
from bench.scale import _one_cycle
from bench.stack import Harness, Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quiet_polls", description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="BANDEJA_X=VALUE")
    args = parser.parse_args(argv)
    harness = Harness()
    harness.extra_env = dict(item.split("=", 1) for item in args.env)
    harness.start()
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
            rate = args.mailboxes / seconds
            print(f"cycle {cycle}: {seconds:.1f} s, {rate:.1f} polls/s; ms of CPU per poll:",
                  account.milliseconds_per(args.mailboxes), flush=True)
    finally:
        stack.stop()
        harness.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
