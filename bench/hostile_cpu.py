"""CPU time one hostile mail costs a processor: the worst case, measured per case.

    .venv/bin/python -m bench.hostile_cpu

Each hostile mail (tests/security/hostile.py and hostile_issue14.py) is parsed as the
processor parses it (``parse_message``, or the headers alone when parsing fails, as
``process.envelope`` does), in this process, one at a time, three times with the header
cache emptied; the table gives the median ``time.process_time`` of each. CPU time, not
wall-clock time, so other work on a shared machine barely changes it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from common.errors import UnparseableMail
from services.processor.parsing import parse_headers_only, parse_message
from services.processor.parsing.policies import _parsed_header
from tests.security.hostile import HOSTILE
from tests.security.hostile_issue14 import HOSTILE_DATA, xml_attachment_mail

TO = "docs@bench.example"


def _process(raw: bytes) -> str:
    try:
        parse_message(raw)
    except UnparseableMail:
        parse_headers_only(raw[: 256 * 1024])
        return "failed"
    return "processed"


def _cases() -> dict[str, Callable[[str], bytes]]:
    return {
        **{f"hostile: {name}": build for name, build in HOSTILE.items()},
        **HOSTILE_DATA,
        "hostile: XML attachment 20 MiB": xml_attachment_mail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    worst = ("", 0.0)
    print(f"{'case':44} {'bytes':>10} {'outcome':>9} {'CPU s':>7}")
    for name, build in _cases().items():
        raw = build(TO)
        costs = []
        for _ in range(args.runs):
            # Each run cold: the header cache would make a repeated mail cheaper.
            _parsed_header.cache_clear()
            started = time.process_time()
            outcome = _process(raw)
            costs.append(time.process_time() - started)
        cost = statistics.median(costs)
        worst = max(worst, (name, cost), key=lambda item: item[1])
        print(f"{name:44} {len(raw):>10} {outcome:>9} {cost:>7.3f}")
    print(f"worst: {worst[0]}, {worst[1]:.2f} s of CPU")


if __name__ == "__main__":
    main()
