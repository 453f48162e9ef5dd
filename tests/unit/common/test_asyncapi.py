"""docs/asyncapi.yaml is a valid AsyncAPI 3.0 document by the AsyncAPI project's own
parser, and names exactly the events the code publishes, each with its JSON Schema."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from common.events import EVENT_TYPES, EXCHANGE

REPO = Path(__file__).resolve().parents[3]
DOCUMENT = REPO / "docs" / "asyncapi.yaml"
TOOLS = REPO / "tools" / "asyncapi"
SCHEMAS = REPO / "common" / "schemas"
ERROR, WARNING = 0, 1  # the parser's (Spectral's) diagnostic severities


@cache
def parsed() -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not installed (make setup installs system packages)"
    assert (TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: make setup (npm ci --prefix tools/asyncapi)"
    )
    result = subprocess.run(
        [node, str(TOOLS / "validate.mjs"), str(DOCUMENT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    summary["returncode"] = result.returncode
    return summary


def test_the_asyncapi_parser_accepts_the_document() -> None:
    """No error and no warning from @asyncapi/parser (references resolved, bindings valid)."""
    summary = parsed()
    problems = [d for d in summary["diagnostics"] if d["severity"] in (ERROR, WARNING)]
    assert problems == []
    assert summary["returncode"] == 0
    assert yaml.safe_load(DOCUMENT.read_text())["asyncapi"].startswith("3.0")


def test_every_event_type_and_nothing_else_is_described() -> None:
    """One channel per event type (its routing key) on the exchange `bandeja.events`, and
    one schema file per event type: the three lists are the same."""
    summary = parsed()
    schema_files = {p.stem for p in SCHEMAS.glob("*.json")}
    addresses = [c["address"] for c in summary["channels"]]
    assert sorted(addresses) == sorted(EVENT_TYPES) == sorted(schema_files)
    for channel in summary["channels"]:
        exchange = channel["exchange"]
        assert (exchange["name"], exchange["type"], exchange["durable"]) == (
            EXCHANGE,
            "topic",
            True,
        )
        assert exchange["autoDelete"] is False
        assert channel["messages"] == [channel["address"]]


def test_each_payload_is_the_schema_of_its_type() -> None:
    """Each message's payload references common/schemas/<type>.json, and the parser resolved
    it to that schema (its title and required envelope attributes)."""
    document = yaml.safe_load(DOCUMENT.read_text())
    refs = {
        message["name"]: message["payload"]["schema"]["$ref"]
        for message in document["components"]["messages"].values()
    }
    assert refs == {t: f"../common/schemas/{t}.json" for t in EVENT_TYPES}
    for message in parsed()["messages"]:
        schema = json.loads((SCHEMAS / f"{message['name']}.json").read_text())
        assert message["payloadTitle"] == schema["title"]
        assert message["payloadRequired"] == schema["required"]
        assert message["contentType"].startswith("application/cloudevents+json")
