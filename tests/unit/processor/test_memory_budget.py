"""The processor's parse budget: batches wait while their bytes do not fit."""

from __future__ import annotations

import threading

import pytest

from services.processor.budget import MemoryBudget
from services.processor.errors import BudgetWaitTooLong


def _hold(
    budget: MemoryBudget,
    nbytes: int,
    inside: threading.Event,
    leave: threading.Event,
    errors: list[BaseException],
) -> threading.Thread:
    def run() -> None:
        try:
            with budget.reserve(nbytes):
                inside.set()
                leave.wait(10)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_batches_that_fit_run_together_and_the_next_waits_for_room() -> None:
    budget = MemoryBudget(100)
    errors: list[BaseException] = []
    events = [(threading.Event(), threading.Event()) for _ in range(3)]
    first = _hold(budget, 40, *events[0], errors)
    second = _hold(budget, 50, *events[1], errors)
    assert events[0][0].wait(5)
    assert events[1][0].wait(5)
    assert budget.in_use == 90

    third = _hold(budget, 30, *events[2], errors)
    assert not events[2][0].wait(0.3)  # 90 + 30 > 100: it waits
    events[0][1].set()  # the 40-byte batch finishes
    assert events[2][0].wait(5)
    assert budget.in_use == 80

    for _, leave in events:
        leave.set()
    for thread in (first, second, third):
        thread.join(5)
    assert budget.in_use == 0
    assert errors == []


def test_a_batch_larger_than_the_budget_runs_alone() -> None:
    """No mail is refused for its size: it waits for an empty budget and runs by itself."""
    budget = MemoryBudget(100)
    errors: list[BaseException] = []
    small_in, small_out = threading.Event(), threading.Event()
    big_in, big_out = threading.Event(), threading.Event()
    small = _hold(budget, 10, small_in, small_out, errors)
    assert small_in.wait(5)
    big = _hold(budget, 500, big_in, big_out, errors)
    assert not big_in.wait(0.3)
    small_out.set()
    assert big_in.wait(5)
    assert budget.in_use == 500
    big_out.set()
    for thread in (small, big):
        thread.join(5)
    assert errors == []


def test_waiting_too_long_is_a_transient_error() -> None:
    """dramatiq retries the batch later instead of holding a worker thread indefinitely."""
    budget = MemoryBudget(100, max_wait_seconds=0.2)
    with budget.reserve(100), pytest.raises(BudgetWaitTooLong), budget.reserve(1):
        pass
    assert budget.in_use == 0
