"""HTTPS and TLS trust shared by the identity client and the IMAP client.

``BANDEJA_CA_BUNDLE`` adds a CA to the system store. requests takes one file, so the
system bundle and the extra CA are combined once. ``trust_env = False`` matters: this
kind of machine sets REQUESTS_CA_BUNDLE, which would silently override ``verify``.
"""

from __future__ import annotations

import ssl
import tempfile
from functools import cache
from pathlib import Path

import certifi
import requests


@cache
def combined_ca_file(extra_ca: Path | None) -> str:
    if extra_ca is None:
        return certifi.where()
    combined = Path(tempfile.gettempdir()) / f"bandeja-ca-{abs(hash(str(extra_ca)))}.pem"
    combined.write_text(
        Path(certifi.where()).read_text() + "\n" + extra_ca.read_text(), encoding="utf-8"
    )
    return str(combined)


def https_session(extra_ca: Path | None, *, timeout: float = 15.0) -> requests.Session:
    session = _TimeoutSession(timeout)
    session.trust_env = False
    session.verify = combined_ca_file(extra_ca)
    return session


@cache
def tls_context(extra_ca: Path | None) -> ssl.SSLContext:
    """One client context per process: building one re-reads the CA store, which was half
    of the fetcher's CPU when made per login (BENCHMARKS.md). Contexts are thread-safe."""
    context = ssl.create_default_context()
    if extra_ca is not None:
        context.load_verify_locations(cafile=str(extra_ca))
    return context


class _TimeoutSession(requests.Session):
    """A session that never waits forever: msal passes no timeout of its own."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, *args: object, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)  # type: ignore[arg-type]
