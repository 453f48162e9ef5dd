"""Run a real Dovecot (2.3) on 127.0.0.1 with its own configuration in one directory.

IMAP on a plain port and on implicit TLS, OAuth2 (XOAUTH2/OAUTHBEARER) checked against the
identity emulator's `/introspect`, PLAIN checked against a passwd-file. Nothing under
/etc/dovecot is read or written (`dovecot -F -c <our conf>`).

Usage: `python -m standin.dovecot --state-dir DIR --introspection-url URL --ca CA`
prints `READY imap=PORT imaps=PORT` and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from standin.identity.certs import CertPair, ensure_ca, ensure_server_cert

MAIL_USER = "vmail"
MASTER_SEPARATOR = "*"
_CONF = """\
# Written by standin/dovecot.py; regenerated at every start.
base_dir = {run}
state_dir = {root}/state
instance_name = {instance}
listen = 127.0.0.1
protocols = imap
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
auth_verbose = yes
auth_verbose_passwords = no
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = xoauth2 oauthbearer plain
# No auth cache: a revoked or expired token must be refused on the very next login.
auth_cache_size = 0
# Answer a refused login at once (default 2 s) so failure-path tests stay fast.
auth_failure_delay = 0
auth_master_user_separator = {separator}
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{mail}/%d/%n
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_max_userip_connections = 1000
default_process_limit = 1000
default_client_limit = 5000
default_vsz_limit = 1G
login_trusted_networks =

passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u {root}/master-users
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
# Delegated tokens: introspection returns the mailbox address in `username`.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2-user.conf
}}
# App-only (client credentials) tokens: valid for every mailbox of the consented tenant.
# Dovecot 2.3 does not tell the introspection endpoint which user logs in, so the emulator
# returns `tenant_user = app@<tenant domain>` and this passdb compares domains (%Ld).
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2-app.conf
}}
userdb {{
  driver = static
  # allow_all_users: doveadm (tests) may address any mailbox without a passdb lookup.
  args = uid={uid} gid={gid} home={mail}/%d/%n allow_all_users=yes
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = 1000
}}
service imap {{
  process_limit = 1000
  # Reuse imap processes (every virtual user has the vmail uid, so Dovecot allows it): a
  # fork and exec per login was 0.4 of the machine's two cores at 10,000 mailboxes a
  # minute, taken from the fetchers it stands in front of (BENCHMARKS.md).
  service_count = 0
  process_min_avail = 2
  # Sessions per process (DovecotRunner's sessions_per_process): 1 unless a bench holds
  # thousands of parked sessions, which at one process each stop at process_limit.
  client_limit = {sessions_per_process}
}}
service auth {{
  user = root
  client_limit = 5000
}}
service auth-worker {{
  user = root
}}
# Without this, logins from one IP are delayed 2-15 s after a rejected token.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
_OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
tls_ca_cert_file = {ca}
username_attribute = {attribute}
username_format = {validation}
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux), so a crashed
    test run leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mail_owner() -> tuple[int, int]:
    """The uid/gid mail processes run as: `vmail` (created if needed) when root, else us."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                        "--shell", "/usr/sbin/nologin", MAIL_USER], check=True)
        entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_uid, grp.getgrgid(entry.pw_gid).gr_gid


def _reachable_by_others(path: Path) -> bool:
    """Whether every ancestor lets other users through (mail processes are not root)."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents])


@dataclass(frozen=True)
class Ports:
    imap: int
    imaps: int


class DovecotRunner:
    """Write a config into `directory`, start Dovecot, and stop it on exit.

    The emulator's CA signs Dovecot's certificate, so `ca.pem` verifies both servers.
    `ca_dir` is where `ca.pem`/`ca.key` live (created if missing).
    """

    def __init__(self, directory: Path, introspection_url: str, ca_dir: Path,
                 imap_port: int | None = None, imaps_port: int | None = None,
                 sessions_per_process: int = 1) -> None:
        self.directory = Path(directory).resolve()
        # Dovecot recommends 1 for mail processes (one session's disk wait stalls the
        # others), and the chaos run's drop_imap kills Bandeja's processes, not its own.
        self.sessions_per_process = sessions_per_process
        self.introspection_url = introspection_url
        self.ca_dir = Path(ca_dir)
        imap = imap_port or free_port()
        imaps = imaps_port or free_port()
        while imaps == imap:  # two free-port probes can return the same port
            imaps = free_port()
        self.ports = Ports(imap, imaps)
        self.master_password = secrets.token_urlsafe(18)
        self._process: subprocess.Popen[bytes] | None = None
        self._root = self.directory
        self._own_root = False

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def ca_path(self) -> Path:
        return self.ca_dir / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self._root / "dovecot.log"

    @property
    def config_path(self) -> Path:
        """The generated dovecot.conf (for ``doveadm -c`` in tests)."""
        return self._root / "dovecot.conf"

    def start(self) -> DovecotRunner:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._root = self._pick_root()
        cert = ensure_server_cert(self._root, ensure_ca(self.ca_dir), "dovecot")
        conf = self._write_config(cert)
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=open(self._root / "dovecot.stderr", "wb"),  # noqa: SIM115
            start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._own_root:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> DovecotRunner:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _pick_root(self) -> Path:
        """`directory`, or a world-traversable temp dir when mail processes could not reach it."""
        if _reachable_by_others(self.directory) or os.geteuid() != 0:
            return self.directory
        self._own_root = True
        root = Path(tempfile.mkdtemp(prefix="standin-dovecot-"))
        root.chmod(0o755)
        (self.directory / "dovecot-root").unlink(missing_ok=True)
        (self.directory / "dovecot-root").symlink_to(root)
        return root

    def _write_config(self, cert: CertPair) -> Path:
        root = self._root
        uid, gid = _mail_owner()
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(exist_ok=True)
        os.chown(root / "mail", uid, gid)
        (root / "passwd").touch()
        (root / "master-users").write_text(f"standin:{{PLAIN}}{self.master_password}::::::\n")
        for path in (root / "passwd", root / "master-users"):
            path.chmod(0o600)
        for name, attribute, validation in (("user", "username", "%Lu"),
                                            ("app", "tenant_user", "%Ld")):
            (root / f"oauth2-{name}.conf").write_text(_OAUTH2.format(
                url=self.introspection_url, ca=self.ca_path.resolve(), attribute=attribute,
                validation=validation))
        conf = root / "dovecot.conf"
        conf.write_text(_CONF.format(
            run=root / "run", root=root, mail=root / "mail", cert=cert.cert, key=cert.key,
            uid=uid, gid=gid, imap_port=self.ports.imap, imaps_port=self.ports.imaps,
            separator=MASTER_SEPARATOR, instance=f"standin-{self.ports.imap}",
            sessions_per_process=self.sessions_per_process))
        return conf

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self._diagnostics()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.ports.imap), timeout=1) as sock:
                if sock.recv(64).startswith(b"* OK"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot not ready after {timeout}s: {self._diagnostics()}")

    def _diagnostics(self) -> str:
        parts = [p.read_text(errors="replace")[-2000:]
                 for p in (self._root / "dovecot.stderr", self.log_path) if p.exists()]
        return "\n".join(parts)

    # --- users and mail ------------------------------------------------------------------
    def create_user(self, address: str, password: str) -> None:
        """Allow PLAIN login for `address` with `password`."""
        self.create_users({address: password})

    def create_users(self, passwords: dict[str, str]) -> None:
        """Allow PLAIN logins for several addresses at once (one write, one wait)."""
        path = self._root / "passwd"
        wanted = {a.lower(): p for a, p in passwords.items()}
        lines = [ln for ln in path.read_text().splitlines()
                 if ln.partition(":")[0] not in wanted]
        lines += [f"{a}:{{PLAIN}}{p}::::::" for a, p in wanted.items()]
        path.write_text("\n".join(lines) + "\n")
        # Dovecot stats a passwd-file at most once per wall-clock second, so a lookup later
        # in the second of this write could still use the old content: wait it out.
        time.sleep(1.0 - time.time() % 1.0 + 0.01)

    @contextlib.contextmanager
    def admin_session(self, address: str) -> Iterator[IMAPClient]:
        """An IMAP session as `address` through the master user (no token needed)."""
        client = IMAPClient("127.0.0.1", port=self.ports.imap, ssl=False, timeout=10)
        try:
            client.login(f"{address}{MASTER_SEPARATOR}standin", self.master_password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, address: str, raw: bytes, flags: Iterable[str] = (),
               folder: str = "INBOX") -> int | None:
        """APPEND a message; returns its UID (UIDPLUS)."""
        with self.admin_session(address) as client:
            _ensure_folder(client, folder)
            answer = client.append(folder, raw, flags=tuple(flags))
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        if "APPENDUID" in text:
            return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))
        return None

    def append_many(self, address: str, raws: Iterable[bytes], folder: str = "INBOX") -> int:
        """APPEND many messages in one session (a session per mail costs about 13 ms
        here, an APPEND in an open one about 3 ms); returns how many were appended."""
        count = 0
        with self.admin_session(address) as client:
            _ensure_folder(client, folder)
            for raw in raws:
                client.append(folder, raw)
                count += 1
        return count

    def unseen_uids(self, address: str, folder: str = "INBOX") -> list[int]:
        with self.admin_session(address) as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search(["UNSEEN"]))

    def flags(self, address: str, folder: str = "INBOX") -> dict[int, set[str]]:
        with self.admin_session(address) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            fetched = client.fetch(uids, ["FLAGS"]) if uids else {}
        # \Recent belongs to the session, not the message; leave it out.
        return {uid: {f.decode() for f in data[b"FLAGS"]} - {"\\Recent"}
                for uid, data in fetched.items()}


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if not client.folder_exists(folder):
        client.create_folder(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m standin.dovecot")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--introspection-url", required=True)
    parser.add_argument("--ca", type=Path, required=True,
                        help="the emulator's ca.pem (ca.key must sit beside it)")
    parser.add_argument("--imap-port", type=int)
    parser.add_argument("--imaps-port", type=int)
    args = parser.parse_args(argv)
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with DovecotRunner(args.state_dir, args.introspection_url, args.ca.parent,
                       args.imap_port, args.imaps_port) as runner:
        print(f"READY imap={runner.ports.imap} imaps={runner.ports.imaps}", flush=True)
        while not stop["now"]:
            time.sleep(0.2)
    sys.exit(0)


if __name__ == "__main__":
    main()
