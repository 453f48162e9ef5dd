"""`make chaos` in its CI size, inside pytest: 300 mails, 12 fault rounds, ~3 minutes."""

from __future__ import annotations

import pytest

from tests.chaos import run


@pytest.mark.chaos
@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_no_mail_lost_or_duplicated_under_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """Under SIGKILLs of every service, RabbitMQ and PostgreSQL restarts, IMAP drops and
    token-endpoint failures, every seeded mail becomes exactly one document with one
    event id, no mail is marked read before it is stored, and every service ends ready."""
    code = run.main(["--short"])
    output = capsys.readouterr().out
    assert code == 0, output[-6000:]
