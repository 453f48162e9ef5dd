"""The chaos tier: `pytest -m chaos` selects it, `-m "not chaos"` leaves it out."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: Bandeja end to end under faults on private servers (minutes)"
    )
