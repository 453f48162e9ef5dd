"""Watch \\Seen flags from outside Bandeja: master-user IMAP sessions polling FLAGS.

For each mail the observer keeps the wall-clock time of the *reply* to the first poll
that showed \\Seen. The flag was set before the server answered that poll, so
``first_seen`` is an upper bound of the moment it was set: if it is earlier than the
mail's ``raw_messages.fetched_at`` (same machine clock), the mail was certainly marked
read before its bytes were stored. The reverse is not proven: a flag set after
``fetched_at`` but before that transaction committed goes unnoticed (``fetched_at`` is
the transaction's start). The poll period is reported so the resolution is known.

These sessions use Dovecot's plain port; Bandeja uses the TLS port, which is how the
IMAP-drop fault tells the two apart.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from imapclient import IMAPClient

SEEN = b"\\Seen"


class SeenObserver:
    def __init__(
        self,
        session: Callable[[str], Any],
        addresses: list[str],
        threads: int = 4,
        interval: float = 0.1,
    ) -> None:
        self._session = session
        self.interval = interval
        self.first_seen: dict[tuple[str, int], float] = {}
        self.unseen: dict[str, int] = dict.fromkeys(addresses, -1)
        self.cycles: list[float] = []
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        groups = [addresses[i::threads] for i in range(threads)]
        self._threads = [
            threading.Thread(target=self._run, args=(g,), daemon=True, name=f"seen-observer-{i}")
            for i, g in enumerate(groups)
            if g
        ]

    def start(self) -> SeenObserver:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, addresses: list[str]) -> None:
        sessions: dict[str, tuple[contextlib.ExitStack, IMAPClient]] = {}
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                for address in addresses:
                    try:
                        if address not in sessions:
                            sessions[address] = self._open(address)
                        self._poll(address, sessions[address][1])
                    except Exception as exc:
                        self.errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                        if address in sessions:
                            sessions.pop(address)[0].close()
                elapsed = time.monotonic() - began
                self.cycles.append(elapsed)
                self._stop.wait(max(0.0, self.interval - elapsed))
        finally:
            for stack, _ in sessions.values():
                stack.close()

    def _open(self, address: str) -> tuple[contextlib.ExitStack, IMAPClient]:
        stack = contextlib.ExitStack()
        try:
            client = stack.enter_context(self._session(address))
            client.select_folder("INBOX", readonly=True)
        except BaseException:
            stack.close()
            raise
        return stack, client

    def _poll(self, address: str, client: IMAPClient) -> None:
        client.noop()  # lets Dovecot report other sessions' flag changes and new mail
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, ["FLAGS"]) if uids else {}
        answered = time.time()
        unseen = 0
        for uid, data in fetched.items():
            if SEEN in data[b"FLAGS"]:
                self.first_seen.setdefault((address, uid), answered)
            else:
                unseen += 1
        self.unseen[address] = unseen

    def total_unseen(self) -> int:
        return sum(max(v, 0) for v in self.unseen.values()) + (
            1 if any(v < 0 for v in self.unseen.values()) else 0
        )

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
