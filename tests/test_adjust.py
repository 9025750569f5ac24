"""Adjusting a failed attempt's next one to its cause (batch_tasks/agents/retry.py): plain data in,
plain data out, one table."""

from pathlib import Path

import pytest

from batch_tasks.agents import AGENTS, CONTEXT_OVERFLOW, HANG, MAX_TURNS, PERMANENT, TOOL_LOOP, TRANSIENT
from batch_tasks.agents.retry import (CHECK, DEFAULT_ADJUST, SAME_CHECK, Adjustment, Counts, Failed, adjust,
                                      budget_holds, cause_of, check_signature, decide, parse_adjust)
from batch_tasks.errors import SettingError
from batch_tasks.state.budget import Budget

BASE = {"agent": "claude", "model": "sonnet", "adjust": DEFAULT_ADJUST, "escalate": None, "max_turns": 10,
        "timeout": 60.0, "retries": 2, "retry_base": 1.0, "retry_cap": 10.0, "check_retries": 2}
FAILED_CHECK = "tests/test_a.py::test_one FAILED\n1 failed in 0.31s"


def check(output: str) -> Failed:
    return Failed(CHECK, check=output)


@pytest.mark.parametrize("attempts, settings, expected", [
    # context overflow: a fresh session, the shared context trimmed; or the named larger model
    ([Failed(PERMANENT, CONTEXT_OVERFLOW)], {}, ({}, "fresh", True, False)),
    ([Failed(PERMANENT, CONTEXT_OVERFLOW, cost_usd=0.5)], {"adjust": parse_adjust({CONTEXT_OVERFLOW: {"model": "big"}})},
     ({"model": "big"}, "fresh", False, False)),
    ([Failed(PERMANENT, CONTEXT_OVERFLOW)], {"model": "big", "adjust": parse_adjust({CONTEXT_OVERFLOW: {"model": "big"}})},
     ({}, "fresh", True, False)),  # already on it: trimmed instead
    # max turns: the same session, doubling up to the cap; from the turns it took when max_turns is unset
    ([Failed(PERMANENT, MAX_TURNS, turns=11)], {}, ({"max_turns": 20}, "continue", False, False)),
    ([Failed(PERMANENT, MAX_TURNS, turns=11)], {"max_turns": 150}, ({"max_turns": 200}, "continue", False, False)),
    ([Failed(PERMANENT, MAX_TURNS, turns=201)], {"max_turns": 200}, None),
    ([Failed(PERMANENT, MAX_TURNS, turns=7)], {"max_turns": None}, ({"max_turns": 14}, "continue", False, False)),
    ([Failed(PERMANENT, MAX_TURNS)], {"adjust": parse_adjust({MAX_TURNS: False})}, None),
    # a tool failing the same way again and again: a fresh session told the history
    ([Failed(PERMANENT, TOOL_LOOP)], {}, ({}, "fresh", False, True)),
    # the same check failure twice: history, then a step up the escalate ladder
    ([check(FAILED_CHECK), check(FAILED_CHECK.replace("0.31", "0.29"))], {}, ({}, "fresh", False, True)),
    ([check(FAILED_CHECK), check(FAILED_CHECK)], {"escalate": ("opus", "opus-max")},
     ({"model": "opus"}, "fresh", False, True)),
    ([check(FAILED_CHECK), check(FAILED_CHECK)], {"model": "opus", "escalate": ("opus", "opus-max")},
     ({"model": "opus-max"}, "fresh", False, True)),
    ([check(FAILED_CHECK), check(FAILED_CHECK)], {"model": "opus-max", "escalate": ("opus", "opus-max")},
     ({}, "fresh", False, True)),
    ([check(FAILED_CHECK), check(FAILED_CHECK)], {"agent": "command", "model": None, "escalate": ("opus",)},
     ({}, "fresh", False, True)),  # a command takes no model
    ([check(FAILED_CHECK), check(FAILED_CHECK)], {"escalate": ("opus",),
                                                  "adjust": parse_adjust({SAME_CHECK: {"escalate": False}})},
     ({}, "fresh", False, True)),
    ([check(FAILED_CHECK), check("tests/test_a.py::test_two FAILED")], {}, None),  # another failure
    ([check(FAILED_CHECK)], {}, None),  # the first
    # a hang: a longer timeout when it was making progress; a silent one as before
    ([Failed(TRANSIENT, HANG, quiet_s=1.0)], {}, ({"timeout": 120.0}, "", False, False)),
    ([Failed(TRANSIENT, HANG, quiet_s=1.0)], {"timeout": 5000.0}, ({"timeout": 7200.0}, "", False, False)),
    ([Failed(TRANSIENT, HANG, quiet_s=45.0)], {"timeout": 600.0}, None),
    ([Failed(TRANSIENT, HANG, quiet_s=25.0)], {"timeout": 600.0}, ({"timeout": 1200.0}, "", False, False)),
    ([Failed(TRANSIENT, HANG, quiet_s=2.5)], {"timeout": 4.0}, None),  # within 30 s, but not half the timeout
    ([Failed(TRANSIENT, HANG)], {}, None),  # stopped while silent, or never said anything
    ([Failed(TRANSIENT, HANG, quiet_s=1.0)], {"timeout": None}, None),
    ([Failed(TRANSIENT)], {}, None),
])
def test_adjustment_by_cause(attempts, settings, expected):
    adjustment = adjust(attempts, {**BASE, **settings})
    if expected is None:
        assert adjustment is None
    else:
        assert (adjustment.changes, adjustment.session, adjustment.trim, adjustment.history) == expected


def test_what_an_adjustment_costs_more_is_estimated():
    more_turns = adjust([Failed(PERMANENT, MAX_TURNS, cost_usd=0.3)], BASE)
    assert more_turns.extra_usd == pytest.approx(0.3)  # twice the turns: as much again
    stronger = adjust([check(FAILED_CHECK), Failed(CHECK, check=FAILED_CHECK, cost_usd=0.2)],
                      {**BASE, "escalate": ("a-model-nobody-prices",)})
    assert stronger.extra_usd == 0.2  # no price known: what the last attempt cost
    tokens = {"input": 1000, "output": 100, "cache_read": 0, "cache_write": 0}
    priced = adjust([check(FAILED_CHECK), Failed(CHECK, check=FAILED_CHECK, cost_usd=0.2, tokens=tokens)],
                    {**BASE, "escalate": ("claude-opus-4-1",)})
    assert priced.extra_usd == pytest.approx(1000 * 15e-6 + 100 * 75e-6)  # its tokens at opus's list price
    assert adjust([Failed(PERMANENT, TOOL_LOOP, cost_usd=1.0)], BASE).extra_usd is None


@pytest.mark.parametrize("limit, spent, extra, holds", [
    (None, 5.0, 100.0, True), (10.0, 5.0, 5.0, True), (10.0, 5.0, 5.01, False), (10.0, 10.0, None, False),
    (10.0, 9.0, None, True), (None, 50.0, None, True), (10.0, 10.0, 0.0, True), (10.0, 10.0, 0.01, False),
])
def test_the_budget_holds_an_adjustment_only_if_what_is_left_covers_it(limit, spent, extra, holds):
    assert budget_holds(Budget(limit, spent), extra) is holds


def test_what_running_attempts_reserved_is_not_left_for_an_adjustment():
    budget = Budget(10.0, 5.0)
    assert budget.reserve("g:other", 3.0)
    assert budget_holds(budget, 2.0) and not budget_holds(budget, 2.01)
    budget.release("g:other")
    assert budget_holds(budget, 5.0)


def test_an_adjusted_permanent_failure_is_retried_against_retries():
    assert not decide(PERMANENT, None, Counts(), BASE, 0.0).retry
    assert decide(PERMANENT, None, Counts(), BASE, 0.0, adjusted=True).retry
    assert not decide(PERMANENT, None, Counts(transient=2), BASE, 0.0, adjusted=True).retry


@pytest.mark.parametrize("output, signature", [
    ("ok\nok\nFAILED a::b - assert 1 == 2\n1 failed in 0.12s", ("1 failed", "FAILED a::b - assert 1 == 2")),
    ("src/x.py:3:1: E302 expected 2 blank lines\nsrc/x.py:9: error: bad", ("src/x.py:9: error: bad",)),
    ("lint\nno newline at end of src/y.py", ("no newline at end of src/y.py",)),
    ("", ()),
])
def test_a_check_failure_comes_down_to_its_failing_lines(output, signature):
    assert check_signature(output) == signature


def test_a_cause_said_by_the_agent_wins():
    assert cause_of([check(FAILED_CHECK), Failed(CHECK, MAX_TURNS, check=FAILED_CHECK)]) == MAX_TURNS
    assert cause_of([check(FAILED_CHECK), check(FAILED_CHECK)]) == SAME_CHECK


@pytest.mark.parametrize("value, message", [
    ("max_turns", "must map causes"),
    ({"max_turn": {}}, "unknown cause 'max_turn'"),
    ({"max_turns": {"factr": 2}}, "unknown option 'factr'"),
    ({"max_turns": {"factor": 1}}, "max_turns.factor must be a number above 1"),
    ({"hang": {"cap": "soon"}}, "hang.cap must be a duration"),
    ({"same_check": "yes"}, "same_check: must be false or a mapping"),
])
def test_a_wrong_adjust_setting_says_what_is_wrong(value, message):
    with pytest.raises(SettingError, match=message):
        parse_adjust(value)


def test_an_adjustment_says_what_changed():
    made = Adjustment(MAX_TURNS, {"max_turns": 20}, {"max_turns": 10}, "continue")
    assert made.text() == "adjusted for max turns: max_turns 10 -> 20, the same session"
    assert made.record()["changes"] == {"max_turns": 20}


def test_a_tool_loop_is_the_same_call_failing_the_same_way_in_a_row():
    from batch_tasks.agents.base import ToolLoop
    from batch_tasks.events import AgentEvent

    def run(results):
        loop = ToolLoop(3)
        for call, error in results:
            loop.see(AgentEvent("tool_use", call))
            loop.see(AgentEvent("tool_result", error, {"is_error": bool(error)}))
        return loop.seen

    fails = ("Bash: pytest -q", "Exit code 1")
    assert run([fails] * 3)
    assert not run([fails] * 2)
    assert not run([fails, fails, ("Bash: pytest -q", ""), fails])  # a success between
    assert not run([fails, fails, ("Bash: pytest -x", "Exit code 1")])  # another call
    assert not run([fails, fails, ("Bash: pytest -q", "Exit code 2")])  # another error


# What each CLI prints when it ends so (recorded from the real CLIs against the fakes), and the cause read.
CLAUDE_OVERFLOW = ('{"type":"result","subtype":"success","is_error":true,"terminal_reason":"prompt_too_long",'
                   '"api_error_status":400,"num_turns":1,"session_id":"s","result":"Prompt is too long · the request '
                   'is ~208310 tokens (limit 200000) but this conversation is only ~2497 tokens"}')
CODEX_OVERFLOW = ('{"type":"turn.failed","error":{"message":"Codex ran out of room in the model\'s context window. '
                  'Start a new thread or clear earlier history before retrying."}}')
GEMINI_OVERFLOW = ('{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: {\\"error\\":'
                   '{\\"code\\":400,\\"message\\":\\"The input token count (1200293) exceeds the maximum number of '
                   'tokens allowed (1048576).\\",\\"status\\":\\"INVALID_ARGUMENT\\"}}]"},"stats":{}}')
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("agent, stream, exit_status, cause", [
    ("claude", [CLAUDE_OVERFLOW], 1, CONTEXT_OVERFLOW),
    ("claude", (FIXTURES / "claude" / "max_turns.jsonl").read_text().splitlines(), 1, MAX_TURNS),
    ("claude", (FIXTURES / "claude" / "auth_401.jsonl").read_text().splitlines(), 1, None),
    ("codex", [CODEX_OVERFLOW], 1, CONTEXT_OVERFLOW),
    ("codex", (FIXTURES / "codex" / "auth_401.jsonl").read_text().splitlines(), 1, None),
    ("gemini", [GEMINI_OVERFLOW], 1, CONTEXT_OVERFLOW),
    ("gemini", (FIXTURES / "gemini" / "max_turns.jsonl").read_text().splitlines(), 1, None),  # no flag to raise it
    ("command", ["batch-tasks: cause context_overflow"], 1, CONTEXT_OVERFLOW),
    ("command", ["batch-tasks: cause tool_loop"], 1, TOOL_LOOP),
    ("command", ["batch-tasks: cause boredom"], 1, None),
    ("command", ["batch-tasks: cause tool_loop"], 0, None),  # it succeeded after all
])
def test_each_agent_reads_the_cause_from_its_own_output(agent, stream, exit_status, cause):
    reader = AGENTS[agent].reader({"model": None, "item_budget_usd": None})
    for line in stream:
        reader.feed(line)
    assert reader.outcome(exit_status).cause == cause
