"""Pure fetch decisions: UIDVALIDITY and batching."""

from __future__ import annotations

from services.fetcher.sync import FolderPosition, batches, position_after_select, split_by_size


def test_uidvalidity_change_restarts_the_folder() -> None:
    """A new UIDVALIDITY invalidates every UID we knew (RFC 3501 §2.3.1.1)."""
    known = FolderPosition(uidvalidity=5, last_uid=900)
    assert position_after_select(known, 5) == known
    assert position_after_select(known, 6) == FolderPosition(6, 0)
    assert position_after_select(None, 9) == FolderPosition(9, 0)


def test_batches_respect_count_and_bytes() -> None:
    """Batches hold at most N mails and about M bytes; a huge mail travels alone."""
    sizes = {1: 10, 2: 10, 3: 10, 4: 1000, 5: 10}
    assert list(batches([1, 2, 3, 4, 5], sizes, max_count=2, max_bytes=100)) == [
        [1, 2],
        [3],
        [4],
        [5],
    ]


def test_mail_over_the_cap_is_set_aside_not_dropped() -> None:
    """Mail above the size cap goes to the headers-only path instead of vanishing."""
    assert split_by_size([1, 2, 3], {1: 5, 2: 50, 3: 5}, cap=10) == ([1, 3], [2])
