"""Refresh timing and backoff."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from services.auth.schedule import MAX_BACKOFF, backoff_seconds, next_refresh_at


def test_refreshes_spread_ahead_of_expiry() -> None:
    """Tokens issued in the same second are refreshed over a wide window before expiry."""
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    expires = issued + timedelta(minutes=60)
    rng = random.Random(7)
    times = [next_refresh_at(issued, expires, rng) for _ in range(1000)]
    assert all(issued < t < expires - timedelta(minutes=8) for t in times)
    spread = (max(times) - min(times)).total_seconds()
    assert spread > 8 * 60  # not a thundering herd
    per_second = Counter(t.replace(microsecond=0) for t in times)
    assert max(per_second.values()) <= 10  # at most 1 % of the mailboxes in any one second


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    """Backoff doubles with failures, stays under the cap, and never undercuts Retry-After."""
    rng = random.Random(1)
    assert backoff_seconds(0, rng=rng) <= 15
    assert backoff_seconds(3, rng=rng) >= 60
    assert backoff_seconds(50, rng=rng) <= MAX_BACKOFF
    assert backoff_seconds(0, retry_after=120, rng=rng) >= 120
