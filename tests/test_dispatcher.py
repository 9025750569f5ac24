"""The run's decisions on plain data: who starts next (dispatcher), what follows a failure
(retry.decide), and what is stale (staleness.assess_statuses). No processes, no clocks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_tasks.agents import PERMANENT, TRANSIENT, WAIT, retry
from batch_tasks.plan import named_files
from batch_tasks.plan.taskfile import parse
from batch_tasks.run.dispatcher import CACHE_SECONDS, Candidate, Dispatcher, candidates, critical_paths
from batch_tasks.state.budget import Budget
from batch_tasks.state.item_status import ABSENT, DONE, FAILED, FORGOTTEN_NOW, UNREADABLE, ItemStatus
from batch_tasks.state.staleness import assess_statuses, fingerprint

NOW = 1_000_000.0


def candidate(key: str, place: int, chain: float = 1.0, group: str = "g", limit: int | None = None, agent: str = "command",
              reserve_usd: float | None = None, warms_cache: bool = False, touches: tuple[str, ...] = ()):
    return Candidate((-chain, place), key, group, limit, agent, reserve_usd, warms_cache, touches=frozenset(touches))


def keys(starts) -> list[str]:
    return [c.key for c in starts]


def test_ties_start_in_document_order_one_at_a_time():
    dispatcher = Dispatcher(capacity=1)
    items = [candidate(f"g:{n}", n) for n in (3, 1, 2, 0)]
    for item in items:
        dispatcher.offer(item)
    order = []
    for _ in items:
        starts, _ = dispatcher.take(NOW)
        assert len(starts) == 1
        order += keys(starts)
        dispatcher.release(starts[0])
    assert order == ["g:0", "g:1", "g:2", "g:3"]


def test_the_longest_remaining_chain_goes_first():
    dispatcher = Dispatcher(capacity=2)
    for item in (candidate("g:a", 0, chain=1), candidate("g:b", 1, chain=9), candidate("g:c", 2, chain=5)):
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:b", "g:c"]


def test_group_and_agent_limits_hold_while_other_groups_use_free_slots():
    dispatcher = Dispatcher(capacity=4, agent_limits={"claude": 1})
    for n in range(3):
        dispatcher.offer(candidate(f"slow:{n}", n, chain=10, group="slow", limit=1))
    for n in range(3):
        dispatcher.offer(candidate(f"ai:{n}", 10 + n, group="ai", agent="claude"))
    dispatcher.offer(candidate("free:0", 20, group="free"))
    assert keys(dispatcher.take(NOW)[0]) == ["slow:0", "ai:0", "free:0"]
    assert dispatcher.running == 3  # one slot left, and nothing it may take


def test_a_paused_agent_starts_nothing_until_its_limit_resets():
    dispatcher = Dispatcher(capacity=2)
    dispatcher.offer(candidate("g:a", 0, agent="claude"))
    dispatcher.offer(candidate("h:b", 1, group="h"))
    dispatcher.pause("claude", NOW + 60)
    assert keys(dispatcher.take(NOW)[0]) == ["h:b"]
    assert dispatcher.next_change(NOW) == NOW + 60
    assert keys(dispatcher.take(NOW + 61)[0]) == ["g:a"]


def test_a_retry_in_backoff_holds_no_slot_and_starts_when_its_time_comes():
    dispatcher = Dispatcher(capacity=1)
    first, other = candidate("g:a", 0, chain=5), candidate("g:b", 1)
    dispatcher.offer(first)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a"]
    dispatcher.release(first)
    dispatcher.offer(first, not_before=NOW + 10)
    dispatcher.offer(other)
    assert keys(dispatcher.take(NOW)[0]) == ["g:b"]
    dispatcher.release(other)
    assert dispatcher.take(NOW + 5) == ([], [])
    assert keys(dispatcher.take(NOW + 10)[0]) == ["g:a"]


def test_a_halt_keeps_new_items_back_but_lets_started_ones_retry():
    dispatcher = Dispatcher(capacity=2)
    started, waiting = candidate("g:a", 0), candidate("g:b", 1, group="h", limit=0)
    dispatcher.offer(started)
    dispatcher.offer(waiting)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a"]
    dispatcher.release(started)
    dispatcher.offer(started, not_before=NOW + 1)
    dispatcher.halt("g:x failed")
    starts, refused = dispatcher.take(NOW + 2)
    assert keys(starts) == ["g:a"] and refused == [("g:b", "g:x failed")]
    dispatcher.offer(candidate("g:c", 2))  # handed out by doit after the halt
    assert dispatcher.take(NOW + 3) == ([], [("g:c", "g:x failed")])


def test_each_start_reserves_so_the_budget_is_never_overshot():
    # $1.00 at -n 4, items that may cost $0.50 each and cost $0.40: once this started
    # all four and spent $1.60.
    budget = Budget(1.00)
    dispatcher = Dispatcher(capacity=4, budget=budget)
    items = [candidate(f"g:{n}", n, reserve_usd=0.50) for n in range(4)]
    for item in items:
        dispatcher.offer(item)
    assert dispatcher.take(NOW) == (items[:2], [])
    budget.spend(0.40)
    dispatcher.release(items[0])
    assert dispatcher.take(NOW) == ([], [])  # $0.10 left beside g:1's reservation: g:2 waits
    budget.spend(0.40)
    dispatcher.release(items[1])
    starts, refused = dispatcher.take(NOW)
    assert starts == [] and [key for key, _ in refused] == ["g:2", "g:3"]
    assert refused[0][1] == "the batch's budget of $1.00 cannot hold it: it may cost $0.50, $0.30 more than is left"
    assert budget.spent == pytest.approx(0.80) and budget.reserved == 0 and dispatcher.idle


def test_an_item_of_unknown_cost_reserves_all_that_is_left_and_runs_alone():
    budget = Budget(1.00)
    dispatcher = Dispatcher(capacity=4, budget=budget)
    unknown, known = candidate("g:a", 0, chain=5), candidate("g:b", 1, reserve_usd=0.10)
    dispatcher.offer(unknown)
    dispatcher.offer(known)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a"]
    assert budget.reserved == 1.00 and not budget.can_hold(0.10)
    budget.spend(1.00)
    dispatcher.release(unknown)
    assert dispatcher.take(NOW) == ([], [("g:b", "the batch's budget of $1.00 is spent (it needed $0.10 more)")])


def test_a_group_new_to_the_history_reserves_its_dearest_attempt_so_far_after_the_first():
    budget = Budget(1.00)
    dispatcher = Dispatcher(capacity=4, budget=budget)
    items = [candidate(f"g:{n}", n) for n in range(4)]
    for item in items:
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:0"]  # unknown: all that is left, alone
    budget.spend(0.20)
    dispatcher.release(items[0], cost_usd=0.20)
    assert keys(dispatcher.take(NOW)[0]) == ["g:1", "g:2", "g:3"]  # $0.20 each now
    assert budget.reserved == pytest.approx(0.60)


def test_a_retry_the_budget_cannot_hold_is_refused_too():
    budget = Budget(1.00)
    dispatcher = Dispatcher(capacity=2, budget=budget)
    item = candidate("g:a", 0, reserve_usd=0.60)
    dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a"]
    budget.spend(0.60)
    dispatcher.release(item)
    dispatcher.offer(item, not_before=NOW + 1)
    starts, refused = dispatcher.take(NOW + 1)
    assert starts == [] and [key for key, _ in refused] == ["g:a"]


def test_a_spent_budget_starts_no_new_item():
    budget = Budget(1.00, spent_usd=1.00)
    dispatcher = Dispatcher(capacity=3, budget=budget)
    for n in range(3):
        dispatcher.offer(candidate(f"g:{n}", n, reserve_usd=None if n else 0.01))
    starts, refused = dispatcher.take(NOW)
    assert starts == [] and [key for key, _ in refused] == ["g:0", "g:1", "g:2"]
    assert refused[1][1] == "the batch's budget of $1.00 is spent"


def test_a_groups_first_item_starts_alone_and_the_rest_once_its_first_response_came():
    dispatcher = Dispatcher(capacity=4)
    group = [candidate(f"g:{n}", n, agent="claude", warms_cache=True) for n in range(4)]
    for item in group + [candidate("h:x", 9, group="h")]:
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:0", "h:x"]  # another group takes a free slot
    assert dispatcher.awaits_first_response("g:0") and dispatcher.take(NOW + 1) == ([], [])
    dispatcher.first_response(group[0], NOW + 2)
    assert keys(dispatcher.take(NOW + 2)[0]) == ["g:1", "g:2"]


def test_a_first_item_that_ends_without_a_response_hands_the_cache_to_the_next():
    dispatcher = Dispatcher(capacity=4)
    group = [candidate(f"g:{n}", n, agent="claude", warms_cache=True) for n in range(3)]
    for item in group:
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:0"]
    dispatcher.release(group[0])
    assert keys(dispatcher.take(NOW)[0]) == ["g:1"]  # alone again
    dispatcher.first_response(group[1], NOW + 1)
    dispatcher.release(group[1])
    # Past the cache's lifetime with no start to renew it, the next starts alone again.
    dispatcher.offer(group[0], not_before=NOW + 1)
    assert keys(dispatcher.take(NOW + 1 + CACHE_SECONDS + 1)[0]) == ["g:0"]
    assert dispatcher.awaits_first_response("g:0")


def test_only_groups_of_an_agent_with_a_prompt_cache_and_more_than_one_item_warm_it_first():
    plan = parse("---\nagent: claude\n---\n# T\n## Two\n- [ ] a: x\n- [ ] b: x\n## One\n- [ ] c: x\n"
                 "## Off\n<!-- prefill_cache: false -->\n- [ ] d: x\n- [ ] e: x\n", Path("/nowhere/task.md"))
    assert {key: c.warms_cache for key, c in candidates(plan, {}).items()} == {
        "two:a": True, "two:b": True, "one:c": False, "off:d": False, "off:e": False}


def test_items_start_on_their_fallback_model_once_the_budget_left_is_below_their_forecast():
    budget = Budget(1.30)
    dispatcher = Dispatcher(capacity=1, budget=budget)
    items = [Candidate((-1.0, n), f"g:{n}", "g", None, "claude", 0.39, False, 0.39, "haiku") for n in range(4)]
    for item in items:
        dispatcher.offer(item)
    for n, (cost, fallback) in enumerate([(0.13, True), (0.39, False), (0.39, False), (0.39, False)]):
        assert dispatcher.take(NOW) == ([items[n]], [])
        assert (items[n].key in budget.fallbacks) == fallback
        budget.spend(cost)
        dispatcher.release(items[n])
    assert budget.fallbacks == {"g:0": ("haiku", "$1.30 left of the budget, below the $1.56 forecast of the 4 items not started")}
    assert budget.spent == pytest.approx(1.30) and dispatcher.idle


def test_withdraw_takes_back_started_items_between_attempts():
    dispatcher = Dispatcher(capacity=1)
    a, b = candidate("g:a", 0), candidate("g:b", 1)
    dispatcher.offer(a)
    dispatcher.take(NOW)
    dispatcher.release(a)
    dispatcher.offer(a, not_before=NOW + 30)
    dispatcher.offer(b)
    assert keys(dispatcher.withdraw()) == ["g:a"]
    dispatcher.halt("the run was stopped")
    assert dispatcher.take(NOW + 60) == ([], [("g:b", "the run was stopped")])
    assert dispatcher.idle


def test_two_items_that_touch_one_file_do_not_run_together_while_another_can_run_instead():
    dispatcher = Dispatcher(capacity=2)
    a, b = candidate("g:a", 0, touches=["src/auth.py"]), candidate("g:b", 1, touches=["auth.py", "docs/b.md"])
    c, d = candidate("g:c", 2, touches=["src/other.py"]), candidate("g:d", 3)
    for item in (a, b, c, d):
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a", "g:c"]  # b is passed over, not dropped
    dispatcher.release(c)
    assert keys(dispatcher.take(NOW)[0]) == ["g:d"]
    dispatcher.release(a)
    assert keys(dispatcher.take(NOW)[0]) == ["g:b"]  # first once its file is free, as its place says


def test_when_only_an_item_kept_apart_is_left_its_slot_waits_for_the_file():
    dispatcher = Dispatcher(capacity=2)
    a, b = candidate("one:a", 0, group="one", touches=["README.md"]), candidate("two:b", 1, group="two", touches=["README.md"])
    dispatcher.offer(a)
    dispatcher.offer(b)
    assert keys(dispatcher.take(NOW)[0]) == ["one:a"]
    assert dispatcher.take(NOW) == ([], []) and dispatcher.running == 1  # across groups too; nothing refused
    dispatcher.release(a)
    dispatcher.offer(a, not_before=NOW + 30)  # a retry in backoff holds no file
    assert keys(dispatcher.take(NOW)[0]) == ["two:b"]
    assert dispatcher.take(NOW + 31) == ([], [])  # and waits for it in turn
    dispatcher.release(b)
    assert keys(dispatcher.take(NOW + 31)[0]) == ["one:a"]


def test_an_item_waiting_for_its_landing_gives_back_its_slot_but_keeps_its_files_until_it_lands():
    dispatcher = Dispatcher(capacity=1)
    a, b = candidate("g:a", 0, touches=["src/auth.py"]), candidate("g:b", 1, touches=["src/auth.py"])
    c = candidate("g:c", 2, touches=["src/other.py"])
    for item in (a, b, c):
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a"]
    dispatcher.release(a, files_held=True)  # in the merge queue: its slot is another agent's
    assert dispatcher.running == 0 and keys(dispatcher.take(NOW)[0]) == ["g:c"]  # not b: a's work is not on the tip yet
    dispatcher.release(c)
    assert dispatcher.take(NOW) == ([], [])
    dispatcher.let_go_of_files(a)  # landed
    assert keys(dispatcher.take(NOW)[0]) == ["g:b"]


def test_items_predicted_nothing_or_different_files_run_together():
    dispatcher = Dispatcher(capacity=3)
    for item in (candidate("g:a", 0, touches=["src/a/index.ts"]), candidate("g:b", 1, touches=["src/b/index.ts"]),
                 candidate("g:c", 2)):
        dispatcher.offer(item)
    assert keys(dispatcher.take(NOW)[0]) == ["g:a", "g:b", "g:c"]


FILES = ["src/a.py", "a.py", "lib/a.py", "b.md", "docs/b.md", "c.txt"]


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 4), items=st.lists(st.sets(st.sampled_from(FILES), max_size=2), min_size=1, max_size=8),
       ends=st.lists(st.integers(0, 7), max_size=30))
def test_no_two_running_items_share_a_file_and_no_slot_idles_but_for_one(capacity, items, ends):
    """Whatever items, files and order of endings: every item starts once; two running items
    never share a file; and a slot stays free only while each waiting item's file is held."""
    dispatcher = Dispatcher(capacity=capacity)
    waiting = {f"g:{n}": candidate(f"g:{n}", n, touches=files) for n, files in enumerate(items)}
    for item in waiting.values():
        dispatcher.offer(item)
    running: list[Candidate] = []
    ends = iter(ends)
    while waiting or running:
        started, _ = dispatcher.take(NOW)
        for item in started:
            del waiting[item.key]
        running += started
        for n, one in enumerate(running):
            assert not any(named_files.same_file(a, b) for other in running[n + 1:] for a in one.touches for b in other.touches)
        if len(running) < capacity:
            assert all(any(named_files.same_file(a, b) for a in item.touches for other in running for b in other.touches)
                       for item in waiting.values())
        ended = running.pop(next(ends, 0) % len(running))
        dispatcher.release(ended)
    assert dispatcher.idle


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
"""


def test_critical_paths_follow_the_plans_edges():
    plan = parse(PIPELINED, Path("/tmp/task.md"))
    chain = critical_paths(plan, {"one:a": 5.0, "two:a": 7.0, "one:b": 1.0})
    # two:b has no history: its group's median (7); two:c waits for all of `one`.
    assert chain == {"two:a": 7.0, "two:b": 7.0, "two:c": 7.0, "one:a": 12.0, "one:b": 8.0}
    ranked = sorted(candidates(plan, {"one:a": 5.0, "two:a": 7.0, "one:b": 1.0}).values())
    assert [c.key for c in ranked] == ["one:a", "one:b", "two:a", "two:b", "two:c"]


SETTINGS = {"retries": 2, "retry_base": 10.0, "retry_cap": 300.0}


def test_a_limit_in_the_future_is_a_pause_counted_as_a_wait():
    decision = retry.decide(WAIT, NOW + 90, retry.Counts(), SETTINGS, NOW)
    assert (decision.retry, decision.kind, decision.at) == (True, WAIT, NOW + 90)
    assert decision.counted(retry.Counts()) == retry.Counts(transient=0, waits=1)


def test_a_limit_that_keeps_coming_ends_after_max_waits():
    counts, attempts = retry.Counts(), 0
    while (decision := retry.decide(WAIT, NOW + 1, counts, SETTINGS, NOW)).retry:
        counts, attempts = decision.counted(counts), attempts + 1
    assert attempts == retry.MAX_WAITS


def test_a_reset_time_already_past_is_a_transient_retry_with_backoff_not_a_busy_loop():
    counts, delays = retry.Counts(), []
    while (decision := retry.decide(WAIT, NOW - 5, counts, SETTINGS, NOW, jitter=0.0)).retry:
        assert decision.kind == TRANSIENT
        delays.append(decision.at - NOW)
        counts = decision.counted(counts)
    assert delays == [5.0, 10.0]  # retries=2, half of 10s then of 20s with no jitter


def test_waits_and_transient_retries_each_count_against_their_own_limit():
    """A wait between transient failures must not reset or stall the transient count."""
    counts, attempts = retry.Counts(), 0
    for failure, at in [(TRANSIENT, None), (WAIT, NOW + 5), (TRANSIENT, None), (WAIT, NOW + 5), (TRANSIENT, None)]:
        decision = retry.decide(failure, at, counts, SETTINGS, NOW)
        if not decision.retry:
            break
        counts, attempts = decision.counted(counts), attempts + 1
    assert attempts == 4 and counts == retry.Counts(transient=2, waits=2)


def test_a_permanent_failure_is_never_retried():
    assert not retry.decide(PERMANENT, None, retry.Counts(), SETTINGS, NOW).retry


PLAIN = """---
agent: command
command: [x]
---
# T
## One
- [ ] a: first
- [x] b: first
## Two
- [ ] a: second
"""


def _fingerprints(plan):
    return {item.key: fingerprint(item, "s", "t") for item in plan.items()}


@pytest.mark.parametrize(
    "statuses, expected",
    [
        ({}, {"one:a": "new", "one:b": "done by hand", "two:a": "new"}),
        ({"one:a": ItemStatus(FAILED, failure={"reason": "exit status 2"})},
         {"one:a": "failed last time (exit status 2)"}),
        ({"one:a": ItemStatus(FORGOTTEN_NOW)}, {"one:a": "forgotten"}),
        ({"one:a": ItemStatus(UNREADABLE, problem="x cannot be read")}, {"one:a": "its records cannot be read"}),
    ],
)
def test_staleness_on_plain_data(statuses, expected):
    plan = parse(PLAIN, Path("/tmp/task.md"))
    every = {item.key: statuses.get(item.key, ItemStatus(ABSENT)) for item in plan.items()}
    verdicts = assess_statuses(plan, every, _fingerprints(plan))
    for key, reason in expected.items():
        assert verdicts[key].reason == reason
    assert verdicts["one:b"].runs is False


def test_a_changed_fingerprint_and_a_rerun_upstream_make_items_stale():
    plan = parse(PLAIN.replace("[ ] a: first", "[x] a: first").replace("[ ] a: second", "[x] a: second"),
                 Path("/tmp/task.md"))
    prints = _fingerprints(plan)
    done = lambda key, **extra: ItemStatus(DONE, result={"run_id": key, "ticked": True,
                                                        "fingerprint": prints[key], **extra})
    statuses = {"one:a": done("one:a"), "one:b": ItemStatus(ABSENT),
                "two:a": done("two:a", upstream="not what it was")}
    verdicts = assess_statuses(plan, statuses, prints)
    assert not verdicts["one:a"].runs
    assert verdicts["two:a"].reason == "upstream: group 'one' ran again since"
    statuses["one:a"] = done("one:a", fingerprint={**prints["one:a"], "instruction": "older"})
    verdicts = assess_statuses(plan, statuses, prints)
    assert verdicts["one:a"].reason == "changed: instruction"
    assert verdicts["two:a"].reason == "upstream: one:a will run"
