"""Fill Dovecot mailboxes with invoice mails, and mark them unread again between runs."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from standin.testing import DovecotServer
from tests.support.mail import invoice_mail

SEEN = b"\\Seen"
_numbers = itertools.count(10_000)


@dataclass
class Seeded:
    addresses: list[str]
    mails: int
    bytes: int

    @property
    def mean_size(self) -> float:
        return self.bytes / max(self.mails, 1)


def pdf_size_for(mail_bytes: int) -> int:
    """The PDF size that makes invoice_mail about ``mail_bytes`` long (base64 is 4/3)."""
    return max(1000, int((mail_bytes - 2500) * 3 / 4))


def seed(dovecot: DovecotServer, addresses: list[str], per_mailbox: int, mail_bytes: int,
         threads: int = 4) -> Seeded:
    pdf_size = pdf_size_for(mail_bytes)

    def one(address: str) -> int:
        total = 0
        with dovecot.admin_session(address) as client:
            for _ in range(per_mailbox):
                raw, _hashes = invoice_mail(next(_numbers), to=address, pdf_size=pdf_size)
                client.append("INBOX", raw)
                total += len(raw)
        return total

    with ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(one, addresses))
    return Seeded(addresses, per_mailbox * len(addresses), sum(sizes))


def mark_unseen(dovecot: DovecotServer, addresses: list[str], threads: int = 4) -> None:
    """Remove \\Seen from every mail, so the next peer sees the same unread mail."""

    def one(address: str) -> None:
        with dovecot.admin_session(address) as client:
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.remove_flags(uids, [SEEN])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, addresses))


def unseen_total(dovecot: DovecotServer, addresses: list[str]) -> int:
    return sum(len(dovecot.unseen_uids(a)) for a in addresses)
