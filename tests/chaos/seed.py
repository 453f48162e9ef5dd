"""Seeded mail: invoice mails with a Message-ID the suite chose, appended over IMAP."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass

from standin.testing import StandIn
from tests.support.mail import invoice_mail


@dataclass(frozen=True)
class Seeded:
    message_id: str  # without angle brackets
    address: str
    uid: int
    attachments: dict[str, str]  # filename -> sha256
    appended_at: float


def normalise_message_id(value: str | None) -> str | None:
    return value.strip().strip("<>").strip() if value else None


def build_mail(run_id: str, number: int, address: str) -> tuple[str, bytes, dict[str, str]]:
    raw, hashes = invoice_mail(number, to=address)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = f"chaos-{run_id}-{number}@seed.chaos.example"
    del message["Message-ID"]
    message["Message-ID"] = f"<{message_id}>"
    return message_id, message.as_bytes(), hashes


class Seeder:
    """Appends mails and remembers, per Message-ID, where it went and what it carries."""

    def __init__(self, standin: StandIn, run_id: str) -> None:
        self.standin = standin
        self.run_id = run_id
        self.seeded: dict[str, Seeded] = {}
        self._next = 0
        self._lock = threading.Lock()

    def append(self, address: str, count: int, attempts: int = 5) -> None:
        """Append `count` mails, reconnecting on errors (the seeder is not under test)."""
        done = [0]
        for attempt in range(attempts):
            try:
                self._append(address, count - done[0], done)
                return
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)

    def _append(self, address: str, count: int, done: list[int]) -> None:
        with self.standin.dovecot.admin_session(address) as client:
            for _ in range(count):
                with self._lock:
                    number, self._next = self._next, self._next + 1
                message_id, raw, hashes = build_mail(self.run_id, number, address)
                answer = client.append("INBOX", raw)
                text = answer.decode() if isinstance(answer, bytes) else str(answer)
                uid = int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))
                with self._lock:
                    self.seeded[message_id] = Seeded(message_id, address, uid, hashes, time.time())
                done[0] += 1

    def trickle(
        self, plan: list[tuple[str, int]], duration: float, stop: threading.Event
    ) -> threading.Thread:
        """Append `plan` (address, count) evenly over `duration` seconds, in a thread."""

        def run() -> None:
            pause = duration / max(len(plan), 1)
            for address, count in plan:
                if stop.is_set():
                    return
                self.append(address, count)
                stop.wait(pause)

        thread = threading.Thread(target=run, name="seed-trickle", daemon=True)
        thread.start()
        return thread
