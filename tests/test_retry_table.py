"""What follows a failed attempt (batch_tasks/agents/retry.py), one table per decision: which retry, when,
counted against which limit, said how; and how `adjust:` is read and shown. Plain data, no clock."""

from __future__ import annotations

import time

import pytest

from batch_tasks.agents import CONTEXT_OVERFLOW, HANG, MAX_TURNS, PERMANENT, TOOL_LOOP, TRANSIENT, WAIT, Outcome
from batch_tasks.agents.retry import (CHECK, CONFLICT, DEFAULT_ADJUST, MAX_PAUSE, MAX_WAITS, SAME_CHECK, Adjustment,
                                      Counts, Decision, Failed, adjust, cause_of, check_signature, decide,
                                      describe_adjust, failure_class, parse_adjust)
from batch_tasks.errors import SettingError

NOW = 1_000_000.0
SETTINGS = {"retries": 2, "retry_base": 10.0, "retry_cap": 30.0, "check_retries": 1}
FIVE = {"retries": 5}


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("failure, retry_at, counts, jitter, adjusted, expected", [
    # a limit that resets later pauses until then, MAX_WAITS times at most
    (WAIT, NOW + 90, Counts(), 0.0, False, Decision(True, WAIT, NOW + 90, "limit resets at 13:48:10")),
    (WAIT, NOW + 90, Counts(transient=2, waits=MAX_WAITS - 1, checks=1), 0.0, False,
     Decision(True, WAIT, NOW + 90, "limit resets at 13:48:10")),
    (WAIT, NOW + 90, Counts(waits=MAX_WAITS), 0.0, False, Decision(False, why="a limit was hit 6 times")),
    # a day away at most: one further is paused for a day, then tried again
    (WAIT, NOW + MAX_PAUSE, Counts(), 0.0, False, Decision(True, WAIT, NOW + MAX_PAUSE, "limit resets at 13:46:40")),
    (WAIT, NOW + MAX_PAUSE + 1, Counts(), 0.0, False, Decision(True, WAIT, NOW + MAX_PAUSE, (
        "limit resets at 1970-01-13 13:46:41, more than 24h away: paused 24h at most, then tried again"))),
    # one that resets now, or has no time, is a transient failure: a backoff
    (WAIT, NOW, Counts(), 0.0, False, Decision(True, TRANSIENT, NOW + 5, "retry 1 of 2 in 5.0s")),
    (WAIT, None, Counts(waits=MAX_WAITS), 0.0, False, Decision(True, TRANSIENT, NOW + 5, "retry 1 of 2 in 5.0s")),
    # the backoff doubles up to the cap; jitter spreads it over its upper half
    (TRANSIENT, None, Counts(), 1.0, False, Decision(True, TRANSIENT, NOW + 10, "retry 1 of 2 in 10.0s")),
    (TRANSIENT, None, Counts(), 0.5, False, Decision(True, TRANSIENT, NOW + 7.5, "retry 1 of 2 in 7.5s")),
    (TRANSIENT, None, Counts(transient=1, waits=3, checks=1), 0.0, False,
     Decision(True, TRANSIENT, NOW + 10, "retry 2 of 2 in 10.0s")),
    (TRANSIENT, None, Counts(transient=1), 1.0, FIVE, Decision(True, TRANSIENT, NOW + 20, "retry 2 of 5 in 20.0s")),
    (TRANSIENT, None, Counts(transient=2), 1.0, FIVE, Decision(True, TRANSIENT, NOW + 30, "retry 3 of 5 in 30.0s")),
    (TRANSIENT, None, Counts(transient=4), 0.0, FIVE, Decision(True, TRANSIENT, NOW + 15, "retry 5 of 5 in 15.0s")),
    (TRANSIENT, None, Counts(transient=2), 0.0, False, Decision(False)),
    (TRANSIENT, None, Counts(), 0.0, {"retries": 0}, Decision(False)),
    # a failed check: at once, told why, against check_retries only
    (CHECK, None, Counts(transient=2, waits=MAX_WAITS), 0.0, False, Decision(True, CHECK, NOW, "check retry 1 of 1")),
    (CHECK, None, Counts(checks=1), 0.0, False, Decision(False)),
    (CHECK, None, Counts(checks=2), 0.0, {"check_retries": 3}, Decision(True, CHECK, NOW, "check retry 3 of 3")),
    # a conflict: at once from the new tip, against retries
    (CONFLICT, None, Counts(transient=1, checks=1), 0.0, False,
     Decision(True, CONFLICT, NOW, "retry 2 of 2 from the new tip")),
    (CONFLICT, None, Counts(transient=2), 0.0, False, Decision(False)),
    # a permanent failure: only when adjusted, at once, against retries
    (PERMANENT, None, Counts(), 0.0, False, Decision(False)),
    (PERMANENT, NOW + 90, Counts(), 0.0, False, Decision(False)),
    (PERMANENT, None, Counts(transient=1), 0.0, True, Decision(True, PERMANENT, NOW, "retry 2 of 2, adjusted")),
    (PERMANENT, None, Counts(transient=2), 0.0, True, Decision(False)),
    (TRANSIENT, None, Counts(transient=2), 0.0, True, Decision(False)),
    ("unheard of", None, Counts(), 0.0, True, Decision(False)),
])
def test_decide(utc, failure, retry_at, counts, jitter, adjusted, expected):
    settings = {**SETTINGS, **adjusted} if isinstance(adjusted, dict) else SETTINGS
    assert decide(failure, retry_at, counts, settings, NOW, jitter=jitter, adjusted=adjusted is True) == expected


def test_without_a_given_jitter_the_backoff_is_drawn_from_its_upper_half():
    delays = {decide(TRANSIENT, None, Counts(transient=1), SETTINGS, NOW).at - NOW for _ in range(200)}
    assert len(delays) > 100 and min(delays) >= 10.0 and max(delays) <= 20.0
    assert min(delays) < 11.0 and max(delays) > 19.0


@pytest.mark.parametrize("kind, counted", [
    (WAIT, Counts(3, 6, 2)), (CHECK, Counts(3, 5, 3)), (TRANSIENT, Counts(4, 5, 2)), (CONFLICT, Counts(4, 5, 2)),
    (PERMANENT, Counts(4, 5, 2)),
])
def test_each_retry_counts_against_its_own_limit(kind, counted):
    assert Decision(True, kind).counted(Counts(transient=3, waits=5, checks=2)) == counted


@pytest.mark.parametrize("outcome, exit_status, codes, expected", [
    (Outcome(False, failure_class=PERMANENT), 3, (3, 4), TRANSIENT),  # a listed exit code
    (Outcome(False, failure_class=PERMANENT), 5, (3, 4), PERMANENT),
    (Outcome(False, failure_class=WAIT), 3, (3,), WAIT),  # a limit stays a limit
    (Outcome(False, failure_class=TRANSIENT), 1, (), TRANSIENT),
    (Outcome(False), 1, (), PERMANENT),  # nothing said: permanent
    (Outcome(False), None, None, PERMANENT),
])
def test_failure_class(outcome, exit_status, codes, expected):
    settings = {} if codes is None else {"transient_exit_codes": codes}
    assert failure_class(outcome, exit_status, settings) == expected


DEFAULTS = {cause: dict(options) for cause, options in DEFAULT_ADJUST.items()}


@pytest.mark.parametrize("value, expected", [
    ({}, DEFAULTS),
    ({MAX_TURNS: False, HANG: False}, {**DEFAULTS, MAX_TURNS: None, HANG: None}),
    ({MAX_TURNS: {"cap": 50}}, {**DEFAULTS, MAX_TURNS: {"factor": 2, "cap": 50}}),
    ({MAX_TURNS: {}}, DEFAULTS),
    ({HANG: {"factor": 1.5, "cap": "2h", "progress_s": 45}},
     {**DEFAULTS, HANG: {"factor": 1.5, "cap": 7200.0, "progress_s": 45.0}}),
    ({CONTEXT_OVERFLOW: {"model": "opus"}, TOOL_LOOP: {"repeats": 5}, SAME_CHECK: {"escalate": False}},
     {**DEFAULTS, CONTEXT_OVERFLOW: {"model": "opus"}, TOOL_LOOP: {"repeats": 5}, SAME_CHECK: {"escalate": False}}),
    ({CONTEXT_OVERFLOW: {"model": None}}, DEFAULTS),
])
def test_parse_adjust(value, expected):
    assert parse_adjust(value) == expected


@pytest.mark.parametrize("value, message", [
    ([], "must map causes (context_overflow, max_turns, tool_loop, same_check, hang) to false or their options, "
         "e.g. {max_turns: {cap: 50}}, not []"),
    ({"boredom": False},
     "names an unknown cause 'boredom' (known: context_overflow, max_turns, tool_loop, same_check, hang)"),
    ({HANG: True}, "hang: must be false or a mapping of factor, cap, progress_s, not True"),
    ({HANG: {"quiet": 1}}, "hang: unknown option 'quiet' (known: factor, cap, progress_s)"),
    ({MAX_TURNS: {"factor": True}}, "max_turns.factor must be a number above 1, e.g. 2, not True"),
    ({MAX_TURNS: {"factor": "2"}}, "max_turns.factor must be a number above 1, e.g. 2, not '2'"),
    ({MAX_TURNS: {"factor": 1.0}}, "max_turns.factor must be a number above 1, e.g. 2, not 1.0"),
    ({MAX_TURNS: {"cap": 0}}, "max_turns.cap must be"),
    ({CONTEXT_OVERFLOW: {"model": " "}}, "context_overflow.model must name a model, not ' '"),
    ({CONTEXT_OVERFLOW: {"model": 4}}, "context_overflow.model must name a model, not 4"),
    ({SAME_CHECK: {"escalate": "no"}}, "same_check.escalate must be true or false, not 'no'"),
])
def test_a_wrong_adjust_setting_says_exactly_what_is_wrong(value, message):
    with pytest.raises(SettingError) as raised:
        parse_adjust(value)
    assert str(raised.value).startswith(message)


def test_describe_adjust():
    assert describe_adjust(DEFAULT_ADJUST, None) == [
        "context_overflow: a fresh session, the shared context trimmed",
        "max_turns: the same session, max_turns x2 up to 200",
        "tool_loop: after 3 same tool errors, a fresh session told the item's history",
        "same_check: a fresh session told the item's history",
        "hang: timeout x2 up to 7200s, when it had output in its last 30s (at most half the timeout)",
    ]
    policy = parse_adjust({CONTEXT_OVERFLOW: {"model": "opus"}, MAX_TURNS: False, HANG: {"factor": 1.5}})
    assert describe_adjust(policy, ("sonnet", "opus")) == [
        "context_overflow: a fresh session on opus",
        "max_turns: retried as before (adjust: {max_turns: false})",
        "tool_loop: after 3 same tool errors, a fresh session told the item's history",
        "same_check: a fresh session told the item's history, then the next model of escalate: ['sonnet', 'opus']",
        "hang: timeout x1.5 up to 7200s, when it had output in its last 30s (at most half the timeout)",
    ]
    no_ladder = parse_adjust({SAME_CHECK: {"escalate": False}})
    assert describe_adjust(no_ladder, ("opus",))[3] == "same_check: a fresh session told the item's history"


@pytest.mark.parametrize("made, text", [
    (Adjustment(HANG, {"timeout": 120.0}, {"timeout": 60.0}, ""), "adjusted for hang: timeout 60s -> 120s"),
    (Adjustment(CONTEXT_OVERFLOW, {}, {}, "fresh", trim=True),
     "adjusted for context overflow: a fresh session, the shared context trimmed"),
    (Adjustment(SAME_CHECK, {"model": "opus"}, {"model": None}, "fresh", history=True),
     "adjusted for same check: model none -> opus, a fresh session, told the item's history"),
    (Adjustment(MAX_TURNS, {"max_turns": 20}, {"max_turns": 10}, "continue"),
     "adjusted for max turns: max_turns 10 -> 20, the same session"),
])
def test_an_adjustment_says_what_changed(made, text):
    assert made.text() == text


def test_an_adjustments_record_keeps_all_of_it():
    made = Adjustment(SAME_CHECK, {"model": "opus"}, {"model": "sonnet"}, "fresh", history=True, extra_usd=0.4)
    assert made.record() == {"cause": SAME_CHECK, "changes": {"model": "opus"}, "was": {"model": "sonnet"},
                             "session": "fresh", "trim": False, "history": True, "extra_usd": 0.4,
                             "text": "adjusted for same check: model sonnet -> opus, a fresh session, "
                                     "told the item's history"}


@pytest.mark.parametrize("output, signature", [
    ("test_a FAILED in 12 ms\nerror: x took 3 seconds", ("error: x took", "test_a FAILED")),
    ("ERROR collecting\nFAILURE 2.5 sec", ("ERROR collecting", "FAILURE")),
    ("AssertionError: 1 != 2\nFAIL: b", ("FAIL: b",)),  # "Error" only as a word of its own
    ("  \nlast words  \n\n", ("last words",)),
    ("2 passed\nno failures here", ("no failures here",)),  # none: the last line
])
def test_check_signature(output, signature):
    assert check_signature(output) == signature


CHECK_A, CHECK_B = Failed(CHECK, check="test_a FAILED"), Failed(CHECK, check="test_b FAILED")


@pytest.mark.parametrize("attempts, cause", [
    ([CHECK_A, Failed(TRANSIENT), CHECK_A], SAME_CHECK),  # the check before, not the attempt before
    ([CHECK_A, CHECK_B, CHECK_A], None),
    ([CHECK_A, Failed(TRANSIENT, check="test_a FAILED")], None),  # the last was no failed check
    ([Failed(TRANSIENT, check="test_a FAILED"), CHECK_A], None),
    ([Failed(TRANSIENT, HANG)], HANG),
])
def test_cause_of(attempts, cause):
    assert cause_of(attempts) == cause


BASE = {"agent": "claude", "model": "sonnet", "adjust": None, "escalate": None, "max_turns": 10, "timeout": 60.0}


@pytest.mark.parametrize("last, settings, changes, extra", [
    (Failed(PERMANENT, MAX_TURNS, cost_usd=0.3), {"max_turns": 150}, {"max_turns": 200}, pytest.approx(0.1)),
    (Failed(PERMANENT, MAX_TURNS, turns=30, cost_usd=0.3), {"max_turns": None}, {"max_turns": 60}, pytest.approx(0.3)),
    (Failed(PERMANENT, MAX_TURNS, turns=3), {"max_turns": None, "adjust": parse_adjust({MAX_TURNS: {"factor": 1.5}})},
     {"max_turns": 4}, None),
    (Failed(PERMANENT, CONTEXT_OVERFLOW, cost_usd=0.25), {"adjust": parse_adjust({CONTEXT_OVERFLOW: {"model": "big"}})},
     {"model": "big"}, 0.25),
    (Failed(PERMANENT, CONTEXT_OVERFLOW, cost_usd=0.25),
     {"agent": None, "model": None, "adjust": parse_adjust({CONTEXT_OVERFLOW: {"model": "big"}})}, {}, None),
    (Failed(PERMANENT, CONTEXT_OVERFLOW, cost_usd=0.25, tokens={"input": 1000, "output": 100}),
     {"agent": "command", "model": None, "adjust": parse_adjust({CONTEXT_OVERFLOW: {"model": "big"}})}, {}, None),
    (Failed(TRANSIENT, HANG, quiet_s=30.0), {"timeout": 60.0}, {"timeout": 120.0}, None),  # at the edge: progress
    (Failed(TRANSIENT, HANG, quiet_s=30.0), {"timeout": 59.0}, None, None),  # past half of it
    (Failed(TRANSIENT, HANG, quiet_s=1.0), {"timeout": 7200.0}, None, None),  # at the cap
    (Failed(TRANSIENT, HANG, quiet_s=1.0), {"timeout": 5000.0, "adjust": parse_adjust({HANG: {"cap": 5001}})},
     {"timeout": 5001.0}, None),
])
def test_adjustment_and_its_extra_cost(last, settings, changes, extra):
    made = adjust([last], {**BASE, **settings})
    if changes is None:
        assert made is None
    else:
        was = {name: {**BASE, **settings}[name] for name in changes}
        assert (made.cause, made.changes, made.was, made.extra_usd) == (last.cause, changes, was, extra)


@pytest.mark.parametrize("attempts, settings, cause, changes, was", [
    ([Failed(PERMANENT, TOOL_LOOP)], {}, TOOL_LOOP, {}, {}),
    ([CHECK_A, CHECK_A], {}, SAME_CHECK, {}, {}),
    ([CHECK_A, CHECK_A], {"escalate": ("opus",)}, SAME_CHECK, {"model": "opus"}, {"model": "sonnet"}),
])
def test_an_adjustment_names_its_cause_and_what_it_changed_from(attempts, settings, cause, changes, was):
    made = adjust(attempts, {**BASE, **settings})
    assert (made.cause, made.changes, made.was, made.history) == (cause, changes, was, True)


def test_a_larger_model_for_an_overflow_is_priced_by_the_last_attempts_tokens():
    tokens = {"input": 1000, "output": 100, "cache_read": 0, "cache_write": 0}
    made = adjust([Failed(PERMANENT, CONTEXT_OVERFLOW, cost_usd=0.01, tokens=tokens)],
                  {**BASE, "adjust": parse_adjust({CONTEXT_OVERFLOW: {"model": "claude-opus-4-1"}})})
    assert made.changes == {"model": "claude-opus-4-1"}
    assert made.extra_usd == pytest.approx(1000 * 15e-6 + 100 * 75e-6)  # opus's list price


def test_max_turns_with_no_turns_known_is_not_adjusted():
    assert adjust([Failed(PERMANENT, MAX_TURNS)], {**BASE, "max_turns": None}) is None


def test_a_stronger_model_of_another_provider_is_priced_by_its_tokens():
    tokens = {"input": 1_000_000, "output": 0, "cache_read": 0, "cache_write": 0}
    attempts = [CHECK_A, Failed(CHECK, check="test_a FAILED", cost_usd=0.01, tokens=tokens)]
    on_openai = adjust(attempts, {**BASE, "agent": "codex", "model": "gpt-4o-mini", "escalate": ("gpt-4o-mini", "gpt-4o")})
    assert on_openai.changes == {"model": "gpt-4o"} and on_openai.extra_usd == pytest.approx(2.5)
    on_nobody = adjust(attempts, {**BASE, "agent": "command", "model": None, "escalate": ("gpt-4o",)})
    assert on_nobody.changes == {} and on_nobody.extra_usd is None
