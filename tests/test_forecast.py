"""The forecast on plain data: an item's own runs, else its group's median, else its agent
and model's median, else unknown; tokens at today's list price."""

from pathlib import Path

import pytest

from batch_tasks.plan.taskfile import parse
from batch_tasks.run.forecast import AGENT, GROUP, OWN, UNKNOWN, Past, against_actual, forecast, past_runs, total

PLAN = """---
agent: claude
model: claude-sonnet-4-5-20250929
---
# T
## One
- [ ] a: x
- [ ] b: x
- [ ] c: x
## Two
- [ ] d: x
## Three
<!-- model: claude-haiku-4-5-20251001 -->
- [ ] e: x
"""


def plan():
    return parse(PLAN, Path("/nowhere/task.md"))


def test_each_item_from_its_own_runs_else_its_group_else_its_agent_and_model_else_unknown():
    history = {"one:a": [Past(0.10, 5.0), Past(0.30, 9.0)], "one:b": [Past(0.50, 20.0)]}
    found = forecast(plan(), history, ["one:a", "one:c", "two:d", "three:e"])
    assert (found["one:a"].usd, found["one:a"].low, found["one:a"].high, found["one:a"].source) == (0.30, 0.10, 0.30, OWN)
    assert (found["one:c"].usd, found["one:c"].low, found["one:c"].high, found["one:c"].source) == (0.40, 0.10, 0.50, GROUP)
    assert found["one:c"].seconds == pytest.approx(14.5)
    assert (found["two:d"].usd, found["two:d"].source) == (0.40, AGENT)  # same agent and model
    assert (found["three:e"].usd, found["three:e"].source) == (None, UNKNOWN)  # another model: never a guess
    assert total(found) == "forecast: $1.10 ($0.30–$1.30) for 3 items, 38s of agent time; 1 more of unknown cost"


def test_tokens_are_priced_at_todays_list_price_and_the_last_run_counts():
    def attempt(item, cost, tokens):
        return {"event": "attempt_ended", "item": item, "cost_usd": cost, "tokens": tokens}

    old_run = [attempt("one:a", 9.99, {"input": 130_000, "output": 40}),
               {"event": "item_finished", "item": "one:a", "duration_s": 3.0, "model": "claude-sonnet-4-5-20250929"}]
    new_run = [attempt("one:a", 0.05, None), attempt("one:a", 0.07, None),  # no tokens: the recorded cost
               attempt("one:b", None, None)]  # a cost unknown is not zero
    found = past_runs([old_run, new_run], {"one:a": "claude", "one:b": "claude"})
    assert found["one:a"] == [Past(0.3906, 3.0), Past(0.12, None)]
    assert found["one:b"] == [Past(None, None)]
    assert forecast(plan(), found, ["one:b"])["one:b"].source == GROUP


def test_the_summary_says_each_groups_forecast_against_its_cost_and_what_the_cache_saved():
    from types import SimpleNamespace as View

    sonnet = "claude-sonnet-4-5-20250929"
    views = [View(key="one:a", group="one", agent="claude", model=sonnet, cost_usd=0.30,
                  tokens={"input": 0, "output": 0, "cache_write": 1_000_000, "cache_read": 0}),
             View(key="one:b", group="one", agent="claude", model=sonnet, cost_usd=0.20,
                  tokens={"input": 0, "output": 0, "cache_write": 0, "cache_read": 1_000_000}),
             View(key="two:d", group="two", agent="command", model="", cost_usd=None, tokens={})]
    # At $3 a million input tokens: a write costs $0.75 more, a read $2.70 less.
    assert against_actual({"one:a": 0.25, "one:b": None}, views) == [
        "forecast against actual, by group:",
        "  one: forecast $0.25, spent $0.50 (2 items; 1 of unknown cost)",
        "prompt cache: 1,000,000 tokens read, 1,000,000 written; saved $1.95 against none",
    ]
    assert against_actual({}, views[2:]) == []
