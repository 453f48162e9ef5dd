"""Instructions per parse, counted by valgrind: a figure the host's noise cannot move.

    .venv/bin/python -m bench.parse_instructions [--tree PATH ...]

CPU time on a shared two-core host drifts by half between minutes (BENCHMARKS.md), so a
parsing change worth 10 % cannot be seen in ``bench.parse_cpu``. Counting the CPU's
instructions (callgrind's ``Ir``) is deterministic: the same code and mail give the same
count in any minute (with Python's hash seed fixed, as here). Instructions are not time
(memory and page faults are not in them), so read them beside ``bench.parse_cpu``, not
instead of it.

Each set is parsed once and three times in two child processes under callgrind; the
difference halved is one pass without the start-up. Both children make the mails of all
three passes first, so the difference is parsing alone; the bench mails of each pass are
new ones (other invoice numbers, so other Subjects), as in the pipeline, where the parser's
header cache does not hold a mail's Subject. Until 2026-11-28 noon the passes parsed the
same mails again, so that cache hid the Subject's cost. ``--tree`` measures another checkout
(a ``git worktree`` of the commit to compare), as many as given, in that order; the
default is this one. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETS = {
    "bench mail, CRLF (10)": "crlf",
    "1 MB mail, CRLF (2)": "1mb",
    "own corpus": "own",
}
_CHILD = """
import sys
from bench.seed import pdf_size_for
from standin.samples import invoice_mail
from services.processor.parsing import parse_message
from tests.support.corpus import OWN_CORPUS, mail_files
kind, passes = sys.argv[1], int(sys.argv[2])
if kind == "own":
    corpus = [p.read_bytes() for p in mail_files(OWN_CORPUS)]
    sets = [corpus] * 3
else:
    size, count = (60_000, 10) if kind == "crlf" else (1_000_000, 2)
    sets = [[invoice_mail(p * count + n, to="docs@bench.example", pdf_size=pdf_size_for(size))[0]
             .replace(b"\\n", b"\\r\\n") for n in range(count)] for p in range(3)]
for mails in sets[:passes]:
    for mail in mails:
        try:
            parse_message(mail)
        except Exception:
            pass
"""
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(tree: Path, kind: str, passes: int) -> int:
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", _CHILD, kind, str(passes)],
        # A fixed hash seed: str hashes change dict and set layouts, which moved the counts
        # by 2-4 % between runs of the same code.
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
        capture_output=True, text=True, check=True,
    )
    match = _COLLECTED.search(result.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count from callgrind: {result.stderr[-500:]}")
    return int(match.group(1))


def per_pass(tree: Path, kind: str) -> int:
    return (instructions(tree, kind, 3) - instructions(tree, kind, 1)) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", default=[])
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    trees = args.tree or [REPO]
    print(f"{'millions of instructions per pass':36}" + "".join(f"{n:>24}" for n in SETS))
    for tree in trees:
        figures = [per_pass(tree, kind) / 1e6 for kind in SETS.values()]
        print(f"{tree!s:36}" + "".join(f"{f:>24.1f}" for f in figures), flush=True)


if __name__ == "__main__":
    main()
