"""When to refresh a token, and how long to back off: pure functions."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# Refresh between 15 % and 30 % of the token's lifetime before it expires: for Microsoft's
# 60-90 minute tokens that is 9-27 minutes ahead, spread so that thousands of mailboxes
# connected in the same minute do not refresh in the same second.
LEAD_FRACTION = (0.15, 0.30)
MIN_BACKOFF = 15.0
MAX_BACKOFF = 900.0
CONFIG_BACKOFF = 300.0


def next_refresh_at(
    issued_at: datetime, expires_at: datetime, rng: random.Random | None = None
) -> datetime:
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    lifetime = max((expires_at - issued_at).total_seconds(), 0.0)
    lead = lifetime * rng.uniform(*LEAD_FRACTION)
    return expires_at - timedelta(seconds=lead)


def backoff_seconds(
    failures: int, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter, never shorter than what the server asked for."""
    rng = rng or random.Random()  # noqa: S311
    exponential = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** max(failures, 0))
    delay = exponential * rng.uniform(0.5, 1.0)
    return float(max(delay, retry_after or 0.0))
