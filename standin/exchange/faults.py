"""The switches a test (or the demo) flips at run time; every method is thread-safe.

Tests hold `proxy.faults` and call these from their own thread while sessions run on the
proxy's event loop, hence one lock around all state.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

Refusal = Literal["auth_failed", "not_connected"]
DEFAULT_CONNECTION_LIMIT = 10


def matches(pattern: str, user: str) -> bool:
    """`pattern` is an address (exact) or a domain (the user's domain part)."""
    pattern, user = pattern.lower(), user.lower()
    if "@" in pattern:
        return pattern == user
    return user.rpartition("@")[2] == pattern


@dataclass
class Throttle:
    match: str
    backoff_ms: int
    remaining: int | None
    disconnect: bool
    status: str

    @property
    def text(self) -> str:
        return f"Request is throttled. Suggested Backoff Time: {self.backoff_ms} milliseconds"


@dataclass
class _Armed:
    match: str | None
    remaining: int | None
    value: int = 0


def _take(armed: list[_Armed], user: str) -> _Armed | None:
    for item in armed:
        if item.match is None or matches(item.match, user):
            if item.remaining is not None:
                item.remaining -= 1
                if item.remaining <= 0:
                    armed.remove(item)
            return item
    return None


class Faults:
    """Exchange behaviours that are off until a test turns them on (the cap is always on)."""

    def __init__(self, connection_limit: int = DEFAULT_CONNECTION_LIMIT) -> None:
        self._lock = threading.Lock()
        self._default_limit = connection_limit
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._throttles: list[Throttle] = []
            self._not_connected: list[_Armed] = []
            self._mid_fetch: list[_Armed] = []
            self._oversized: list[_Armed] = []
            self._sizes_hidden: list[_Armed] = []
            self._connection_limit = self._default_limit
            self._refusal: Refusal = "auth_failed"
            self._bye_probability = 0.0
            self._rng = random.Random(0)

    # --- switches -------------------------------------------------------------------
    def throttle(self, match: str, backoff_ms: int = 1000, count: int | None = 1,
                 disconnect: bool = False, status: str = "NO") -> None:
        """The next `count` commands (None: all) of matching users get the throttled reply."""
        with self._lock:
            self._throttles.append(Throttle(match, backoff_ms, count, disconnect, status))

    def clear_throttle(self, match: str | None = None) -> None:
        with self._lock:
            self._throttles = [t for t in self._throttles
                               if match is not None and t.match != match]

    def not_connected(self, match: str, count: int | None = 1) -> None:
        """The next `count` logins of matching users: OK AUTHENTICATE, then BAD and close."""
        with self._lock:
            self._not_connected.append(_Armed(match, count))

    def clear_not_connected(self) -> None:
        with self._lock:
            self._not_connected = []

    def set_connection_limit(self, limit: int, refusal: Refusal = "auth_failed") -> None:
        """At most `limit` authenticated sessions per mailbox; how session limit+1 is refused."""
        with self._lock:
            self._connection_limit, self._refusal = limit, refusal

    def random_byes(self, probability: float, seed: int | None = 0) -> None:
        """Each command is answered by `* BYE Connection closed. 14` with this probability."""
        with self._lock:
            self._bye_probability = probability
            self._rng = random.Random(seed)

    def bye_mid_fetch(self, after_lines: int = 1, match: str | None = None,
                      count: int | None = 1) -> None:
        """The next `count` FETCHes (of matching users) end in a BYE after N FETCH lines."""
        with self._lock:
            self._mid_fetch.append(_Armed(match, count, after_lines))

    def oversized_literal(self, match: str | None = None, size: int = 10**14,
                          count: int | None = 1) -> None:
        """The next `count` FETCH replies carrying a literal (of matching users) announce
        `size` bytes instead of the real size, and the connection closes: a hostile or
        broken server deciding how much its client reads."""
        with self._lock:
            self._oversized.append(_Armed(match, count, size))

    def hide_sizes(self, match: str | None = None, count: int | None = None) -> None:
        """FETCH replies (of matching users) leave out RFC822.SIZE; `count` FETCH commands
        (None: all of them until reset)."""
        with self._lock:
            self._sizes_hidden.append(_Armed(match, count))

    # --- read by sessions -----------------------------------------------------------
    @property
    def connection_limit(self) -> tuple[int, Refusal]:
        with self._lock:
            return self._connection_limit, self._refusal

    def take_throttle(self, user: str) -> Throttle | None:
        with self._lock:
            for item in self._throttles:
                if matches(item.match, user):
                    if item.remaining is not None:
                        item.remaining -= 1
                        if item.remaining <= 0:
                            self._throttles.remove(item)
                    return item
            return None

    def take_not_connected(self, user: str) -> bool:
        with self._lock:
            return _take(self._not_connected, user) is not None

    def take_mid_fetch(self, user: str) -> int | None:
        with self._lock:
            armed = _take(self._mid_fetch, user)
            return None if armed is None else armed.value

    def roll_random_bye(self) -> bool:
        with self._lock:
            return self._bye_probability > 0 and self._rng.random() < self._bye_probability

    def take_oversized_literal(self, user: str) -> int | None:
        with self._lock:
            armed = _take(self._oversized, user)
            return None if armed is None else armed.value

    def take_sizes_hidden(self, user: str) -> bool:
        with self._lock:
            return _take(self._sizes_hidden, user) is not None
