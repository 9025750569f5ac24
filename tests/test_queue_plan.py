"""The merge queue's decisions (batch_tasks/landing/queue_plan.py), as tables: what is checked together
and on what, first passed first landed, a flaky check rerun before blame, bisection down to the
culprit, conflicts with the tip or with what is ahead, the batch size growing and shrinking.
Plain data: no git, no processes."""

from __future__ import annotations

import pytest

from batch_tasks.landing.queue_plan import Candidate, QueuePlan


def plan_of(*keys, batch_max=4, parallel=2, flaky_retries=1, size=1, kinds=None) -> QueuePlan:
    plan = QueuePlan(batch_max=batch_max, parallel=parallel, flaky_retries=flaky_retries, size=size)
    for key in keys:
        plan.add(key, (kinds or {}).get(key))
    return plan


def checked(decision) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    return [(c.ahead, c.items, c.run) for c in decision.check]


def test_states_are_chained_on_the_items_ahead_and_checked_up_to_parallel_at_once():
    plan = plan_of("a", "b", "c", parallel=2)
    decision = plan.decide()
    assert checked(decision) == [((), ("a",), 1), (("a",), ("b",), 1)]
    assert plan.waiting == ["c"]
    assert not decision.land and not decision.culprits


@pytest.mark.parametrize("parallel, size, batch_max, first", [
    (1, 1, 4, ("a",)), (1, 4, 4, ("a", "b", "c", "d")), (1, 8, 4, ("a", "b", "c", "d", "e")),
    (1, 3, 3, ("a", "b", "c")),
])
def test_a_state_takes_as_many_waiting_items_as_the_size_says(parallel, size, batch_max, first):
    plan = plan_of("a", "b", "c", "d", "e", parallel=parallel, size=size, batch_max=batch_max)
    assert plan.decide().check[0].items == first


def test_items_checked_differently_are_not_checked_together():
    plan = plan_of("a", "b", "c", parallel=1, size=4, kinds={"a": "x", "b": "x", "c": "y"})
    assert checked(plan.decide()) == [((), ("a", "b"), 1)]


def test_first_passed_first_landed_a_state_behind_waits_for_the_one_ahead():
    plan = plan_of("a", "b", parallel=2)
    first, second = plan.decide().check
    plan.passed(second.id)
    assert plan.decide().land == []
    plan.passed(first.id)
    assert plan.decide().land == [("a",), ("b",)]
    assert not plan.busy


@pytest.mark.parametrize("landed, size, batch_max", [(1, 2, 4), (2, 4, 4), (3, 4, 4), (1, 1, 1), (2, 3, 3)])
def test_the_size_doubles_with_each_state_that_lands_up_to_the_most(landed, size, batch_max):
    plan = plan_of(*"abcdefghijklmnop", parallel=1, batch_max=batch_max)
    plan.decide()
    for _ in range(landed):
        plan.passed(plan.states[0].id)
        plan.decide()
    assert plan.size == size


def test_the_size_grows_as_states_land_and_the_next_state_takes_more():
    plan = plan_of(*"abcdefg", parallel=1, batch_max=4)
    assert plan.decide().check[0].items == ("a",)
    plan.passed(plan.states[0].id)
    decision = plan.decide()
    assert decision.land == [("a",)] and decision.check[0].items == ("b", "c")
    plan.passed(plan.states[0].id)
    assert plan.decide().check[0].items == ("d", "e", "f", "g")


def test_a_state_that_fails_once_is_checked_again_on_the_same_state_before_any_blame():
    plan = plan_of("a", parallel=1)
    state = plan.decide().check[0]
    plan.failed(state.id)
    decision = plan.decide()
    assert decision.check == [Candidate(state.id, (), ("a",), 2)]
    assert not decision.culprits
    plan.passed(state.id)
    assert plan.decide().land == [("a",)]  # a flake: landed, nobody blamed


@pytest.mark.parametrize("flaky_retries, runs_before_blame", [(0, 1), (1, 2), (2, 3)])
def test_a_lone_item_is_the_culprit_once_its_state_failed_every_rerun(flaky_retries, runs_before_blame):
    plan = plan_of("a", "b", parallel=1, flaky_retries=flaky_retries)
    state = plan.decide().check[0]
    for run in range(1, runs_before_blame):
        plan.failed(state.id)
        assert checked(plan.decide()) == [((), ("a",), run + 1)]
    plan.failed(state.id)
    decision = plan.decide()
    assert decision.culprits == ["a"]
    assert checked(decision) == [((), ("b",), 1)]  # the next in line, on the tip
    assert "a" not in plan.kinds


def test_a_failure_behind_one_still_checked_waits_for_it_and_goes_with_it():
    plan = plan_of("a", "b", parallel=2, flaky_retries=0)
    first, second = plan.decide().check
    plan.failed(second.id)  # b's state holds a: a may be what failed
    assert plan.decide() .culprits == []
    plan.failed(first.id)
    decision = plan.decide()
    assert decision.culprits == ["a"]
    assert checked(decision) == [((), ("b",), 1)]  # b again, on the tip alone: not blamed


def test_a_failing_batch_of_four_is_bisected_down_to_its_culprit_and_the_others_land():
    plan = plan_of("a", "b", "c", "d", parallel=2, size=4, flaky_retries=1)
    plan.add("e", None)  # behind the batch: no half takes it
    batch = plan.decide().check[0]
    assert batch.items == ("a", "b", "c", "d")
    plan.failed(batch.id)
    assert checked(plan.decide()) == [((), ("a", "b", "c", "d"), 2)]  # a flake? not yet blamed
    plan.failed(batch.id)
    decision = plan.decide()
    assert decision.bisected == [("a", "b", "c", "d")]
    assert checked(decision) == [((), ("a", "b"), 1), (("a", "b"), ("c", "d"), 1)]  # both halves at once
    assert plan.waiting == ["e"]
    left, right = decision.check
    plan.passed(left.id)
    plan.failed(right.id)
    decision = plan.decide()
    assert decision.land == [("a", "b")]
    assert decision.bisected == [("c", "d")]  # failed twice already: no rerun of its halves
    assert checked(decision) == [((), ("c",), 1), (("c",), ("d",), 1)]
    c, d = decision.check
    plan.failed(d.id)
    plan.passed(c.id)
    decision = plan.decide()
    assert decision.land == [("c",)] and decision.culprits == ["d"]
    assert checked(decision) == [((), ("e",), 1)]
    assert not plan.confirmed  # what was confirmed failing has landed, or is the culprit
    assert plan.size == 2 and isinstance(plan.size, int)  # 4, halved, doubled, halved, doubled, halved


def test_a_conflict_with_the_tip_itself_is_the_items_own():
    plan = plan_of("a", "b", parallel=1)
    state = plan.decide().check[0]
    assert plan.conflicted(state.id, "a") == ["a"]
    assert checked(plan.decide()) == [((), ("b",), 1)]
    assert "a" not in plan.held and "a" not in plan.kinds


def test_a_plan_starts_at_its_largest_batch():
    plan = QueuePlan(batch_max=2, parallel=1)
    for key in "abc":
        plan.add(key)
    assert checked(plan.decide()) == [((), ("a", "b"), 1)]


def test_the_size_never_halves_below_one_and_stays_a_whole_number():
    plan = plan_of("a", "b", parallel=1, size=1, flaky_retries=0)
    plan.failed(plan.decide().check[0].id)
    assert plan.decide().culprits == ["a"] and plan.size == 1
    plan = plan_of(*"abcdef", parallel=1, size=4, batch_max=4, flaky_retries=0)
    plan.failed(plan.decide().check[0].id)  # a b c d: split in two
    first = plan.decide().check[0]
    plan.failed(first.id)  # a b: split again, with c d's half still to come
    decision = plan.decide()
    assert checked(decision) == [((), ("a",), 1)]
    plan.passed(decision.check[0].id)
    plan.decide()
    plan.failed(plan.states[0].id)
    assert plan.decide().culprits == ["b"]
    assert plan.states[0].items == ("c", "d")  # the pending half keeps its size, whatever the size is now
    assert plan.size == 1 and isinstance(plan.size, int)


def test_a_conflict_with_a_state_ahead_waits_for_it_to_land_then_is_tried_on_the_tip():
    plan = plan_of("a", "b", "c", parallel=3)
    first, second, third = plan.decide().check
    assert plan.conflicted(second.id, "b") == []
    decision = plan.decide()
    assert decision.check == [] and plan.waiting == ["b", "c"]  # c waits behind b: first passed, first landed
    plan.passed(first.id)
    plan.passed(third.id)  # given up with b's: its result says nothing
    decision = plan.decide()
    assert decision.land == [("a",)]
    assert checked(decision) == [((), ("b", "c"), 1)]  # on the tip now
    assert "b" not in plan.held
    assert plan.conflicted(decision.check[0].id, "b") == ["b"]
    assert checked(plan.decide()) == [((), ("c",), 1)]


def test_a_conflict_inside_a_batch_keeps_the_items_before_it_together():
    plan = plan_of("a", "b", "c", parallel=1, size=3)
    state = plan.decide().check[0]
    assert plan.conflicted(state.id, "b") == []
    assert checked(plan.decide()) == [((), ("a",), 1)]


def test_a_tip_moved_under_a_landing_makes_it_and_every_state_again_in_their_order():
    plan = plan_of("a", "b", "c", parallel=2, kinds={"a": "x", "b": "x", "c": "x"})
    first, second = plan.decide().check
    plan.passed(first.id)
    assert plan.decide().land == [("a",)]
    plan.restart({"a": "x"})
    assert plan.waiting == ["a", "b", "c"] and plan.kinds["a"] == "x"
    assert [c.items for c in plan.decide().check] == [("a", "b"), ("c",)]


def test_a_cleared_queue_holds_nothing_and_its_states_say_nothing_after():
    plan = plan_of("a", "b", batch_max=3, parallel=2, flaky_retries=2, size=2)
    state = plan.decide().check[0]
    plan.clear()
    assert (plan.batch_max, plan.parallel, plan.flaky_retries, plan.size) == (3, 2, 2, 2)  # its settings stay
    plan.passed(state.id)
    assert not plan.busy and plan.decide().land == []
    plan.add("c")
    assert plan.decide().check[0].id > state.id  # a new state is never mistaken for an old one



def _failed_first(plan):
    plan.failed(plan.states[0].id)


def _conflict_ahead(plan):
    plan.conflicted(plan.states[1].id, plan.states[1].items[0])


def _tip_moved(plan):
    plan.restart()


@pytest.mark.parametrize("event, given_up", [
    (_failed_first, [1, 2, 3]),  # a lone culprit: every state behind it held its item
    (_conflict_ahead, [2, 3]),  # the state that conflicted and those behind it
    (_tip_moved, [1, 2, 3]),
    (lambda plan: plan.passed(plan.states[0].id), []),
    (lambda plan: plan.failed(plan.states[1].id), []),  # not judged while the one ahead is checked
    (lambda plan: (_conflict_ahead(plan), _failed_first(plan)), [2, 3, 1]),  # two give-ups, one decision
])
def test_the_states_given_up_are_named_once_for_their_checks_to_be_stopped(event, given_up):
    plan = plan_of("a", "b", "c", "d", parallel=3, flaky_retries=0)
    assert [c.id for c in plan.decide().check] == [1, 2, 3]
    event(plan)
    assert plan.decide().given_up == given_up
    assert plan.decide().given_up == []
