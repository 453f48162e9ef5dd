"""The consumer example of docs/examples/ run as the ERP would run it, against the real
broker and Bandeja's four processes (issue 15): started before Bandeja on a vhost where
nothing is declared yet, it receives every document event, parses each with the
CloudEvents SDK, validates its data, handles a re-delivered copy once, and each event's
traceparent names the fetch run that read its mail."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from standin.testing import StandIn
from tests.support.flows import connect_new_mailbox
from tests.support.infra import TestVhost
from tests.support.mail import invoice_mail
from tests.support.services import Services
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "erp_consumer.py"
SCHEMAS = REPO / "common" / "schemas"


@pytest.fixture
def empty_vhost() -> Iterator[TestVhost]:
    """A vhost with the operator's alternate-exchange policy and nothing declared yet: a
    fresh install before Bandeja's first start."""
    vhost = TestVhost().create()
    yield vhost
    vhost.drop()


class ExampleConsumer:
    def __init__(self, broker_url: str, tmp_path: Path) -> None:
        self.output = tmp_path / "erp-consumer.out"
        self._out = self.output.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--broker",
                broker_url,
                "--queue",
                "erp.bandeja.documents",
                "--schemas",
                str(SCHEMAS),
                "--state",
                str(tmp_path / "erp.sqlite3"),
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[dict[str, Any]]:
        assert self.process.poll() is None, self.output.read_text()
        return [json.loads(line) for line in self.output.read_text().splitlines() if line]

    def handled(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if "id" in line]

    def stop(self) -> int:
        self.process.terminate()
        code = self.process.wait(20)
        self._out.close()
        return code


def _fetch_runs(log: str) -> Counter[str]:
    """Mails stored per fetch run, by the run's trace id (from the fetcher's JSON log)."""
    stored: Counter[str] = Counter()
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "fetch_finished" and entry.get("stored"):
            stored[entry["trace_id"]] += entry["stored"]
    return stored


def test_the_documented_consumer_started_first_gets_every_document_event_once(
    standin: StandIn,
    tenant: dict,
    empty_vhost: TestVhost,
    start_services: Callable[..., Services],
    tmp_path: Path,
) -> None:
    consumer = ExampleConsumer(empty_vhost.url, tmp_path)
    try:
        wait_until(lambda: any("ready" in line for line in consumer.lines()), 30, what="ready")
        services = start_services(
            broker_url=empty_vhost.url, idle_sessions="0", max_message_bytes="1000000"
        )
        address = connect_new_mailbox(standin, services.auth_url, tenant, "erp")
        mails = [invoice_mail(n, to=address)[0] for n in range(6)]
        mails.append(invoice_mail(99, to=address, pdf_size=1_200_000)[0])  # over the cap
        standin.dovecot.append_many(address, mails)

        wait_until(lambda: len(consumer.handled()) >= 7, 90, what="seven document events")
        handled = consumer.handled()
        assert len({e["id"] for e in handled}) == len(handled) == 7
        assert Counter(e["type"] for e in handled) == {
            "bandeja.document.processed": 6,
            "bandeja.document.failed": 1,
        }
        assert not [line for line in consumer.lines() if "rejected" in line]

        # At least once: a relay that dies between the broker's confirm and its commit
        # publishes the event again. The consumer acknowledges the copy without effect.
        with psycopg.connect(services.env["BANDEJA_DATABASE_URL"]) as conn:
            conn.execute(
                "UPDATE outbox SET published_at = NULL WHERE id = %s", (handled[0]["id"],)
            )
        wait_until(
            lambda: any(line.get("duplicate") == handled[0]["id"] for line in consumer.lines()),
            30,
            what="the duplicate",
        )
        assert len(consumer.handled()) == 7

        # Each document's traceparent carries the trace id of the fetch run that stored
        # its mail: as many documents per trace as that run stored mails.
        traces = Counter(e["traceparent"].split("-")[1] for e in handled)
        assert traces == _fetch_runs(services.running["fetcher"].logs())
    finally:
        assert consumer.stop() == 0
