"""The rules' metric, shared by the fetcher (header stage) and the processor (attachments)."""

from __future__ import annotations

from prometheus_client import Counter

MAILS_SKIPPED = Counter(
    "bandeja_mails_skipped",
    "Mails a rule skipped (no document), by the stage that decided: headers or attachments",
    ["stage"],
)
for _stage in ("headers", "attachments"):
    MAILS_SKIPPED.labels(_stage)
