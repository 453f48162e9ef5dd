"""Pure decisions of a fetch run: what to fetch, in which batches, what a UIDVALIDITY
change means. No I/O here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class FolderPosition:
    uidvalidity: int
    last_uid: int


def position_after_select(known: FolderPosition | None, server_uidvalidity: int) -> FolderPosition:
    """Where we stand in a folder after SELECT.

    A changed UIDVALIDITY means every UID we knew names nothing any more (RFC 3501
    §2.3.1.1): start again at 0. Mail already stored is recognised by Message-ID and
    content hash instead, so nothing is stored twice.
    """
    if known is None or known.uidvalidity != server_uidvalidity:
        return FolderPosition(uidvalidity=server_uidvalidity, last_uid=0)
    return known


def batches(
    uids: list[int], sizes: dict[int, int], *, max_count: int, max_bytes: int
) -> Iterator[list[int]]:
    """Group UIDs so a batch holds at most ``max_count`` mails and about ``max_bytes``.

    A single mail larger than ``max_bytes`` travels alone.
    """
    batch: list[int] = []
    batch_bytes = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= max_count or batch_bytes + size > max_bytes):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(uid)
        batch_bytes += size
    if batch:
        yield batch


def split_by_size(uids: list[int], sizes: dict[int, int], cap: int) -> tuple[list[int], list[int]]:
    """(fetch whole, record as too large) — a mail above the cap is kept as headers only."""
    small = [u for u in uids if sizes.get(u, 0) <= cap]
    large = [u for u in uids if sizes.get(u, 0) > cap]
    return small, large
