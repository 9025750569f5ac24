"""The live view: what a run looks like to the person watching it.

In a terminal, a rich panel stays at the bottom (progress, then one line per
running item with its latest activity) while finished items scroll above it.
Anywhere else (CI, a pipe, nohup), plain timestamped lines, one per state
change, and never a control character. The same panel, drawn from the state
folders, is what `doit batch-status` shows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .board import DONE, FAILED, RUNNING, Board, ItemView

TOP_EXPENSIVE = 5
ACTIVITY_WIDTH = 48  # the rest of an activity line is in the item's log
PIPE_WIDTH = 200


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, whole_seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{whole_seconds:02d}s" if minutes else f"{whole_seconds}s"


def money(amount: float | None) -> str:
    return "" if amount is None else f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"


def tokens(counts: dict[str, int] | None) -> str:
    if not counts:
        return ""
    fresh = (counts.get("input") or 0) + (counts.get("output") or 0)
    cached = (counts.get("cache_read") or 0) + (counts.get("cache_write") or 0)
    return f"{fresh:,} tok" + (f" (+{cached:,} cached)" if cached else "")


def progress_line(totals: dict[str, Any]) -> str:
    parts = [f"{totals['done']}/{totals['total']} done"]
    if totals["failed"]:
        parts.append(f"{totals['failed']} failed")
    parts.append(f"{totals['running']} running")
    parts.append(f"{duration(totals['elapsed'])} elapsed")
    if totals["eta"] is not None:
        parts.append(f"ETA {duration(totals['eta'])}")
    if totals["cost_usd"]:
        parts.append(money(totals["cost_usd"]))
    return " · ".join(parts)


def finished_line(view: ItemView) -> str:
    cost = money(view.cost_usd)
    if view.state == DONE:
        return f"✓ {view.key} {duration(view.duration)}" + (f" {cost}" if cost else "")
    log = f" (log: {view.log})" if view.log and "log:" not in view.reason else ""
    return f"✗ {view.key} {duration(view.duration)}" + (f" {cost}" if cost else "") + f": {view.reason}{log}"


def console_for(stream) -> Console:
    """A console on `stream`; output that is no terminal has no width to keep to."""
    is_terminal = getattr(stream, "isatty", lambda: False)()
    return Console(file=stream, width=None if is_terminal else PIPE_WIDTH)


def panel(board: Board) -> Group:
    views = board.snapshot()
    totals = board.totals(views)
    running = sorted((v for v in views if v.state == RUNNING), key=lambda v: v.started or 0)
    table = Table.grid(padding=(0, 2))
    # An item's name is never cut; in a narrow terminal the other columns give way.
    table.add_column("item", no_wrap=True, min_width=max((len(v.key) for v in running), default=0))
    for column in ("attempt", "time", "activity", "tokens", "cost"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for view in running:
        activity = view.activity if len(view.activity) <= ACTIVITY_WIDTH else view.activity[: ACTIVITY_WIDTH - 1] + "…"
        table.add_row(
            view.key, f"#{view.attempt}", duration(view.duration), activity, tokens(view.tokens), money(view.cost_usd)
        )
    return Group(Text(progress_line(totals), style="bold"), table)


def summary(board: Board, notes: list[str] = ()) -> list[str]:
    """The end of a run: totals, by group, the most expensive items, each failure."""
    views = board.snapshot()
    totals = board.totals(views)
    ran = [v for v in views if v.state in (DONE, FAILED)]
    lines = [
        f"{totals['done']} done, {totals['failed']} failed, {board.already_done} already done "
        f"in {duration(totals['elapsed'])}" + (f", {money(totals['cost_usd'])}" if totals["cost_usd"] else "")
    ]
    lines.extend(notes)
    if any(v.cost_usd for v in ran):
        by_group: dict[str, list[ItemView]] = defaultdict(list)
        for view in ran:
            by_group[view.group].append(view)
        lines.append("by group:")
        for group, members in by_group.items():
            cost = sum(v.cost_usd or 0 for v in members)
            lines.append(f"  {group}: {len(members)} items, {money(cost)}")
        lines.append("most expensive:")
        for view in sorted(ran, key=lambda v: -(v.cost_usd or 0))[:TOP_EXPENSIVE]:
            lines.append(f"  {view.key}: {money(view.cost_usd)} {tokens(view.tokens)}")
    for view in views:
        if view.state == FAILED:
            lines.append(f"  {finished_line(view)}")
    return lines


class PlainView:
    """One timestamped line per state change, for logs and pipes."""

    def __init__(self, stream):
        self.stream = stream

    def line(self, text: str) -> None:
        self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.stream.flush()

    def started(self, view: ItemView) -> None:
        self.line(f"▶ {view.key}" + (f" (attempt {view.attempt})" if view.attempt > 1 else ""))

    def finished(self, view: ItemView) -> None:
        self.line(finished_line(view))

    def close(self, lines: list[str]) -> None:
        self.stream.write("\n" + "\n".join(lines) + "\n")
        self.stream.flush()


class TerminalView:
    """A live panel at the bottom of the terminal; finished items scroll above it."""

    def __init__(self, stream, board: Board):
        self.console = console_for(stream)
        self.board = board
        self.live = Live(get_renderable=lambda: panel(self.board), console=self.console, refresh_per_second=4)
        self.live.start()

    def started(self, view: ItemView) -> None:
        pass  # the panel shows it at its next refresh

    def finished(self, view: ItemView) -> None:
        self.live.console.print(Text(finished_line(view), style="green" if view.state == DONE else "red"))

    def close(self, lines: list[str]) -> None:
        self.live.stop()
        self.console.print("\n".join(lines))
