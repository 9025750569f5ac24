"""What a run's report shows, as plain data: built from the run's history (history.py),
the plan and the items' output logs. `doit batch-report --format json` writes it as it
is; the HTML report draws it. It reads the state folder and never writes there.

Everything in it that came from task.md or an agent (item texts, reasons, output) is
left as it was: escaping is the HTML's business, not the data's.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import Any

from ..errors import BatchError
from ..events import AGENT, CHECK, MERGING, SETUP, WAITING_TO_MERGE
from ..run import forecast, history
from ..state import item_log, tool_counts
from ..state.state import open_to_read

# What a bar of the timeline can stand for, and its colour (also the JSON's legend).
KINDS = {
    "done": ("done", "#2ca02c"),
    "failed-transient": ("failed: transient", "#ff7f0e"),
    "failed-wait": ("failed: usage limit", "#9467bd"),
    "failed-permanent": ("failed: permanent", "#d62728"),
    "failed-check": ("failed: its check", "#e377c2"),
    "failed-conflict": ("failed: merge conflict", "#8c564b"),
    "interrupted": ("interrupted", "#7f7f7f"),
    "waiting": ("waiting to retry", "#f2d16b"),
    "paused": ("paused for a usage limit", "#c5b0d5"),
    # The steps around an isolated or checked item's agent (its attempt's bar is the agent's own).
    f"step-{SETUP}": ("making its worktree", "#9edae5"),
    f"step-{CHECK}": ("its check", "#17becf"),
    f"step-{WAITING_TO_MERGE}": ("waiting to merge", "#dbdb8d"),
    f"step-{MERGING}": ("merging", "#bcbd22"),
}
WAITS = ("waiting", "paused", f"step-{WAITING_TO_MERGE}")  # bars of no work
TAIL_LINES = 30
TAIL_LINE_BYTES = 2000  # of one line of a failure's tail
TOP_EXPENSIVE = 10
TOP_TOOLS = 8


def choose_run(state_root, run_id: str | None) -> str:
    ids = history.run_ids(state_root)
    if run_id is None:
        if not ids:
            raise BatchError("no run recorded yet: run `doit run-batch` first")
        # The latest run that started an item: one that started none (the budget was spent,
        # it was stopped at once) has nothing to show.
        return next((past for past in reversed(ids) if _started_an_item(state_root, past)), ids[-1])
    if run_id not in ids:
        known = ", ".join(ids[-5:]) or "none"
        raise BatchError(f"no run {run_id!r} recorded (latest: {known}; `doit batch-status --runs` lists them)")
    return run_id


def _started_an_item(state_root, run_id: str) -> bool:
    try:
        return any(event["event"] == "attempt_started" for event in history.read_run(state_root, run_id))
    except OSError:
        return False


def build(batch, run_id: str) -> dict[str, Any]:
    events = history.read_run(batch.state.root, run_id)
    summary = history.run_summary(run_id, events)
    meta = next((e for e in events if e["event"] == "run_started"), {})
    run_end = summary["ended"] or summary["last_event"] or 0.0
    items = _items(batch, meta, events)
    segments = _segments(events, run_end, killed=summary["killed"])
    for segment in segments:
        items.setdefault(segment["item"], _blank_item(segment["item"]))
    _settle(items, events, segments)
    rows = list(items.values())
    tools_of_run: Counter[str] = Counter()
    for row in rows:
        counted = tool_counts.count(batch.state.item(row["group"], row["module"]).events, run_id)
        row["tool_calls"], row["tools"] = sum(counted.values()), dict(counted.most_common(TOP_TOOLS))
        tools_of_run.update(counted)
    return {
        "run": {
            **summary,
            "duration_s": round(run_end - summary["started"], 3) if summary["started"] else None,
            "command_line": meta.get("command_line", []),
            "versions": meta.get("versions", {}),
            "settings": meta.get("settings", {}),
            "title": meta.get("title", batch.plan.title),
            "taskfile": meta.get("taskfile", str(batch.plan.path)),
            "workers": meta.get("workers"),
            "totals": next((e.get("totals", {}) for e in events if e["event"] == "run_ended"), {}),
        },
        "kinds": {kind: {"label": label, "colour": colour} for kind, (label, colour) in KINDS.items()},
        "items": rows,
        "segments": segments,
        "pauses": [{"agent": e.get("agent"), "start": e["t"], "end": e.get("until")} for e in events if e["event"] == "paused"],
        "concurrency": _concurrency(segments),
        "groups": _groups(batch, rows),
        "top_tools": tools_of_run.most_common(TOP_TOOLS),
        "most_expensive": [
            row["key"]
            for row in sorted(rows, key=lambda r: (-(r["cost_usd"] or 0), -r["tokens_fresh"]))
            if row["cost_usd"] or row["tokens_fresh"]
        ][:TOP_EXPENSIVE],
        "failures": [_failure(batch, row, run_id) for row in rows if row["outcome"] in (history.FAILED, history.INTERRUPTED)],
        "claims": [claim for row in rows for claim in _claims(row)],
        "forecast": forecast.per_group(meta.get("forecast") or {}, ((r["key"], r["group"], r["cost_usd"]) for r in rows)),
        "graph": _graph(batch),
    }


def _blank_item(key: str, group: str | None = None, text: str = "", module: str | None = None) -> dict[str, Any]:
    group_part, _, module_part = key.partition(":")
    return {
        "key": key,
        "group": group or group_part,
        "module": module or module_part,
        "text": text,
        "outcome": "not run",
        "why": "",
        "attempts": [],
        "started": None,
        "finished": None,
        "duration_s": None,
        "busy_s": 0.0,
        "tokens": {},
        "tokens_fresh": 0,
        "tokens_cached": 0,
        "cost_usd": None,
    }


def _items(batch, meta, events) -> dict[str, dict[str, Any]]:
    """The run's items in task.md's order: those it meant to run and any it touched."""
    touched = set(meta.get("items", ())) | {e["item"] for e in events if "item" in e}
    return {
        item.key: _blank_item(item.key, item.group, item.text, item.module)
        for item in batch.plan.items()
        if item.key in touched
    }


def _outcome_kind(record: dict[str, Any]) -> str:
    if record.get("ok"):
        return "done"
    if record.get("failure_class") is None and record.get("reason") == "interrupted":
        return "interrupted"
    return f"failed-{record.get('failure_class') or 'permanent'}"


def _segments(events, run_end: float, killed: bool) -> list[dict[str, Any]]:
    """The timeline's bars: each attempt, and each wait between attempts."""
    segments: list[dict[str, Any]] = []
    open_attempts: dict[tuple[str, int], float] = {}
    open_waits: dict[str, dict[str, Any]] = {}
    open_steps: dict[str, dict[str, Any]] = {}  # an item's step before or after its agent, until the next
    last_class: dict[str, str | None] = {}
    for event in events:
        kind, key = event["event"], event.get("item")
        if kind in ("step", "attempt_ended", "item_finished") and key in open_steps:
            open_steps.pop(key)["end"] = event["t"]
        if kind == "step" and event.get("step") != AGENT and f"step-{event.get('step')}" in KINDS:
            open_steps[key] = {"item": key, "kind": f"step-{event['step']}", "attempt": event["attempt"],
                               "start": event["t"], "end": event["t"], "reason": event.get("text") or ""}
            segments.append(open_steps[key])
        elif kind == "attempt_started":
            open_attempts[(key, event["attempt"])] = event["started"]
            if key in open_waits:
                open_waits.pop(key)["end"] = event["started"]
        elif kind == "attempt_ended":
            open_attempts.pop((key, event["attempt"]), None)
            if not event.get("finished") or event["finished"] < event["started"]:
                continue  # stopped while waiting: no attempt ran
            last_class[key] = event.get("failure_class")
            segments.append({
                "item": key,
                "kind": _outcome_kind(event),
                "attempt": event["attempt"],
                "start": event["started"],
                "end": event["finished"],
                # An attempt adjusted to the last one's cause (retry.py) says how, before how it ended.
                "reason": "; ".join(filter(None, ((event.get("adjusted") or {}).get("text"), event.get("reason")))),
                "exit_status": event.get("exit_status"),
                "cost_usd": event.get("cost_usd"),
                "tokens": event.get("tokens") or {},
            })
        elif kind == "retry_scheduled":
            wait = {
                "item": key,
                "kind": "paused" if last_class.get(key) == "wait" else "waiting",
                "attempt": event["attempt"],
                "start": event["t"],
                "end": event.get("at") or event["t"],
                "reason": event.get("cause") or "",
            }
            open_waits[key] = wait
            segments.append(wait)
        elif kind == "item_finished" and key in open_waits:
            open_waits.pop(key)["end"] = event["t"]  # stopped while it waited
    for wait in open_waits.values():
        wait["end"] = min(wait["end"], run_end)
    for step in open_steps.values():
        step["end"] = max(step["start"], run_end)
    for (key, number), started in open_attempts.items():
        why = "the run was killed while it ran" if killed else "still running when the run ended"
        segments.append({"item": key, "kind": "interrupted", "attempt": number, "start": started,
                         "end": max(started, run_end), "reason": why, "exit_status": None,
                         "cost_usd": None, "tokens": {}})
    return segments


def _settle(items, events, segments) -> None:
    """Each item's outcome and totals, from its bars and its `item_finished`."""
    for event in events:
        if event["event"] == "item_finished" and event.get("item") in items:
            row = items[event["item"]]
            row["outcome"], row["why"] = event.get("outcome", row["outcome"]), event.get("why") or ""
        elif event["event"] == "attempt_ended" and event.get("item") in items:
            if event.get("finished") and event["finished"] >= event["started"]:
                items[event["item"]]["attempts"].append({k: v for k, v in event.items() if k not in ("event", "t", "item")})
    ran: dict[str, list[dict]] = defaultdict(list)
    for segment in segments:
        if segment["kind"] not in WAITS:
            ran[segment["item"]].append(segment)
    for key, bars in ran.items():
        row = items[key]
        row["started"] = min(bar["start"] for bar in bars)
        row["finished"] = max(bar["end"] for bar in bars)
        row["duration_s"] = round(row["finished"] - row["started"], 3)
        row["busy_s"] = round(sum(bar["end"] - bar["start"] for bar in bars), 3)
        if row["outcome"] == "not run":  # it ran, and the run ended under it without a word
            row["outcome"], row["why"] = history.INTERRUPTED, bars[-1]["reason"]
        costs = [a["cost_usd"] for a in row["attempts"] if a.get("cost_usd") is not None]
        row["cost_usd"] = round(sum(costs), 6) if costs else None
        for attempt in row["attempts"]:
            for name, count in (attempt.get("tokens") or {}).items():
                row["tokens"][name] = row["tokens"].get(name, 0) + (count or 0)
        row["tokens_fresh"] = row["tokens"].get("input", 0) + row["tokens"].get("output", 0)
        row["tokens_cached"] = row["tokens"].get("cache_read", 0) + row["tokens"].get("cache_write", 0)


def _concurrency(segments) -> list[list[float]]:
    """How many attempts ran at each moment: [time, count] at every change."""
    changes: dict[float, int] = defaultdict(int)
    for segment in segments:
        if segment["kind"] not in WAITS and not segment["kind"].startswith("step-"):
            changes[segment["start"]] += 1
            changes[segment["end"]] -= 1
    points, running = [], 0
    for moment in sorted(changes):
        running += changes[moment]
        points.append([moment, running])
    return points


def _groups(batch, rows) -> list[dict[str, Any]]:
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[row["group"]].append(row)
    titles = {group.slug: group.title for group in batch.plan.groups}
    result = []
    for slug, members in by_group.items():
        ran = [row for row in members if row["started"] is not None]
        costs = [row["cost_usd"] for row in members if row["cost_usd"] is not None]
        started = min((row["started"] for row in ran), default=None)
        finished = max((row["finished"] for row in ran), default=None)
        result.append({
            "group": slug,
            "title": titles.get(slug, slug),
            "items": len(members),
            "done": sum(1 for row in members if row["outcome"] == history.DONE),
            "failed": sum(1 for row in members if row["outcome"] == history.FAILED),
            "attempts": sum(len(row["attempts"]) for row in members),
            "started": started,
            "duration_s": round(finished - started, 3) if ran else None,
            "tokens_fresh": sum(row["tokens_fresh"] for row in members),
            "tokens_cached": sum(row["tokens_cached"] for row in members),
            "cost_usd": round(sum(costs), 6) if costs else None,
        })
    return result


def _failure(batch, row, run_id: str) -> dict[str, Any]:
    folder = batch.state.item(row["group"], row["module"])
    return {
        "item": row["key"],
        "outcome": row["outcome"],
        "why": row["why"],
        "causes": [
            {"attempt": a["attempt"], "failure_class": a.get("failure_class"), "reason": a.get("reason"),
             "exit_status": a.get("exit_status"), "text": _cause_text(a.get("reason") or "", a.get("exit_status"))}
            for a in row["attempts"]
            if not a.get("ok")
        ],
        "log": folder.log,
        "output_tail": _tail(folder.log, row["key"], run_id),
    }


def _claims(row) -> list[dict[str, Any]]:
    """Each landing attempt of an item: what its agent said beside what the gate found (its
    check's verdict, the protected paths its work touched)."""
    found = []
    for attempt in row["attempts"]:
        if "claim" not in attempt:
            continue
        check = attempt.get("check")
        found.append({"item": row["key"], "attempt": attempt["attempt"], "claim": attempt["claim"],
                      "check": "not run" if check is None else "passed" if check.get("passed") else "failed",
                      "touched": (attempt.get("protected") or {}).get("touched", []), "ok": attempt.get("ok")})
    return found


def _cause_text(reason: str, exit_status: int | None) -> str:
    """An attempt's cause, with its exit status unless the cause says it already."""
    if exit_status is None or f"exit status {exit_status}" in reason:
        return reason
    return f"{reason} (exit status {exit_status})"


def _tail(path: str, key: str, run_id: str) -> str:
    """The last lines an item printed in the run `run_id` (read without following a symlink):
    its output.log holds every run's attempts, each under its header (see item_log)."""
    lines: deque[bytes] = deque(maxlen=TAIL_LINES)
    inside = False
    try:
        with open_to_read(path) as stream:
            for line in stream:
                run = item_log.run_of_header(line.decode("utf-8", "replace").rstrip("\n"), key) \
                    if line.startswith(b"=== ") else None
                if run is not None:
                    if inside and run != run_id:
                        break  # a later run's attempt
                    inside = inside or run == run_id
                if inside:
                    lines.append(line[:TAIL_LINE_BYTES].rstrip(b"\n"))
    except OSError:
        return ""
    return "\n".join(line.decode("utf-8", "replace") for line in lines)


def _graph(batch) -> dict[str, Any]:
    """Groups in order with their items, and what waits for what: an edge from a group
    (`whole_group`) stands for all of its items, as in graph.py."""
    plan = batch.plan
    return {
        "groups": [
            {"group": g.slug, "title": g.title, "pipeline": bool(g.settings.get("pipeline")),
             "barrier": g.settings.get("after") == "all", "items": [i.key for i in g.items]}
            for g in plan.groups
        ],
        "edges": [
            {"from": name, "to": item.key, "whole_group": ":" not in name}
            for item in plan.items()
            for name in plan.task_dep(item)
        ],
    }
