"""How the data page words the retention setting, and the purge event it promises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import jsonschema
import pytest

from common import events
from services.auth.data_routes import retention_words
from services.lifecycle.purge import Purged, _purged_event, _Target


@pytest.mark.parametrize(
    ("days", "lang", "words"),
    [
        (30, "es", "30 días"),
        (1, "es", "1 día"),
        (1, "en", "1 day"),
        (7.5, "en", "7.5 days"),
        (0.5, "es", "12 horas"),
        (1 / 24, "en", "1 hour"),
        (0, "en", "0 days"),
    ],
)
def test_retention_is_worded_as_people_read_it(days: float, lang: str, words: str) -> None:
    """The page shows the setting's actual value in the reader's language and unit."""
    assert retention_words(days, lang) == words


def test_purged_event_matches_its_schema_and_names_no_address() -> None:
    """The purge event validates against common/schemas and carries ids and counts only:
    it outlives the erasure in the outbox, so the address must not be in it."""
    created = datetime(2026, 11, 1, tzinfo=UTC)
    target = _Target(41, "persona@cliente.example", "tenant-guid", created)
    event = _purged_event(target, Purged(41, raw_mails=3, documents=2, events=5))
    schema = json.loads(
        (resources.files("common") / "schemas" / f"{events.MAILBOX_PURGED}.json").read_text()
    )
    jsonschema.validate(event, schema, format_checker=jsonschema.FormatChecker())
    assert "persona" not in json.dumps(event)
    assert event["id"] == str(events.stable_id(events.MAILBOX_PURGED, 41, created.isoformat()))
    event["data"]["mailbox"] = target.address
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)
