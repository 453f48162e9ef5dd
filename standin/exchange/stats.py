"""Counters and per-user timelines the tests read (all methods thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    at: float  # time.monotonic()
    kind: str  # "command", "authenticate" or "throttled"
    verb: str
    session: int


class ProxyStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.sessions_opened = 0
            self.logins: Counter[str] = Counter()
            self.auth_failures: Counter[str] = Counter()
            self.refused_over_limit: Counter[str] = Counter()
            self.commands: Counter[str] = Counter()
            self.byes: Counter[str] = Counter()
            self.peak_sessions: Counter[str] = Counter()
            self._authenticated: Counter[str] = Counter()
            self._slots: Counter[str] = Counter()
            self._events: dict[str, list[Event]] = {}

    # --- written by sessions --------------------------------------------------------
    def session_opened(self) -> int:
        with self._lock:
            self.sessions_opened += 1
            return self.sessions_opened

    def command(self, verb: str) -> None:
        with self._lock:
            self.commands[verb] += 1

    def bye(self, reason: str) -> None:
        with self._lock:
            self.byes[reason] += 1

    def event(self, user: str, kind: str, verb: str, session: int) -> None:
        with self._lock:
            self._events.setdefault(user.lower(), []).append(
                Event(time.monotonic(), kind, verb, session))

    def reserve(self, user: str, limit: int) -> bool:
        """Hold one of the user's `limit` session slots for a login in progress."""
        with self._lock:
            if self._slots[user.lower()] >= limit:
                self.refused_over_limit[user.lower()] += 1
                return False
            self._slots[user.lower()] += 1
            return True

    def login(self, user: str) -> None:
        with self._lock:
            key = user.lower()
            self.logins[key] += 1
            self._authenticated[key] += 1
            self.peak_sessions[key] = max(self.peak_sessions[key], self._authenticated[key])

    def release(self, user: str, authenticated: bool) -> None:
        with self._lock:
            key = user.lower()
            self._slots[key] -= 1
            if authenticated:
                self._authenticated[key] -= 1

    def auth_failed(self, user: str) -> None:
        with self._lock:
            self.auth_failures[user.lower()] += 1

    # --- read by tests --------------------------------------------------------------
    def active_sessions(self, user: str) -> int:
        with self._lock:
            return self._authenticated[user.lower()]

    def events(self, user: str) -> list[Event]:
        with self._lock:
            return list(self._events.get(user.lower(), []))

    def backoff_gaps_ms(self, user: str) -> list[float | None]:
        """For each throttled reply: ms until the user's next command or login (None: none)."""
        events = self.events(user)
        gaps: list[float | None] = []
        for index, event in enumerate(events):
            if event.kind == "throttled":
                later = events[index + 1] if index + 1 < len(events) else None
                gaps.append(None if later is None else (later.at - event.at) * 1000)
        return gaps

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sessions_opened": self.sessions_opened,
                "logins": dict(self.logins), "auth_failures": dict(self.auth_failures),
                "refused_over_limit": dict(self.refused_over_limit),
                "commands": dict(self.commands), "byes": dict(self.byes),
                "peak_sessions": dict(self.peak_sessions),
                "active_sessions": {k: v for k, v in self._authenticated.items() if v},
            }
