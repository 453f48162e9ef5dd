"""Delivery-tag bookkeeping of a pipelined batch: only what the broker acknowledged, and
did not return, counts as published."""

from __future__ import annotations

from common.errors import ServiceUnavailable
from services.relay.errors import PublishNacked, PublishRefused
from services.relay.publisher import PendingConfirms


def _sent(*event_ids: str) -> PendingConfirms:
    confirms = PendingConfirms()
    for event_id in event_ids:
        confirms.sent(event_id)
    return confirms


def test_a_multiple_ack_confirms_every_earlier_tag_but_not_a_returned_event() -> None:
    confirms = _sent("a", "b", "c", "d")
    confirms.returned("b")
    confirms.settle(3, multiple=True, acked=True)
    assert confirms.waiting  # "d" is not settled yet
    confirms.settle(4, multiple=False, acked=True)
    outcome = confirms.take()
    assert outcome.confirmed == ["a", "c", "d"]
    assert isinstance(outcome.failed["b"], PublishRefused)
    assert outcome.failed["b"].reason == "unroutable"
    assert not confirms.waiting


def test_a_multiple_nack_fails_every_earlier_unsettled_tag() -> None:
    confirms = _sent("a", "b", "c")
    confirms.settle(1, multiple=False, acked=True)
    confirms.settle(3, multiple=True, acked=False)
    outcome = confirms.take()
    assert outcome.confirmed == ["a"]
    assert set(outcome.failed) == {"b", "c"}
    assert all(isinstance(e, PublishNacked) for e in outcome.failed.values())


def test_a_lost_channel_leaves_the_unsettled_events_unpublished() -> None:
    confirms = _sent("a", "b", "c")
    confirms.settle(1, multiple=False, acked=True)
    lost = ServiceUnavailable("publish failed: StreamLostError")
    confirms.abandon(lost)
    outcome = confirms.take()
    assert outcome.confirmed == ["a"]
    assert outcome.failed == {"b": lost, "c": lost}
