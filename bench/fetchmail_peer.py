"""fetchmail as a user would run it: one rc file, every mailbox polled in turn, once.

PLAIN passwords over the plain IMAP port with TLS off (``sslproto ""``, a per-user
option); ``keep`` so the mail stays on the server; unseen mail only (no ``--fetchall``);
delivered to ``--bsmtp /dev/null`` (the cheapest sink: no MDA fork per mail).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from pathlib import Path

from bench.report import Throughput
from standin.testing import DovecotServer

# Non-verbose output: "reading message u@h:1 of 100 (405 header octets) (60377 body octets)"
_READ = re.compile(r"reading message \S+ of \d+ \((\d+) header octets\)(?: \((\d+) body octets\))?")


def rc_file(port: int, passwords: dict[str, str]) -> str:
    users = "\n".join(
        f'    user "{a}" there with password "{p}" is "root" here options keep sslproto ""'
        for a, p in passwords.items())
    return ("set no bouncemail\nset no syslog\n"
            f"poll 127.0.0.1 protocol IMAP service {port} auth password\n{users}\n")


def run(dovecot: DovecotServer, addresses: list[str], workdir: Path) -> Throughput:
    passwords = {a: secrets.token_urlsafe(12) for a in addresses}
    dovecot.create_users(passwords)
    workdir.mkdir(parents=True, exist_ok=True)
    rc = workdir / "fetchmailrc"
    rc.write_text(rc_file(dovecot.imap_port, passwords))
    rc.chmod(0o600)
    cmd = ["fetchmail", "-f", str(rc), "--nodetach", "--bsmtp", "/dev/null",
           "--idfile", str(workdir / "ids"), "--pidfile", str(workdir / "pid")]
    env = {**os.environ, "FETCHMAILHOME": str(workdir)}
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600,
                          check=False)
    seconds = time.monotonic() - started
    (workdir / "fetchmail.out").write_text(done.stdout + done.stderr)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"fetchmail exited {done.returncode}: {done.stderr[-2000:]}")
    output = done.stdout + done.stderr
    read = [int(head) + int(body or 0) for head, body in _READ.findall(output)]
    if not read:
        raise RuntimeError(f"could not count fetchmail's mails in:\n{output[-1500:]}")
    mails, size = len(read), sum(read)
    return Throughput("fetchmail (sequential, 1 run)", mails, size, seconds,
                      "plain IMAP, LOGIN, keep, --bsmtp /dev/null")
