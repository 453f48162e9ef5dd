"""Polling helpers for tests that watch real processes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import requests
from psycopg.rows import dict_row

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float, interval: float = 0.2, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def query(dsn: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def metric_value(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` (exact name) whose labels include ``labels``."""
    text = requests.get(url, timeout=5).text
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not match or match.group(1) != name:
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(sample_labels.get(k) == v for k, v in (labels or {}).items()):
            total += float(match.group(3))
            found = True
    if not found:
        raise AssertionError(f"metric {name}{labels or ''} not exported at {url}")
    return total
