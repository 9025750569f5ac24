"""Every verdict of the staleness table on plain data, reason by reason, and how an upstream's
news reaches the items after it: what runs (and is paid for) again rests on these."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_tasks.plan.taskfile import parse
from batch_tasks.state.item_status import (ABSENT, DONE, FAILED, FORGOTTEN_NOW, INTERRUPTED, RUNNING_NOW, UNREADABLE,
                                           ItemStatus, read_status)
from batch_tasks.state.staleness import (DONE_BY_HAND, KILLED_MID_RUN, TICK_PENDING, UNREADABLE_REASON, Verdict, assess,
                                         assess_statuses, fingerprint, settings_digest, stamp, upstream_digest)
from batch_tasks.state.state import BatchState

PLAN = """---
agent: command
command: [x]
---
# T
## One
- [{a}] a: first
- [{b}] b: first
- [{c}] c: first
## Two
- [{two}] a: second
## Three
- [{three}] a: third
"""


def plan_of(**ticks):
    boxes = {key: "x" if ticks.get(key) else " " for key in ("a", "b", "c", "two", "three")}
    return parse(PLAN.format(**boxes), Path("/tmp/task.md"))


def prints_of(plan):
    return {item.key: fingerprint(item, "settings", "template") for item in plan.items()}


def done(plan, key, **extra):
    """A success record of `key` as it is now, ticked, made after its upstream as it is."""
    record = {"run_id": f"run-{key}", "ticked": True, "fingerprint": prints_of(plan)[key], **extra}
    return ItemStatus(DONE, result=record)


def verdicts_of(plan, statuses):
    every = {item.key: statuses.get(item.key, ItemStatus(ABSENT)) for item in plan.items()}
    return assess_statuses(plan, every, prints_of(plan))


def all_done(plan):
    """Every item done in turn, each record naming the upstream it was made after."""
    statuses, stamps = {}, {}
    for group in plan.groups:
        for item in group.items:
            upstream = upstream_digest((d.key, stamps[d.key]) for d in plan.upstream(item))
            statuses[item.key] = done(plan, item.key, upstream=upstream, cost_usd=0.25, duration_s=3.0)
            stamps[item.key] = f"run-{item.key}"
    return statuses


@pytest.mark.parametrize("status, ticked, reason, runs", [
    (ItemStatus(ABSENT), False, "new", True),
    (ItemStatus(ABSENT), True, DONE_BY_HAND, False),
    (ItemStatus(FORGOTTEN_NOW), False, "forgotten", True),
    (ItemStatus(FORGOTTEN_NOW), True, "forgotten", True),  # forgotten beats a tick by hand
    (ItemStatus(RUNNING_NOW), False, KILLED_MID_RUN, True),
    (ItemStatus(RUNNING_NOW), True, DONE_BY_HAND, False),
    (ItemStatus(INTERRUPTED), False, "interrupted last time", True),
    (ItemStatus(FAILED, failure={"reason": "exit status 2"}), False, "failed last time (exit status 2)", True),
    (ItemStatus(FAILED, failure={}), False, "failed last time (see its log)", True),
    (ItemStatus(FAILED, failure={"reason": "x"}), True, DONE_BY_HAND, False),
    (ItemStatus(UNREADABLE, problem="result.json: not JSON"), False, UNREADABLE_REASON, True),
    (ItemStatus(UNREADABLE, problem="result.json: not JSON"), True, UNREADABLE_REASON, True),
])
def test_an_item_without_a_result_runs_unless_ticked_by_hand(status, ticked, reason, runs):
    plan = plan_of(a=ticked)
    verdict = verdicts_of(plan, {"one:a": status})["one:a"]
    assert (verdict.reason, verdict.runs) == (reason, runs)
    assert (verdict.spent_usd, verdict.duration_s) == (0.0, None)  # no result: nothing spent on it
    assert verdict.problem == status.problem
    assert bool(verdict) is not runs  # doit reads true as up to date
    assert str(verdict) == reason


def test_a_result_ticked_is_done_and_says_what_it_cost_and_took():
    plan = plan_of(a=True, b=True, c=True, two=True, three=True)
    verdicts = verdicts_of(plan, all_done(plan))
    for key, verdict in verdicts.items():
        assert (verdict.reason, verdict.runs, verdict.spent_usd, verdict.duration_s) == ("done", False, 0.25, 3.0), key


def test_a_result_whose_tick_was_not_written_is_done_its_tick_pending():
    plan = plan_of()
    statuses = {"one:a": done(plan, "one:a", ticked=False)}
    assert verdicts_of(plan, statuses)["one:a"].reason == TICK_PENDING
    assert not verdicts_of(plan, statuses)["one:a"].runs


def test_a_result_that_says_no_cost_cost_nothing():
    plan = plan_of(a=True)
    record = {"run_id": "r", "ticked": True, "fingerprint": prints_of(plan)["one:a"]}
    verdict = verdicts_of(plan, {"one:a": ItemStatus(DONE, result=record)})["one:a"]
    assert (verdict.reason, verdict.spent_usd, verdict.duration_s) == ("done", 0.0, None)


def test_a_result_unticked_by_hand_runs_again_and_counts_what_it_cost():
    plan = plan_of()
    verdict = verdicts_of(plan, {"one:a": done(plan, "one:a", cost_usd=1.5, duration_s=9.0)})["one:a"]
    assert (verdict.reason, verdict.runs, verdict.spent_usd, verdict.duration_s) == ("unticked by hand", True, 1.5, 9.0)


@pytest.mark.parametrize("changed", [["instruction"], ["template"], ["agent settings"],
                                     ["instruction", "template", "agent settings"]])
def test_each_changed_part_of_what_a_result_was_made_from_is_named(changed):
    plan = plan_of(a=True)
    older = {part: ("older" if part in changed else digest) for part, digest in prints_of(plan)["one:a"].items()}
    verdict = verdicts_of(plan, {"one:a": done(plan, "one:a", fingerprint=older)})["one:a"]
    assert (verdict.reason, verdict.runs) == (f"changed: {', '.join(changed)}", True)


def test_a_record_without_a_fingerprint_is_changed_in_every_part():
    plan = plan_of(a=True)
    record = {"run_id": "r", "ticked": True}
    verdict = verdicts_of(plan, {"one:a": ItemStatus(DONE, result=record)})["one:a"]
    assert verdict.reason == "changed: instruction, template, agent settings"


def test_an_item_runs_when_one_or_more_of_its_upstream_will():
    plan = plan_of(a=True, b=True, c=True, two=True, three=True)
    statuses = all_done(plan)
    statuses["one:b"] = ItemStatus(FAILED, failure={"reason": "x"})
    plan_b_open = plan_of(a=True, c=True, two=True, three=True)
    verdicts = verdicts_of(plan_b_open, statuses)
    assert verdicts["two:a"].reason == "upstream: one:b will run"
    assert verdicts["three:a"].reason == "upstream: two:a will run"  # the news goes on down
    assert not verdicts["one:a"].runs and not verdicts["one:c"].runs

    plan_two_open = plan_of(c=True, two=True, three=True)
    verdicts = verdicts_of(plan_two_open, statuses)
    assert verdicts["two:a"].reason == "upstream: one:a will run (and 1 more)"
    plan_all_open = plan_of(two=True, three=True)
    statuses["one:c"] = ItemStatus(FORGOTTEN_NOW)
    assert verdicts_of(plan_all_open, statuses)["two:a"].reason == "upstream: one:a will run (and 2 more)"


def test_an_item_runs_when_its_upstream_ran_again_since_its_result():
    plan = plan_of(a=True, b=True, c=True, two=True, three=True)
    statuses = all_done(plan)
    statuses["one:b"] = done(plan, "one:b", run_id="a later run")
    verdicts = verdicts_of(plan, statuses)
    assert verdicts["two:a"].reason == "upstream: group 'one' ran again since"
    assert verdicts["three:a"].reason == "upstream: two:a will run"
    assert not verdicts["one:a"].runs

    statuses = all_done(plan)
    statuses["two:a"] = done(plan, "two:a", run_id="a later run", upstream=statuses["two:a"].result["upstream"])
    verdicts = verdicts_of(plan, statuses)
    assert not verdicts["two:a"].runs
    assert verdicts["three:a"].reason == "upstream: group 'two' ran again since"  # one item upstream


def test_an_upstream_item_ticked_or_unticked_by_hand_is_news_downstream():
    plan = plan_of(a=True, b=True, c=True, two=True, three=True)
    statuses = all_done(plan)
    del statuses["one:b"]  # one:b's result gone: only its tick by hand says it is done
    verdicts = verdicts_of(plan, statuses)
    assert verdicts["one:b"].reason == DONE_BY_HAND and not verdicts["one:b"].runs
    assert verdicts["two:a"].reason == "upstream: group 'one' ran again since"


def test_the_stamps_in_every_records_upstream_digest_stay_what_they_were():
    # Each result record keeps the digest of its upstream's stamps: another word here would
    # make every finished item's upstream look changed after an upgrade, and run them all again.
    plan = plan_of(a=True)
    ticked, still_open = plan.groups[0].items[0], plan.groups[0].items[1]
    assert (stamp(None, ticked), stamp(None, still_open)) == ("by hand", "open")
    assert stamp({"run_id": "r-1"}, still_open) == "r-1"


def test_the_first_group_has_no_upstream_to_wait_for():
    plan = plan_of(a=True)
    statuses = {"one:a": done(plan, "one:a", upstream="anything at all")}
    assert not verdicts_of(plan, statuses)["one:a"].runs


def test_a_tick_by_hand_keeps_an_item_done_whatever_its_upstream():
    plan = plan_of(a=False, b=True, c=True, two=True, three=True)
    verdicts = verdicts_of(plan, {})
    assert verdicts["one:a"].runs
    assert (verdicts["two:a"].reason, verdicts["two:a"].runs) == (DONE_BY_HAND, False)


def test_a_verdict_is_up_to_date_for_doit_exactly_when_it_does_not_run():
    assert bool(Verdict(False, "done")) is True
    assert bool(Verdict(True, "new")) is False


def test_the_settings_digest_changes_with_what_changes_an_agents_work_only():
    base = {"agent": "command", "command": ["x"], "parallel": 2}
    assert settings_digest(base) == settings_digest({**base, "parallel": 8})  # how many at once: same work
    assert settings_digest(base) != settings_digest({**base, "model": "other"})
    assert settings_digest(base) != settings_digest({**base, "command": ["y"]})
    assert settings_digest({"agent": "command"}) == settings_digest({})  # a default said aloud is no change


def test_the_verdicts_read_from_a_state_folder_are_those_of_its_statuses(tmp_path):
    plan = plan_of(a=True)
    state = BatchState(tmp_path / "task.md")
    state.ensure()
    item = state.item("one", "a")
    item.ensure()
    Path(item.result).write_text(json.dumps(done(plan, "one:a", cost_usd=2.0).result))
    verdicts = assess(plan, state, prints_of(plan))
    statuses = {item.key: read_status(state.item(item.group, item.module)) for item in plan.items()}
    assert verdicts == assess_statuses(plan, statuses, prints_of(plan))
    assert (verdicts["one:a"].reason, verdicts["one:a"].spent_usd) == ("done", 2.0)
    assert verdicts["one:b"].reason == "new"
