"""Audit what the image installs for known-vulnerable dependencies (``make audit``).

The audited set is ``requirements.lock``, the hash-pinned lock file the Dockerfile
installs with ``--require-hashes`` (not the development virtualenv, which also holds the
test tools). pip-audit reads the pins without resolving or installing anything.

pip-audit asks a vulnerability service about every installed distribution. When the
service cannot answer (offline, or a registry mirror whose per-version JSON PyPI's API
does not serve), pip-audit exits 0 with "No known vulnerabilities found" having audited
nothing. This wrapper says so plainly: exit 0 with a BLOCKED line when nothing could be
audited, exit 1 when a vulnerability is found or when part of the audit silently failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

OWN = {"bandeja"}  # our own package is not on PyPI
LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def main(lock: Path = LOCK) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        result = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--format", "json",
             "--output", str(report), "--timeout", "20",
             # The lock pins every package with hashes: audit exactly those, no resolver.
             "--requirement", str(lock), "--require-hashes", "--no-deps", "--disable-pip"],
            capture_output=True, text=True, timeout=300, check=False,
        )
        if not report.exists():
            print(f"audit: FAILED, pip-audit produced no report:\n{result.stderr[-2000:]}")
            return 1
        dependencies = json.loads(report.read_text())["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d and d["name"] not in OWN]
    skipped = [d for d in dependencies if "skip_reason" in d and d["name"] not in OWN]
    if not audited:
        print(f"audit: BLOCKED, the vulnerability service knew none of {len(skipped)} packages"
              f" (e.g. {skipped[:1]}); nothing was checked on this network")
        return 0
    vulnerable = {d["name"]: [v["id"] for v in d["vulns"]] for d in audited if d.get("vulns")}
    if vulnerable:
        print(f"audit: FAILED, known vulnerabilities: {vulnerable}")
        return 1
    if len(skipped) > len(dependencies) // 10:
        print(f"audit: FAILED, {len(skipped)} of {len(dependencies)} packages not audited")
        return 1
    print(f"audit: ok, {len(audited)} packages audited, none vulnerable")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else LOCK))
