"""Helpers for tests: start the identity emulator and Dovecot as real processes.

No pytest imports here; tests/conftest.py wraps these in fixtures.

    with StandIn(tmp_dir) as standin:
        standin.identity.control.create_tenant("contoso.example")
        token = ...
        standin.dovecot.append("alice@contoso.example", raw)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

from standin.control import ControlClient, SignInError, make_session, redirect_params, sign_in
from standin.dovecot import DovecotRunner, die_with_parent

__all__ = ["DovecotServer", "IdentityEmulator", "SignInError", "StandIn", "redirect_params",
           "sign_in"]

_REPO = Path(__file__).resolve().parent.parent


def _read_ready(process: subprocess.Popen[str], timeout: float) -> str:
    """Wait for the `READY …` line a child prints once it listens."""
    assert process.stdout is not None
    result: dict[str, str] = {}

    def reader(stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("READY "):
                result["line"] = line.strip()
                break

    thread = threading.Thread(target=reader, args=(process.stdout,), daemon=True)
    thread.start()
    thread.join(timeout)
    if "line" not in result:
        process.kill()
        raise RuntimeError(f"{process.args!r} did not print READY within {timeout}s")
    return result["line"]


def _python_module(module: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True, env=env,
        start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509


def _stop(process: subprocess.Popen[str] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class IdentityEmulator:
    """`python -m standin.identity` on a free port.

    Attributes once started: `base_url` (https://127.0.0.1:PORT), `ca_path` (str),
    `control` (ControlClient), `introspection_url`, `state_dir`.
    """

    def __init__(self, state_dir: Path | str | None = None, port: int = 0) -> None:
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="standin-id-")
        self.state_dir = Path(state_dir or self._tmp.name)  # type: ignore[union-attr]
        self.port = port
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None
        self.control: ControlClient

    @property
    def ca_path(self) -> str:
        return str(self.state_dir / "ca.pem")

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    def authority(self, tenant: str = "organizations") -> str:
        return f"{self.base_url}/{tenant}"

    def session(self) -> requests.Session:
        """A requests session trusting only the test CA (trust_env False)."""
        return make_session(self.ca_path)

    def msal_app(self, client_id: str, secret: str, tenant: str = "organizations") -> Any:
        """A fresh msal.ConfidentialClientApplication pointed at the emulator."""
        import msal

        return msal.ConfidentialClientApplication(
            client_id, client_credential=secret, authority=self.authority(tenant),
            instance_discovery=False, http_client=self.session())

    def start(self) -> IdentityEmulator:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._process = _python_module("standin.identity", "--port", str(self.port),
                                       "--state-dir", str(self.state_dir))
        self.base_url = _read_ready(self._process, 30).split()[1]
        self.control = ControlClient(self.base_url, self.ca_path)
        return self

    def stop(self) -> None:
        if hasattr(self, "control"):
            self.control.session.close()
        _stop(self._process)
        self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> IdentityEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class DovecotServer(DovecotRunner):
    """Dovecot in-process-managed (see DovecotRunner), with a temp directory by default.

    Attributes once started: `host` ("127.0.0.1"), `imap_port`, `imaps_port`, `ca_path`,
    `log_path`; methods `create_user`, `append`, `unseen_uids`, `flags`, `admin_session`.
    """

    host = "127.0.0.1"

    def __init__(self, introspection_url: str, ca_dir: Path | str,
                 directory: Path | str | None = None, sessions_per_process: int = 1) -> None:
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="standin-dovecot-")
            Path(self._tmp.name).chmod(0o755)
            directory = self._tmp.name
        super().__init__(Path(directory), introspection_url, Path(ca_dir),
                         sessions_per_process=sessions_per_process)

    @property
    def imap_port(self) -> int:
        return self.ports.imap

    @property
    def imaps_port(self) -> int:
        return self.ports.imaps

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()


class StandIn:
    """The emulator plus Dovecot wired to it. Attributes: `identity`, `dovecot`."""

    def __init__(self, directory: Path | str | None = None,
                 imap_sessions_per_process: int = 1) -> None:
        self.directory = Path(directory) if directory else None
        self._imap_sessions_per_process = imap_sessions_per_process
        self.identity = IdentityEmulator(self.directory / "identity" if self.directory else None)
        self.dovecot: DovecotServer

    def start(self) -> StandIn:
        self.identity.start()
        try:
            self.dovecot = DovecotServer(
                self.identity.introspection_url, self.identity.state_dir,
                self.directory / "dovecot" if self.directory else None,
                sessions_per_process=self._imap_sessions_per_process)
            self.dovecot.start()
        except BaseException:
            self.identity.stop()
            raise
        return self

    def stop(self) -> None:
        stoppers: list[Callable[[], None]] = [self.identity.stop]
        if hasattr(self, "dovecot"):
            stoppers.insert(0, self.dovecot.stop)
        for stop in stoppers:
            stop()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
