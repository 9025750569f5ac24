"""Who starts next (batch_tasks/run/dispatcher.py), at the edges of each rule: a pause that a later
reset lengthens, a backoff or a pause that ends exactly now, limits freed by a release, a budget
that holds back new items but not a started item's retry, the critical path's median and its
longest chain, what decides a fallback model, the prompt cache's lifetime, the free slots beside
a one-at-a-time group, a usage limit that holds its agent's items. Plain data, no clocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_tasks.agents import WAIT, retry
from batch_tasks.plan.taskfile import parse
from batch_tasks.run.dispatcher import CACHE_SECONDS, Candidate, Dispatcher, candidates, critical_paths
from batch_tasks.run.forecast import Estimate
from batch_tasks.state.budget import Budget

NOW = 1_000_000.0


def candidate(key: str, place: int, group: str = "g", limit: int | None = None, agent: str = "command"):
    return Candidate((-1.0, place), key, group, limit, agent)


def keys(starts) -> list[str]:
    return [c.key for c in starts]


def test_a_later_reset_lengthens_a_pause_and_an_earlier_one_does_not_shorten_it():
    dispatcher = Dispatcher(capacity=1)
    dispatcher.offer(candidate("g:a", 0, agent="claude"))
    dispatcher.pause("claude", NOW + 30)
    dispatcher.pause("claude", NOW + 60)
    dispatcher.pause("claude", NOW + 10)
    assert dispatcher.next_change(NOW) == NOW + 60
    assert dispatcher.take(NOW + 59) == ([], [])
    assert keys(dispatcher.take(NOW + 60)[0]) == ["g:a"]  # it ends at the reset, not after


def test_a_pause_of_another_agent_or_one_that_is_over_holds_nothing():
    dispatcher = Dispatcher(capacity=2)
    dispatcher.pause("gemini", NOW + 60)
    dispatcher.pause("claude", NOW - 1)
    dispatcher.offer(candidate("g:a", 0, agent="claude"))
    dispatcher.offer(candidate("g:b", 1, agent="codex"))
    assert keys(dispatcher.take(NOW)[0]) == ["g:a", "g:b"]
    assert dispatcher.next_change(NOW) == NOW + 60
    assert dispatcher.next_change(NOW + 60) is None  # a pause that ends now is no change to come


def test_the_next_change_is_the_earliest_of_backoffs_and_pauses():
    dispatcher = Dispatcher(capacity=1)
    assert dispatcher.next_change(NOW) is None
    dispatcher.offer(candidate("g:a", 0), not_before=NOW + 20)
    dispatcher.offer(candidate("g:b", 1), not_before=NOW + 5)
    dispatcher.pause("claude", NOW + 10)
    assert dispatcher.next_change(NOW) == NOW + 5
    assert keys(dispatcher.take(NOW + 5)[0]) == ["g:b"]  # a backoff that ends now is over
    assert dispatcher.next_change(NOW + 5) == NOW + 10


@pytest.mark.parametrize("capacity, group_limit, agent_limit, started", [
    (3, None, None, ["g:0", "g:1", "g:2"]), (2, None, None, ["g:0", "g:1"]), (3, 2, None, ["g:0", "g:1"]),
    (3, None, 2, ["g:0", "g:1"]), (3, 1, 2, ["g:0"]), (3, 0, None, []),
])
def test_each_limit_allows_exactly_as_many(capacity, group_limit, agent_limit, started):
    dispatcher = Dispatcher(capacity, agent_limits={"claude": agent_limit} if agent_limit is not None else None)
    for n in range(4):
        dispatcher.offer(candidate(f"g:{n}", n, limit=group_limit, agent="claude"))
    assert keys(dispatcher.take(NOW)[0]) == started
    assert dispatcher.running == len(started)


def test_a_release_frees_the_slot_of_its_group_and_its_agent():
    dispatcher = Dispatcher(capacity=3, agent_limits={"claude": 1})
    first = candidate("g:0", 0, limit=1, agent="claude")
    for item in (first, candidate("g:1", 1, limit=1, agent="claude"), candidate("h:2", 2, group="h", agent="claude")):
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:0"]
    dispatcher.release(first)
    assert dispatcher.running == 0
    assert keys(dispatcher.take(NOW)[0]) == ["g:1"]


def test_a_release_frees_exactly_one_place_of_its_group():
    dispatcher = Dispatcher(capacity=4)
    for n in range(4):
        dispatcher.offer(candidate(f"g:{n}", n, limit=2))
    first, _ = dispatcher.take(NOW)[0]
    dispatcher.release(first)
    assert keys(dispatcher.take(NOW)[0]) == ["g:2"]


def test_the_first_reason_to_halt_is_the_one_given():
    dispatcher = Dispatcher(capacity=1)
    dispatcher.offer(candidate("g:a", 0))
    dispatcher.halt("g:x failed")
    dispatcher.halt("the run was stopped")
    assert dispatcher.take(NOW) == ([], [("g:a", "g:x failed")])


def test_idle_means_nothing_runs_and_nothing_waits():
    dispatcher = Dispatcher(capacity=1)
    assert dispatcher.idle
    item = candidate("g:a", 0)
    dispatcher.offer(item)
    assert not dispatcher.idle
    dispatcher.take(NOW)
    assert not dispatcher.idle  # it runs
    dispatcher.release(item)
    assert dispatcher.idle
    dispatcher.offer(item, not_before=NOW + 5)
    assert not dispatcher.idle  # it waits out a backoff


def test_withdraw_takes_back_a_started_item_ready_again_and_leaves_new_ones():
    dispatcher = Dispatcher(capacity=1)
    a, b = candidate("g:a", 0), candidate("g:b", 1)
    dispatcher.offer(a)
    dispatcher.take(NOW)
    dispatcher.release(a)
    dispatcher.offer(a)
    dispatcher.offer(b)
    assert keys(dispatcher.withdraw()) == ["g:a"]
    assert keys(dispatcher.take(NOW)[0]) == ["g:b"]
    dispatcher.offer(a, not_before=NOW + 30)  # what was withdrawn can be offered again
    assert dispatcher.next_change(NOW) == NOW + 30


PIPELINED = """---
agent: command
command: [x]
pipeline: true
---
# T
## One
- [ ] a: first
- [ ] b: first
## Two
- [ ] a: second
- [ ] b: second
- [ ] c: second
- [ ] d: second
"""


@pytest.mark.parametrize("durations, chains", [
    # two:d has no history: the median of its group's (2, 7, 9), not their mean; two:c and two:d wait
    # for all of `one`, so each of `one` is followed by the longest of its chains
    ({"one:a": 5.0, "one:b": 1.0, "two:a": 7.0, "two:b": 2.0, "two:c": 9.0},
     {"one:a": 14.0, "one:b": 10.0, "two:a": 7.0, "two:b": 2.0, "two:c": 9.0, "two:d": 7.0}),
    ({"two:a": 2.0, "two:b": 6.0, "two:c": None},  # no history in a group: 1 s each
     {"one:a": 5.0, "one:b": 7.0, "two:a": 2.0, "two:b": 6.0, "two:c": 4.0, "two:d": 4.0}),
    ({}, {"one:a": 2.0, "one:b": 2.0, "two:a": 1.0, "two:b": 1.0, "two:c": 1.0, "two:d": 1.0}),
    # the longest of those waiting for the same items is the later one in the file
    ({"one:a": 5.0, "one:b": 1.0, "two:a": 7.0, "two:b": 2.0, "two:c": 3.0, "two:d": 9.0},
     {"one:a": 14.0, "one:b": 10.0, "two:a": 7.0, "two:b": 2.0, "two:c": 3.0, "two:d": 9.0}),
    ({key: 0.5 for key in ("one:a", "one:b", "two:a", "two:b", "two:c", "two:d")},
     {"one:a": 1.0, "one:b": 1.0, "two:a": 0.5, "two:b": 0.5, "two:c": 0.5, "two:d": 0.5}),
])
def test_critical_paths(durations, chains):
    assert critical_paths(parse(PIPELINED, Path("/tmp/task.md")), durations) == chains


def test_each_item_becomes_a_candidate_with_its_chain_place_group_limit_and_agent():
    plan = parse("---\nagent: command\ncommand: [x]\npipeline: true\n---\n# T\n## One\n<!-- parallel: 1 -->\n"
                 "- [ ] a: first\n- [ ] b: first\n## Two\n- [ ] a: second\n", Path("/tmp/task.md"))
    made = candidates(plan, {"one:a": 2.0})
    assert [(c.rank, c.key, c.group, c.group_limit, c.agent) for c in made.values()] == [
        ((-3.0, 0), "one:a", "one", 1, "command"), ((-2.0, 1), "one:b", "one", 1, "command"),
        ((-1.0, 2), "two:a", "two", None, "command")]


def test_each_candidate_carries_its_reservation_forecast_cache_and_fallback():
    plan = parse("---\nagent: claude\n---\n# T\n## One\n<!-- item_budget_usd: 0.5 -->\n<!-- fallback_model: haiku -->\n"
                 "- [ ] a: x\n- [ ] b: y\n## Two\n<!-- prefill_cache: false -->\n- [ ] a: z\n- [ ] b: w\n",
                 Path("/tmp/task.md"))
    estimates = {"one:a": Estimate(1.0, 0.5, 2.0, 10.0, "history"), "two:a": Estimate(0.25, 0.1, 0.75, 10.0, "history")}
    assert {key: (c.reserve_usd, c.warms_cache, c.forecast_usd, c.fallback_model)
            for key, c in candidates(plan, {}, estimates).items()} == {
        "one:a": (0.5, True, 1.0, "haiku"),  # its item_budget_usd, not its forecast's high end
        "one:b": (0.5, True, None, "haiku"),
        "two:a": (0.75, False, 0.25, None),  # its forecast's high end
        "two:b": (None, False, None, None)}  # unknown


def fallback_candidate(key: str, place: int, usd: float, fallback: str | None = "haiku") -> Candidate:
    return Candidate((-1.0, place), key, "g", None, "claude", usd, False, usd, fallback)


def test_the_items_not_started_are_those_whose_forecast_decides_a_fallback():
    # A retry's forecast and a refused item's are no longer to come: only b's counts, and the
    # $0.70 left holds its $0.50.
    budget = Budget(1.0)
    dispatcher = Dispatcher(capacity=1, budget=budget)
    retried, refused, b = fallback_candidate("g:a", 0, 0.6), fallback_candidate("g:c", 1, 5.0), fallback_candidate("g:b", 2, 0.5)
    dispatcher.offer(retried)
    assert dispatcher.take(NOW) == ([retried], [])
    budget.spend(0.3)
    dispatcher.release(retried, 0.3)
    dispatcher.offer(retried, not_before=NOW + 60)
    dispatcher.offer(refused)
    dispatcher.offer(b)
    starts, refusals = dispatcher.take(NOW)
    assert starts == [b] and [key for key, _ in refusals] == ["g:c"]
    assert budget.fallbacks == {}


def test_an_item_without_a_forecast_counts_for_nothing_in_the_fallbacks_decision():
    budget = Budget(1.0)
    dispatcher = Dispatcher(capacity=1, budget=budget)
    unknown = Candidate((-1.0, 1), "g:x", "g", None, "claude", 0.1, False, None, None)
    b = fallback_candidate("g:b", 0, 0.5)
    dispatcher.offer(b)
    dispatcher.offer(unknown)
    assert dispatcher.take(NOW) == ([b], []) and budget.fallbacks == {}


def test_a_retry_keeps_the_model_its_item_started_on():
    budget = Budget(1.0)
    dispatcher = Dispatcher(capacity=1, budget=budget)
    a, b = fallback_candidate("g:a", 0, 0.2), fallback_candidate("g:b", 1, 0.5, fallback=None)
    dispatcher.offer(a)
    dispatcher.offer(b)
    assert dispatcher.take(NOW) == ([a], []) and budget.fallbacks == {}  # $1.00 left holds the $0.70 to come
    budget.spend(0.6)
    dispatcher.release(a, 0.6)
    dispatcher.offer(a)
    assert dispatcher.take(NOW) == ([a], []) and budget.fallbacks == {}  # $0.40 left, but it started on its model


@pytest.mark.parametrize("spent", [1.0, 1.2], ids=["spent", "overshot"])
def test_an_item_handed_back_from_its_review_lands_on_a_spent_budget_and_its_retry_does_not(spent):
    # Its work is paid for: taking its decision (landing it, or sending it back) costs nothing more.
    budget = Budget(1.0)
    dispatcher = Dispatcher(capacity=2, budget=budget)
    reviewed, other = fallback_candidate("g:a", 0, 0.6, fallback=None), fallback_candidate("g:b", 1, 0.3, fallback=None)
    dispatcher.offer(reviewed)
    assert dispatcher.take(NOW) == ([reviewed], [])
    budget.spend(spent)
    dispatcher.release(reviewed, spent)  # it awaits its review, holding no slot
    dispatcher.hand_back(reviewed)  # its decision came
    dispatcher.offer(other)
    starts, refusals = dispatcher.take(NOW)
    assert starts == [reviewed] and [key for key, _ in refusals] == ["g:b"]
    assert budget.reserved == 0
    dispatcher.release(reviewed)
    dispatcher.offer(reviewed)  # sent back to its agent: that attempt costs again
    starts, refusals = dispatcher.take(NOW)
    assert starts == [] and [key for key, _ in refusals] == ["g:a"]


@pytest.mark.parametrize("later, together", [(CACHE_SECONDS - 1, ["g:1", "g:2"]), (CACHE_SECONDS, ["g:1"])],
                         ids=["within its lifetime", "as it expires"])
def test_a_start_within_the_caches_lifetime_reads_it_and_one_as_it_expires_writes_it_alone(later, together):
    dispatcher = Dispatcher(capacity=2)
    group = [Candidate((-1.0, n), f"g:{n}", "g", None, "claude", None, True) for n in range(3)]
    for item in group:
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:0"]
    dispatcher.first_response(group[0], NOW)
    dispatcher.release(group[0])
    assert keys(dispatcher.take(NOW + later)[0]) == together


def test_each_start_within_the_caches_lifetime_renews_it():
    dispatcher = Dispatcher(capacity=1)
    group = [Candidate((-1.0, n), f"g:{n}", "g", None, "claude", None, True) for n in range(4)]
    for item in group:
        dispatcher.offer(item)
    dispatcher.take(NOW)
    dispatcher.first_response(group[0], NOW)
    for n, at in ((1, NOW + 200), (2, NOW + 400), (3, NOW + 600)):  # each within 300 s of the last start
        dispatcher.release(group[n - 1])
        assert keys(dispatcher.take(at)[0]) == [f"g:{n}"]
        assert not dispatcher.awaits_first_response(f"g:{n}")


def test_a_ready_item_takes_a_free_slot_while_a_one_at_a_time_group_runs():
    # The slow group's items rank first (their chain is longer), but only one of them may run:
    # the slots it leaves go to whatever else is ready, as soon as it is.
    dispatcher = Dispatcher(capacity=4)
    slow = [candidate(f"slow:m{n}", n, group="slow", limit=1) for n in range(1, 9)]
    for item in slow:
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["slow:m1"]
    dispatcher.release(slow[0])
    dispatcher.offer(candidate("next:m1", 9, group="next"))  # ready once slow:m1 is done
    assert keys(dispatcher.take(NOW)[0]) == ["slow:m2", "next:m1"]
    assert dispatcher.running == 2 and dispatcher.take(NOW) == ([], [])


def test_a_usage_limit_pauses_that_agent_for_the_whole_batch_once_then_its_items_go_on():
    # Nothing of that agent starts before the reset, free slots or not.
    settings = {"retries": 2, "retry_base": 10.0, "retry_cap": 300.0, "check_retries": 0}
    dispatcher = Dispatcher(capacity=2)
    items = [candidate(f"g:m{n}", n, agent="claude") for n in range(4)]
    other = candidate("h:x", 4, group="h", agent="codex")
    for item in (*items, other):
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:m0", "g:m1"]
    decision = retry.decide(WAIT, NOW + 90, retry.Counts(), settings, NOW)
    assert (decision.kind, decision.at) == (WAIT, NOW + 90)
    dispatcher.release(items[0])
    dispatcher.again(items[0], decision.at, usage_limit=decision.kind == WAIT)
    assert keys(dispatcher.take(NOW + 1)[0]) == ["h:x"]  # another agent's item takes the free slot
    dispatcher.release(items[1])
    dispatcher.release(other)
    assert dispatcher.take(NOW + 89) == ([], []) and dispatcher.next_change(NOW + 89) == NOW + 90
    assert keys(dispatcher.take(NOW + 90)[0]) == ["g:m0", "g:m2"]  # the retry first, in document order
    assert decision.counted(retry.Counts()) == retry.Counts(waits=1)  # one pause counted, not a retry


def test_a_retry_after_any_other_failure_waits_alone():
    dispatcher = Dispatcher(capacity=2)
    failed, other = candidate("g:a", 0, agent="claude"), candidate("g:b", 1, agent="claude")
    dispatcher.offer(failed)
    dispatcher.take(NOW)
    dispatcher.release(failed)
    dispatcher.again(failed, NOW + 10, usage_limit=False)
    dispatcher.offer(other)
    assert keys(dispatcher.take(NOW)[0]) == ["g:b"]  # its agent is not paused
    assert keys(dispatcher.take(NOW + 10)[0]) == ["g:a"]
