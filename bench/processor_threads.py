"""Processor worker threads: Bandeja end to end on 60 KB mail with the processors' thread
count set per stack (the fetcher keeps its default), each stack run three times on fresh
mailboxes (``bench.alternate`` with ``BANDEJA_PROCESSOR_THREADS`` per stack).

    .venv/bin/python -m bench.processor_threads 8 2 8 2

Stacks alternate as given, so a machine that drifts affects both.
"""

from __future__ import annotations

import argparse

from bench.alternate import run_stacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.processor_threads", description=__doc__)
    parser.add_argument("threads", type=int, nargs="+")
    args = parser.parse_args(argv)
    return run_stacks("processor_threads", [
        (f"threads{threads}", {"BANDEJA_PROCESSOR_THREADS": str(threads)})
        for threads in args.threads
    ])


if __name__ == "__main__":
    raise SystemExit(main())
