"""The end of a run, as people read it: totals; what landed, with its evidence; what failed,
with its cause and where its work is kept; what was interrupted, not started or skipped, and
why; costs; then what to do next. Shown by `run-batch` and by `doit batch-status`, from a
Board; it only formats.
"""

from __future__ import annotations

from collections import defaultdict

from ..formats import duration, money, plural, tokens
from .board import (AWAITING_REVIEW, DONE, FAILED, INTERRUPTED, NOT_STARTED, RETRYING, RUNNING, SKIPPED, WAITING, Board,
                    ItemView)
from .live_view import finished_line, landing_line, tail_lines

TOP_EXPENSIVE = 5
NAMES_LISTED = 8


def summary(board: Board, notes: list[str] = (), rerun: str = "doit run-batch") -> list[str]:
    """The end of a run: totals; what failed, with its cause, under its own heading; what
    was interrupted, not started or skipped, and why; costs; then what to do next."""
    views = board.snapshot()
    totals = board.totals()
    by_state: dict[str, list[ItemView]] = defaultdict(list)
    for view in views:
        by_state[view.state].append(view)
    # Items still waiting once nothing is in flight never started: the run ended first
    # (with no run in progress, they are the batch's open items).
    never = [] if by_state[RUNNING] or by_state[RETRYING] or board.at_rest else by_state[WAITING]
    ended = {**totals, NOT_STARTED: totals[NOT_STARTED] + len(never)}
    counted = [f"{totals['done']} done", f"{totals['failed']} failed"]
    counted += [f"{ended[s]} {s}" for s in (INTERRUPTED, AWAITING_REVIEW, NOT_STARTED, SKIPPED) if ended[s]]
    tool_calls = sum(view.tool_calls for view in views)
    cost = (f", {plural(tool_calls, 'tool call')}" if tool_calls else "") + (f", {money(totals['cost_usd'])}" if totals["cost_usd"] else "")
    if board.at_rest:
        counted[0] = f"{totals['done']} of {totals['total']} done"
        lines = [", ".join(counted + ([f"{totals[WAITING]} open"] if totals[WAITING] else [])) + cost]
    else:
        lines = [f"{', '.join(counted)}, {board.already_done} already done in {duration(totals['elapsed'])}{cost}"]
    lines.extend(notes)
    lines += _adjusted([view for view in views if view.adjusted])
    lines += _landed([view for view in by_state[DONE] if view.landing.get("merge")], board.root)
    if any(view.landing.get("kept_attempts") or view.landing.get("kept") for view in views):
        lines.append("kept attempts: doit batch-clean removes those whose work is merged or on another branch")
    if by_state[FAILED]:
        lines.append("failed:")
        for view in by_state[FAILED]:
            lines += [f"  {finished_line(view, board.root)}", *_kept(view, board.root), *tail_lines(view, "      ")]
    if by_state[INTERRUPTED]:
        lines.append("interrupted (run again: they go on from the step they reached):")
        for view in by_state[INTERRUPTED]:
            lines += [f"  {finished_line(view, board.root)}", *_kept(view, board.root)]
    if by_state[AWAITING_REVIEW]:
        lines.append("awaiting review (approved, the next run lands it; rejected, its session is told why):")
        lines += [f"  {finished_line(view, board.root)}" for view in by_state[AWAITING_REVIEW]]
    for state, heading, views_of in ((NOT_STARTED, "not started", by_state[NOT_STARTED] + never), (SKIPPED, "skipped", by_state[SKIPPED])):
        by_why: dict[str, list[str]] = defaultdict(list)
        for view in views_of:
            by_why[view.reason or "the run ended first"].append(view.key)
        for why, keys in by_why.items():
            listed = ", ".join(keys[:NAMES_LISTED]) + (f" and {len(keys) - NAMES_LISTED} more" if len(keys) > NAMES_LISTED else "")
            lines.append(f"{heading}: {plural(len(keys), 'item')}, {why}: {listed}")
    lines += _costs([v for v in views if v.cost_usd])
    lines += _next(board, by_state, rerun)
    return lines


def _landed(views: list[ItemView], root: str) -> list[str]:
    """The evidence of the items whose work was merged: the first few, one line each."""
    if not views:
        return []
    queues = [view.landing["merge"].get("queue") for view in views]
    checks = sum(q["checks"] for q in queues if isinstance(q, dict) and isinstance(q.get("checks"), int))
    bisected = sum(1 for q in queues if isinstance(q, dict) and isinstance(q.get("bisected"), int) and q["bisected"])
    queue = (f"; merge queue: {plural(checks, 'merged-state check')} ({checks / len(views):.2f} per item)"
             + (f", {plural(bisected, 'item')} in a bisected batch" if bisected else "")) if checks else ""
    lines = [f"landed: {plural(len(views), 'item')} merged{queue}"]
    lines += [f"  {view.key}: {landing_line(view, root)}" for view in views[:NAMES_LISTED]]
    if len(views) > NAMES_LISTED:
        lines.append(f"  and {len(views) - NAMES_LISTED} more (each one's result.json holds its evidence)")
    return lines


def _adjusted(views: list[ItemView]) -> list[str]:
    """The attempts adjusted to their cause (see retry.py), and what they cost."""
    made = [(view.key, adjusted) for view in views for adjusted in view.adjusted]
    if not made:
        return []
    cost = money(sum(adjusted["cost_usd"] or 0 for _, adjusted in made))
    lines = [f"adjusted: {plural(len(made), 'attempt')}" + (f", {cost}" if cost else "")]
    lines += [f"  {key} attempt {adjusted['attempt']}: {adjusted['text']} {money(adjusted['cost_usd'])}".rstrip()
              for key, adjusted in made[:NAMES_LISTED]]
    if len(made) > NAMES_LISTED:
        lines.append(f"  and {len(made) - NAMES_LISTED} more (each item's records name them)")
    return lines


def _kept(view: ItemView, root: str) -> list[str]:
    kept = landing_line(view, root) if view.landing.get("kept") or view.landing.get("kept_attempts") else ""
    return [f"      {kept}"] if kept else []


def _costs(spent: list[ItemView]) -> list[str]:
    if not spent:
        return []
    by_group: dict[str, list[ItemView]] = defaultdict(list)
    for view in spent:
        by_group[view.group].append(view)
    lines = ["by group:"]
    lines += [f"  {group}: {plural(len(members), 'item')}, {money(sum(v.cost_usd for v in members))}" for group, members in by_group.items()]
    lines.append("most expensive:")
    for view in sorted(spent, key=lambda v: -v.cost_usd)[:TOP_EXPENSIVE]:
        lines.append(f"  {view.key} ({view.state}): {money(view.cost_usd)} {tokens(view.tokens)}".rstrip())
    return lines


def _next(board: Board, by_state: dict[str, list[ItemView]], rerun: str) -> list[str]:
    left = sum(len(by_state[s]) for s in by_state if s not in (DONE, SKIPPED))
    if not left:
        return []
    items_left = f"`{rerun}` reruns only the {plural(left, 'item')} left"
    failed = by_state[FAILED]
    budget_spent = any("budget" in view.reason for view in by_state[NOT_STARTED])
    if failed:
        more = f" and {len(failed) - 1} more (above)" if len(failed) > 1 else " (its cause is above)"
        lines = [f"next: fix {failed[0].key}{more}, then {items_left}"]
    elif budget_spent:
        lines = [f"next: raise budget_usd in task.md, then {items_left}"]
    elif by_state[AWAITING_REVIEW]:
        lines = [f"next: review {plural(len(by_state[AWAITING_REVIEW]), 'item')} (as above), then {items_left}"]
    else:
        lines = [f"next: {items_left}"]
    for view in failed:
        if view.agent == "claude" and view.session_id:
            lines.append(f"  claude --resume {view.session_id}   continues {view.key} by hand")
    return lines
