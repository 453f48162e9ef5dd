"""Event envelopes and their JSON Schemas."""

from __future__ import annotations

import json
import uuid
from importlib import resources

import jsonschema
import pytest

from common import events


def schema(event_type: str) -> dict:
    return json.loads((resources.files("common") / "schemas" / f"{event_type}.json").read_text())


def test_every_event_type_has_a_schema() -> None:
    """Each published event type has a JSON Schema in the repo."""
    for event_type in events.EVENT_TYPES:
        jsonschema.Draft202012Validator.check_schema(schema(event_type))


def test_stable_ids_are_stable() -> None:
    """The same subject yields the same event id, so consumers can de-duplicate."""
    assert events.stable_id("a", 1) == events.stable_id("a", 1)
    assert events.stable_id("a", 1) != events.stable_id("a", 2)


def test_processed_event_must_carry_attachment_hashes() -> None:
    """The schema rejects a document.processed event without sha256 per attachment."""
    event = events.cloud_event(
        events.DOCUMENT_PROCESSED,
        event_id=uuid.uuid4(),
        source="urn:test",
        subject="document/x",
        data={
            "document_id": str(uuid.uuid4()),
            "mailbox_id": 1,
            "mailbox": "a@b.c",
            "tenant_id": "t",
            "message_id": "<m@x>",
            "subject": "s",
            "from": "a@b.c",
            "received_at": "2026-01-01T00:00:00+00:00",
            "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "size": 1}],
        },
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema(events.DOCUMENT_PROCESSED))
    event["data"]["attachments"][0]["sha256"] = "0" * 64
    jsonschema.validate(event, schema(events.DOCUMENT_PROCESSED))
