"""The batch's budget (batch_tasks/state/budget.py) on plain data: what the run's summary says of it,
how many items it kept back, its amounts as written, the edge of what fits. Reservations as the
dispatcher takes them are in test_dispatcher.py and test_dispatch_table.py."""

from __future__ import annotations

import pytest

from batch_tasks.state.budget import Budget, dollars


@pytest.mark.parametrize("amount, written", [
    (0, "$0.00"), (0.005, "$0.005"), (0.0001, "$0.0001"), (0.00999, "$0.01"), (0.01, "$0.01"), (1.5, "$1.50"),
    (12.345, "$12.35"),
])
def test_dollars_are_cents_or_finer_under_a_cent(amount, written):
    assert dollars(amount) == written


def test_without_a_budget_nothing_is_said():
    budget = Budget(None, 3.0)
    assert budget.refusal(100.0) is None and budget.note() == "" and budget.refused == 0


def test_the_note_says_what_is_spent_and_that_items_were_kept_back_once_one_was():
    budget = Budget(1.0, 0.25)
    assert budget.refused == 0 and budget.note() == "budget: $0.25 of $1.00 spent"
    assert budget.refusal(0.5) is None and budget.refused == 0  # it fits: nothing refused
    assert budget.refusal(2.0) == "the batch's budget of $1.00 cannot hold it: it may cost $2.00, $1.25 more than is left"
    assert budget.refused == 1
    assert budget.note() == "budget: $0.25 of $1.00 spent; items that did not fit were not started"
    budget.spend(0.75)
    assert budget.refusal(None) == "the batch's budget of $1.00 is spent" and budget.refused == 2


def test_while_attempts_hold_reservations_nothing_is_refused_for_good():
    budget = Budget(1.0)
    assert budget.reserve("g:a", 0.75)
    assert not budget.can_hold(0.5) and budget.refusal(0.5) is None and budget.refused == 0
    budget.release("g:a")
    assert budget.can_hold(0.5)


@pytest.mark.parametrize("limit, cost, held", [(1.0, 0.75, 0.75), (1.0, None, 0.0), (1.0, 0.0, 0.0), (None, 0.75, 0.0)])
def test_a_queued_attempt_holds_what_it_cost_until_released(limit, cost, held):
    """Its slot is given back while it waits in the merge queue: what it cost stays held, so
    nothing starts on that money; an unknown or free cost, or no budget, holds nothing."""
    budget = Budget(limit)
    budget.hold("g:a", cost)
    assert budget.reserved == held
    assert budget.can_hold(0.5) is (limit is None or limit - held >= 0.5)
    budget.release("g:a")
    assert budget.reserved == 0.0


def test_the_note_names_each_item_run_on_its_fallback_model():
    budget = Budget(2.0, 1.0)
    budget.fallbacks["g:a"] = ("haiku", "$0.50 left")
    budget.fallbacks["g:b"] = ("mini", "$0.25 left")
    assert budget.note() == ("budget: $1.00 of $2.00 spent\n  g:a ran on its fallback_model haiku: $0.50 left"
                             "\n  g:b ran on its fallback_model mini: $0.25 left")


def test_what_is_left_fits_up_to_a_billionth_of_a_dollar_over_for_the_rounding_of_sums():
    assert Budget(1.0).can_hold(1.0 + 1e-9) and not Budget(1.0).can_hold(1.0 + 2e-9)
    assert Budget(0.3, 0.1).can_hold(0.2)  # 0.3 - 0.1 is a hair under 0.2 in floats
