"""Reading the dead processing message dramatiq hands to the settling actor."""

from __future__ import annotations

import traceback

import dramatiq
import pytest

from services.processor.settle import exhausted_raw_ids, last_error_type


def _dead(actor: str, args: tuple[object, ...], error: BaseException | None) -> dict:
    """A message as dramatiq's Retries middleware passes it on: ``Message.asdict()``
    with the last attempt's ``traceback.format_exc()`` in its options."""
    options: dict[str, object] = {"retries": 9}
    if error is not None:
        try:
            raise error
        except BaseException:  # only formatted, as dramatiq does
            options["traceback"] = traceback.format_exc(limit=30)
    message = dramatiq.Message(
        queue_name="process", actor_name=actor, args=args, kwargs={}, options=options
    )
    return message.asdict()


def test_the_raw_ids_of_a_batch_and_of_a_single_mail() -> None:
    assert exhausted_raw_ids(_dead("process_messages", ([4, 5, 6],), None)) == [4, 5, 6]
    assert exhausted_raw_ids(_dead("process_message", (7,), None)) == [7]


@pytest.mark.parametrize("args", [(), ([],), (["4"],), ({"id": 4},), ([True],)])
def test_a_message_without_raw_ids_is_refused(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="not a processing message"):
        exhausted_raw_ids(_dead("process_messages", args, None))


def test_the_last_error_is_named_by_its_class_only() -> None:
    """The exception's text can quote the mail (PostgreSQL echoes values), so only the
    class name goes into the failed document's reason."""
    error = ValueError("Subject: secret merger plans: value too long")
    dead = _dead("process_messages", ([1],), error)
    assert last_error_type(dead) == "ValueError"
    timed_out = _dead("process_messages", ([1],), dramatiq.middleware.TimeLimitExceeded())
    assert last_error_type(timed_out) == "TimeLimitExceeded"
    assert last_error_type(_dead("process_messages", ([1],), None)) == "unknown error"
