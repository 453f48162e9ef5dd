"""fetchmail as a user would run it: one rc file, every mailbox polled in turn, once.

PLAIN passwords (LOGIN) over IMAPS, the way every peer in the run reaches the server
(Exchange Online only offers IMAP over TLS on port 993), with the certificate checked
against the stand-in's CA; ``keep`` so the mail stays on the server; unseen mail only
(no ``--fetchall``); delivered to ``--bsmtp /dev/null`` (the cheapest sink: no MDA fork
per mail). ``tls=False`` gives the plain-port variant the first benchmark rounds used.
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


def rc_file(port: int, passwords: dict[str, str], ca_path: str | None) -> str:
    # The stand-in's certificate names "localhost" (and the IP only as a SAN, which
    # fetchmail does not read), hence sslcommonname.
    transport = (f'ssl sslcertck sslcertfile "{ca_path}" sslcommonname localhost'
                 if ca_path else 'sslproto ""')
    users = "\n".join(
        f'    user "{a}" there with password "{p}" is "root" here options keep {transport}'
        for a, p in passwords.items())
    return ("set no bouncemail\nset no syslog\n"
            f"poll 127.0.0.1 protocol IMAP service {port} auth password\n{users}\n")


def run(dovecot: DovecotServer, addresses: list[str], workdir: Path, *,
        tls: bool = True) -> Throughput:
    passwords = {a: secrets.token_urlsafe(12) for a in addresses}
    dovecot.create_users(passwords)
    workdir.mkdir(parents=True, exist_ok=True)
    rc = workdir / "fetchmailrc"
    port = dovecot.imaps_port if tls else dovecot.imap_port
    rc.write_text(rc_file(port, passwords, str(dovecot.ca_path) if tls else None))
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
    transport = "IMAPS" if tls else "plain IMAP"
    return Throughput("fetchmail (sequential, 1 run)", mails, size, seconds,
                      f"{transport}, LOGIN, keep, --bsmtp /dev/null")
