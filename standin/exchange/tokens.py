"""Is a session's bearer token still good? Asked of the identity emulator's /introspect.

Exchange ends a session when the access token it was opened with expires
(`* BYE Session invalidated - AccessTokenExpired`, docs/architecture.md#exo-responses); Dovecot
checks the token only at login, so the proxy asks again while the session lives.
"""

from __future__ import annotations

import logging
import threading

import requests

from standin.control import make_session

log = logging.getLogger(__name__)


class TokenChecker:
    """Blocking introspection calls; sessions run them in the loop's executor."""

    def __init__(self, introspection_url: str, ca_path: str, timeout: float = 5.0) -> None:
        self.introspection_url = introspection_url
        self.ca_path = ca_path
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = make_session(self.ca_path)
        return session

    def active(self, token: str) -> bool:
        """False only when the emulator says so; an unreachable emulator keeps sessions."""
        try:
            response = self._session().post(self.introspection_url, data={"token": token},
                                             timeout=self.timeout)
            response.raise_for_status()
            return bool(response.json().get("active"))
        except (requests.RequestException, ValueError) as exc:
            log.warning("introspection failed, keeping the session: %s", exc)
            return True
