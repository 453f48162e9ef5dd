"""CPU time of one mail's parse, per parsing option, on the bench mail and both corpora.

    .venv/bin/python -m bench.parse_cpu [--runs 5] [--mails 100]

Options measured, each in this process with ``time.process_time`` over a fixed loop, the
median of ``--runs`` loops, in ms per mail:

* ``parse_message``: what the processor runs (split.py's boundary split for well-formed
  mail, the feed parser for the rest);
* ``parse_message, feed parser only``: the same with the split turned off (the parse
  before issue #19);
* ``split tree only`` / ``feed parser tree only (compat32)``: building the MIME tree
  alone, without the walk, headers, names and invoices;
* ``fast-mail-parser`` (Rust mailparse), its own parse only, when installed
  (``pip install fast-mail-parser``; not a dependency, see BENCHMARKS.md).

The bench mail is the throughput bench's 60 KB invoice mail (bench/seed.py), ``--mails``
distinct ones (each with its own Message-ID, subject and date, as a processor sees them),
with LF line ends as generated and with CRLF as IMAP serves them; and a tenth as many of
the 1 MB bench's mail, with CRLF.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import statistics
import time
from collections.abc import Callable
from email.policy import compat32
from unittest import mock

from bench.seed import pdf_size_for
from common.errors import UnparseableMail
from services.processor.parsing import entity, parse_message, policies
from services.processor.parsing.model import ParseLimits
from services.processor.parsing.split import split_tree
from standin.samples import invoice_mail
from tests.support.corpus import OWN_CORPUS, SHARED_CORPUS, mail_files

_LIMITS = ParseLimits()


def _parse(raw: bytes) -> None:
    with contextlib.suppress(UnparseableMail):
        parse_message(raw)


def _feed_parser_only(raw: bytes) -> None:
    with mock.patch.object(entity, "split_tree", return_value=None):
        _parse(raw)


def _split_tree(raw: bytes) -> None:
    split_tree(raw, _LIMITS, policies.modern(_LIMITS))


def _compat32_tree(raw: bytes) -> None:
    email.parser.BytesParser(policy=compat32).parsebytes(raw)


def _options() -> dict[str, Callable[[bytes], None]]:
    options: dict[str, Callable[[bytes], None]] = {
        "parse_message": _parse,
        "parse_message, feed parser only": _feed_parser_only,
        "split tree only": _split_tree,
        "feed parser tree only (compat32)": _compat32_tree,
    }
    try:
        import fast_mail_parser  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return options

    def native(raw: bytes) -> None:
        # Only its time is measured here; what it raises on odd mail does not matter.
        with contextlib.suppress(Exception):
            fast_mail_parser.parse_email(raw)

    return {**options, "fast-mail-parser, its own parse": native}


def ms_per_mail(option: Callable[[bytes], None], mails: list[bytes], runs: int) -> float:
    loops = []
    for _ in range(runs):
        started = time.process_time()
        for raw in mails:
            option(raw)
        loops.append(time.process_time() - started)
    return 1000 * statistics.median(loops) / len(mails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mails", type=int, default=100)
    args = parser.parse_args()
    pdf_size = pdf_size_for(60_000)
    bench_mails = [
        invoice_mail(n, to="docs@bench.example", pdf_size=pdf_size)[0] for n in range(args.mails)
    ]
    sets = {
        "bench mail (60 KB)": bench_mails,
        # As IMAP serves it (RFC 3501 literals carry CRLF line ends).
        "bench mail, CRLF": [m.replace(b"\n", b"\r\n") for m in bench_mails],
        # The 1 MB bench's mail, where passes over the whole mail show.
        "1 MB mail, CRLF": [
            invoice_mail(n, to="docs@bench.example", pdf_size=pdf_size_for(1_000_000))[0]
            .replace(b"\n", b"\r\n")
            for n in range(max(1, args.mails // 10))
        ],
        "own corpus": [p.read_bytes() for p in mail_files(OWN_CORPUS)],
        "shared corpus": [p.read_bytes() for p in mail_files(SHARED_CORPUS)],
    }
    # The shared corpus is absent from a clone without ../shared: its column is left out.
    names = [name for name, mails in sets.items() if mails]
    print(f"{'ms of CPU per mail':36}" + "".join(f"{n:>20}" for n in names))
    for label, option in _options().items():
        figures = [ms_per_mail(option, sets[n], args.runs) for n in names]
        print(f"{label:36}" + "".join(f"{f:>20.3f}" for f in figures))
    split = [
        sum(split_tree(m, _LIMITS, policies.modern(_LIMITS)) is not None for m in sets[n])
        for n in names
    ]
    print(
        "mails the split path takes: "
        + ", ".join(f"{n} {s}/{len(sets[n])}" for n, s in zip(names, split, strict=True))
    )


if __name__ == "__main__":
    main()
