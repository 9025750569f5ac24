"""What the items about to run should cost and take, before they run: from the run history
(see history), never a guess.

Each item's forecast comes from the first of these that is known:

1. its own past runs: what its attempts of the last run that ran it cost (their tokens at
   today's list price for the model that answered, else the cost recorded), the range the
   cheapest and dearest of its runs;
2. its group's median of those, the range the group's cheapest and dearest;
3. the median of items of the same agent and model, the range theirs;
4. else unknown, and said so.

Reads the history only; decides nothing (the dispatcher reserves a forecast's high end).
The summary shows each group's forecast against what it cost, and the prompt cache's saving.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..agents.pricing import cache_saving, estimated_cost
from ..plan.plan import Plan
from ..state.budget import dollars

PROVIDERS = {"claude": "anthropic", "codex": "openai", "gemini": "google"}
OWN, GROUP, AGENT, UNKNOWN = "its last run", "its group's median", "median of its agent and model", "unknown"


@dataclass(frozen=True)
class Estimate:
    usd: float | None  # None: unknown
    low: float | None
    high: float | None
    seconds: float | None
    source: str  # which of the four it came from


@dataclass(frozen=True)
class Past:
    """One item's cost and duration in one past run."""

    usd: float | None
    seconds: float | None


def past_runs(events_by_run: Iterable[list[dict[str, Any]]], agents: Mapping[str, str]) -> dict[str, list[Past]]:
    """Each item's runs, oldest first, from the history's events; `agents`: item → agent,
    to price its tokens."""
    found: dict[str, list[Past]] = {}
    for events in events_by_run:
        attempts: dict[str, list[dict]] = {}
        seconds: dict[str, float | None] = {}
        models: dict[str, str | None] = {}
        for event in events:
            item = event.get("item")
            if event["event"] == "attempt_ended" and item:
                attempts.setdefault(item, []).append(event)
            elif event["event"] == "item_finished" and item:
                seconds[item] = event.get("duration_s")
                models[item] = event.get("model")
        for item, tried in attempts.items():
            costs = [_priced(a, agents.get(item), models.get(item) or a.get("model")) for a in tried]
            usd = round(sum(costs), 6) if all(c is not None for c in costs) else None
            found.setdefault(item, []).append(Past(usd, seconds.get(item)))
    return found


def _priced(attempt: dict, agent: str | None, model: str | None) -> float | None:
    """The attempt's tokens at today's list price, else the cost it recorded."""
    provider = PROVIDERS.get(agent or "")
    today = estimated_cost(provider, model, attempt.get("tokens")) if provider else None
    return today if today is not None else attempt.get("cost_usd")


def forecast(plan: Plan, history: Mapping[str, list[Past]], keys: Iterable[str]) -> dict[str, Estimate]:
    """The forecast of each of `keys`, on plain data."""
    own: dict[str, Estimate] = {}
    for item in plan.items():
        known = [p for p in history.get(item.key, ()) if p.usd is not None]
        if known:
            costs = [p.usd for p in known]
            own[item.key] = Estimate(known[-1].usd, min(costs), max(costs), known[-1].seconds, OWN)
    by_group: dict[str, list[Estimate]] = {}
    by_agent: dict[tuple, list[Estimate]] = {}
    for group in plan.groups:
        for item in group.items:
            if item.key in own:
                by_group.setdefault(group.slug, []).append(own[item.key])
                by_agent.setdefault(_agent_model(group.settings), []).append(own[item.key])
    wanted = set(keys)
    result: dict[str, Estimate] = {}
    for group in plan.groups:
        for item in group.items:
            if item.key not in wanted:
                continue
            result[item.key] = (own.get(item.key) or _median(by_group.get(group.slug), GROUP)
                                or _median(by_agent.get(_agent_model(group.settings)), AGENT)
                                or Estimate(None, None, None, None, UNKNOWN))
    return result


def _agent_model(settings: Mapping[str, Any]) -> tuple:
    return settings["agent"], settings.get("model")


def _median(estimates: list[Estimate] | None, source: str) -> Estimate | None:
    if not estimates:
        return None
    times = [e.seconds for e in estimates if e.seconds is not None]
    return Estimate(statistics.median(e.usd for e in estimates), min(e.low for e in estimates),
                    max(e.high for e in estimates), statistics.median(times) if times else None, source)


def of_batch(batch, keys: Iterable[str]) -> dict[str, Estimate]:
    """The forecast of those of `keys` whose agent has a cost (not `command`), from the
    batch's own run history."""
    agents = {item.key: group.settings["agent"] for group in batch.plan.groups for item in group.items}
    priced = [key for key in keys if agents[key] in PROVIDERS]
    if not priced:
        return {}
    from .history import read_run, run_ids  # a batch of commands has no cost to forecast: no history read

    history = past_runs((read_run(batch.state.root, run) for run in run_ids(batch.state.root)), agents)
    return forecast(batch.plan, history, priced)


def of_last_run(state_root) -> dict[str, float | None]:
    """The forecast the last run started with (its `run_started` records it)."""
    from .history import read_run, run_ids

    ids = run_ids(state_root)
    started = next((e for e in read_run(state_root, ids[-1]) if e["event"] == "run_started"), {}) if ids else {}
    return started.get("forecast") or {}


def line(estimate: Estimate) -> str:
    """One item's forecast, as `--dry-run` prints it."""
    if estimate.usd is None:
        return "unknown (no run of it, of its group, or of its agent and model yet)"
    took = f", {estimate.seconds:.0f}s" if estimate.seconds is not None else ""
    return f"about {dollars(estimate.usd)}{took} ({estimate.source}; {dollars(estimate.low)}–{dollars(estimate.high)})"


def total(estimates: Mapping[str, Estimate]) -> str:
    """The whole forecast: its total and range, and how many items are unknown."""
    known = [e for e in estimates.values() if e.usd is not None]
    unknown = len(estimates) - len(known)
    if not known:
        return f"forecast: cost unknown for all {len(estimates)} items" if estimates else ""
    usd, low, high = (sum(getattr(e, part) for e in known) for part in ("usd", "low", "high"))
    times = [e.seconds for e in known if e.seconds is not None]
    took = f", {sum(times):.0f}s of agent time" if times else ""
    more = f"; {unknown} more of unknown cost" if unknown else ""
    return f"forecast: {dollars(usd)} ({dollars(low)}–{dollars(high)}) for {len(known)} items{took}{more}"


def against_actual(forecast_usd: Mapping[str, float | None], views: Iterable[Any]) -> list[str]:
    """For the summary: each group's forecast against what its items cost, and what the
    prompt cache saved. `views`: the board's items (key, group, agent, model, tokens, cost_usd)."""
    views = list(views)
    groups = per_group(forecast_usd, ((v.key, v.group, v.cost_usd) for v in views))
    lines = ["forecast against actual, by group:"] if groups else []
    for row in groups:
        said = dollars(row["forecast_usd"]) if row["forecast_usd"] is not None else "unknown"
        more = f"; {row['unknown']} of unknown cost" if row["forecast_usd"] is not None and row["unknown"] else ""
        lines.append(f"  {row['group']}: forecast {said}, spent {dollars(row['spent_usd'])} ({row['items']} items{more})")
    lines += cache_line(views)
    return lines


def per_group(forecast_usd: Mapping[str, float | None], items: Iterable[tuple[str, str, float | None]]) -> list[dict]:
    """Each group's forecast (None: unknown for all its items) beside what its items cost, of the
    items (key, group, cost) that were forecast; for the summary and the report."""
    by_group: dict[str, list] = {}
    for key, group, cost in items:
        if key in forecast_usd:
            by_group.setdefault(group, []).append((forecast_usd[key], cost))
    rows = []
    for group, members in by_group.items():
        known = [usd for usd, _ in members if usd is not None]
        rows.append({"group": group, "forecast_usd": sum(known) if known else None, "items": len(members),
                     "unknown": len(members) - len(known), "spent_usd": sum(cost or 0.0 for _, cost in members)})
    return rows


def cache_line(views: Iterable[Any]) -> list[str]:
    """The prompt cache over the run: tokens read and written, and what it saved."""
    reads = writes = 0
    saved = 0.0
    for view in views:
        tokens = view.tokens or {}
        reads, writes = reads + (tokens.get("cache_read") or 0), writes + (tokens.get("cache_write") or 0)
        saving = cache_saving(PROVIDERS.get(view.agent, ""), view.model or None, tokens) if view.agent in PROVIDERS else None
        saved += saving or 0.0
    if not (reads or writes):
        return []
    return [f"prompt cache: {reads:,} tokens read, {writes:,} written; saved {dollars(saved)} against none"]
