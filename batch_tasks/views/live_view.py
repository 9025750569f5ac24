"""The live view: what a run looks like to the person watching it.

In a terminal, a rich panel stays at the bottom (progress, agents paused for a usage
limit, then one line per item in flight with its step, when it lands its work, and its
latest activity) while finished items, with a failure's cause and last output lines,
scroll above it. Anywhere else (CI, a pipe, nohup), plain timestamped lines with a
`[7/12]` counter, one per state change (and per step that takes long or waits) and a
heartbeat for an item silent a long time, never a control character.
The same panel, drawn from the state folders, is what `doit batch-status` shows.
Both views watch a Board (Board.watch); the runner calls tick(now) about once a second.
It writes only to the stream it is given.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..events import CHECK, MERGING, WAITING_TO_MERGE
from ..formats import clock, duration, money, plural, printable, relative, tokens
from .board import AWAITING_REVIEW, DONE, FAILED, INTERRUPTED, NOT_STARTED, RETRYING, SKIPPED, Board, ItemView

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

PIPE_WIDTH = 200
HEARTBEAT_SECONDS = 120.0  # of silence in the plain lines before an item gets one
GAP = "  "
MIN_ACTIVITY = 16
MIN_NAME = 24  # an item's name in the panel is cut only beyond this, and beyond 2/5 of the width
# The panel's columns, and the order in which they give way to a narrow terminal.
GIVE_WAY = ("tools", "cost", "tokens", "worker", "attempt", "time", "step")  # a step explains its activity: it goes last


def progress_line(totals: dict[str, Any], groups_now: list[str] = ()) -> str:
    parts = [f"{totals['done']}/{totals['total']} done"]
    for state in (FAILED, INTERRUPTED, AWAITING_REVIEW, NOT_STARTED):
        if totals[state]:
            parts.append(f"{totals[state]} {state}")
    parts.append(f"{totals['running']} running" + (f" in {', '.join(groups_now)}" if groups_now else ""))
    if totals[RETRYING]:
        parts.append(f"{totals[RETRYING]} waiting to retry")
    if totals["elapsed"] is not None:
        parts.append(f"{duration(totals['elapsed'])} elapsed")
    if totals["eta"] is not None:
        parts.append(f"ETA {duration(totals['eta'])}")
    if totals["cost_usd"]:
        parts.append(money(totals["cost_usd"]))
    return " · ".join(parts)


def finished_line(view: ItemView, root: str = ".") -> str:
    """How an item ended, in one line; a failure with its cause and log."""
    spent = " ".join(part for part in (duration(view.duration), money(view.cost_usd)) if view.started and part)
    if view.tool_calls:
        spent = " · ".join(part for part in (spent, plural(view.tool_calls, "tool call")) if part)
    if view.state == DONE:
        landed = landing_line(view, root)
        return f"✓ {view.key} {spent}".rstrip() + (f" · {landed}" if landed else "")
    if view.state == INTERRUPTED:
        return f"■ {view.key} interrupted" + (f" after {spent}" if spent else "")
    if view.state == AWAITING_REVIEW:
        return f"⏸ {view.key} awaiting review" + (f" after {spent}" if spent else "") + f"; {view.reason}"
    if view.state == NOT_STARTED:
        return f"· {view.key} not started: {view.reason}"
    if view.state == SKIPPED:
        return f"- {view.key} skipped: {view.reason}"
    log = f" (log: {relative(view.log, root)})" if view.log else ""
    return f"✗ {view.key} {spent}".rstrip() + f": {printable(view.reason) or 'failed'}{log}"


def landing_line(view: ItemView, root: str = ".") -> str:
    """An isolated item's evidence, in one line: its merge commit, what it changed, its check; or
    where the work of a failed or interrupted one is kept. Records are untrusted: shapes checked."""
    merge, check, kept, review = (view.landing.get(name) or {} for name in ("merge", "check", "kept", "review"))
    parts = []
    if isinstance(merge.get("merge_commit"), str):
        landed = f"merged {merge['merge_commit'][:12]}"
        if isinstance(merge.get("files"), list):
            files = [change for change in merge["files"] if isinstance(change, dict)]
            added, removed = (sum(c[n] for c in files if isinstance(c.get(n), int)) for n in ("added", "removed"))
            landed += f", {plural(len(files), 'file')} +{added} −{removed}"
        parts.append(landed)
    if check.get("passed") is True and isinstance(check.get("duration_s"), (int, float)):
        parts.append(f"check passed in {duration(check['duration_s'])}")
    if review.get("verdict") == "approve":
        cost = money(review["cost_usd"]) if isinstance(review.get("cost_usd"), (int, float)) else ""
        parts.append(f"approved by {review.get('by') or 'a person'}" + (f" (review {cost})" if cost else ""))
    parts += queue_parts(merge.get("queue"), view.key)
    if isinstance(kept.get("branch"), str) and isinstance(kept.get("worktree"), str):
        wip = " with a WIP commit" if kept.get("wip") else ""
        parts.append(f"kept on {kept['branch']}{wip} in {relative(kept['worktree'], root)}")
    earlier = [kept["branch"] for kept in view.landing.get("kept_attempts") or () if isinstance(kept.get("branch"), str)]
    if earlier:
        parts.append(f"earlier attempts kept on {', '.join(earlier)}")
    return printable(", ".join(parts))


def queue_parts(queue, key: str) -> list[str]:
    """What the merge queue did for an item: its merged-state checks, with whom, its bisections."""
    if not isinstance(queue, dict) or not isinstance(queue.get("checks"), int) or not queue["checks"]:
        return []
    together = queue.get("checked_with") if isinstance(queue.get("checked_with"), list) else []
    others = sorted({other for keys in together if isinstance(keys, list) for other in keys
                     if isinstance(other, str)} - {key})
    parts = [plural(queue["checks"], "merged-state check") + (f" with {', '.join(others)}" if others else "")]
    if isinstance(queue.get("bisected"), int) and queue["bisected"]:
        parts.append(f"bisected {plural(queue['bisected'], 'time')}")
    return parts


def tail_lines(view: ItemView, indent: str = "    ") -> list[str]:
    return [indent + printable(line) for line in view.output_tail] if view.state == FAILED else []


def retry_line(view: ItemView, now: float | None = None) -> str:
    wait = max(0.0, (view.retry_at or 0) - (now or time.time()))
    return (
        f"↻ {view.key} attempt {view.attempt} failed: {printable(view.reason)}; "
        f"attempt {view.attempt + 1} at {clock(view.retry_at or 0)} (in {duration(wait)})"
    )


def pause_line(agent: str, until: float, now: float | None = None) -> str:
    wait = max(0.0, until - (now or time.time()))
    return f"⏸ {agent} paused for a usage limit until {clock(until)} (in {duration(wait)})"


def heartbeat_line(view: ItemView, now: float) -> str:
    quiet = f", last activity {duration(now - view.last_activity)} ago" if view.last_activity else ""
    step = f" ({view.step})" if view.step else ""
    where = f" on {printable(view.worker)}" if view.worker else ""
    return (f"… {view.key} running {duration(now - (view.started or now))}{step}{where}{quiet}: "
            f"{printable(view.activity)}")


def step_line(view: ItemView) -> str:
    return f"· {view.key} {view.step}" + (f": {printable(view.activity)}" if view.activity else "")


def console_for(stream) -> Console:
    """A console on `stream`, no highlighter colouring numbers piecemeal; output that
    is no terminal has no width to keep to."""
    from rich.console import Console

    is_terminal = getattr(stream, "isatty", lambda: False)()
    return Console(file=stream, width=None if is_terminal else PIPE_WIDTH, highlight=False)


class Panel:
    """The live panel, laid out for the console's width and height at each refresh."""

    def __init__(self, board: Board):
        self.board = board

    def __rich_console__(self, console, options):
        now = time.time()
        flying = self.board.flying()
        groups_now = list(dict.fromkeys(view.group for view in flying))
        yield _text(progress_line(self.board.totals(now), groups_now), style="bold", no_wrap=True, overflow="ellipsis")
        pauses = self.board.pauses_now(now)
        for agent, until in pauses.items():
            yield _text(pause_line(agent, until, now), style="yellow", no_wrap=True, overflow="ellipsis")
        room = max(1, (options.height or console.height) - 2 - len(pauses))
        shown = flying if len(flying) <= room else flying[: room - 1]
        for text, style in _rows(shown, options.max_width, now):
            yield _text(text, style=style, no_wrap=True, overflow="ellipsis")
        if len(shown) < len(flying):
            yield _text(f"+{len(flying) - len(shown)} more running", style="dim")


def _text(*args, **options) -> Text:
    """rich's Text. rich is imported where something is drawn: a dry run, a no-op or a listing
    whose output is no terminal draws nothing, and importing rich costs it 40-60 ms of CPU."""
    from rich.text import Text

    return Text(*args, **options)


def panel(board: Board) -> Panel:
    return Panel(board)


def print_lines(console: Console, lines: list[str]) -> None:
    """Lines as they are: no markup, and no `:name:` emoji code, read into what an agent printed."""
    console.print("\n".join(lines), markup=False, emoji=False)


def _rows(views: list[ItemView], width: int, now: float) -> list[tuple[str, str]]:
    """One line per item in flight: an item's name is cut only in its middle, and only when long; the other columns give
    way in the order of GIVE_WAY; the activity takes what is left of the width."""
    cells = []
    for view in views:
        waiting = view.retry_at is not None and view.state == RETRYING
        cells.append(
            {
                "item": view.key,
                "attempt": f"#{view.attempt}",
                "worker": printable(view.worker.split("://")[-1]) if view.worker else "",  # a remote item's
                "step": view.step if not waiting else "",
                "time": f"in {duration(max(0.0, view.retry_at - now))}" if waiting else duration(view.duration),
                "tools": plural(view.tool_calls, "tool") if view.tool_calls else "",
                "activity": printable(view.activity),
                "tokens": tokens(view.tokens),
                "cost": money(view.cost_usd),
                "style": "yellow" if waiting else "",
            }
        )
    if not cells:
        return []
    columns = ("attempt", "worker", "time", "tools", "step", "tokens", "cost")
    widths = {name: max(len(cell[name]) for cell in cells) for name in ("item", *columns)}
    # One long name must not push every row's attempt and time off: longer names lose their middle.
    widths["item"] = min(widths["item"], max(MIN_NAME, width * 2 // 5))
    for cell in cells:
        cell["item"] = _shortened(cell["item"], widths["item"])
    shown = [name for name in columns if widths[name]]

    def others() -> int:
        return widths["item"] + sum(widths[name] + len(GAP) for name in shown) + len(GAP)

    for name in GIVE_WAY:
        if others() + MIN_ACTIVITY <= width:
            break
        if name in shown:
            shown.remove(name)
    activity_width = max(1, width - others())
    rows = []
    for cell in cells:
        activity = cell["activity"]
        if len(activity) > activity_width:
            activity = activity[: activity_width - 1] + "…"
        parts = [cell["item"].ljust(widths["item"])]
        parts += [cell[name].rjust(widths[name]) for name in ("attempt", "worker", "time", "tools") if name in shown]
        parts += [cell["step"].ljust(widths["step"])] if "step" in shown else []
        parts.append(activity.ljust(activity_width) if any(n in shown for n in ("tokens", "cost")) else activity)
        parts += [cell[name].rjust(widths[name]) for name in ("tokens", "cost") if name in shown]
        rows.append((GAP.join(parts).rstrip(), cell["style"]))
    return rows


def _shortened(name: str, width: int) -> str:
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head):]


class PlainView:
    """One timestamped line per state change, with a [finished/total] counter, for logs
    and pipes; a heartbeat for an item that has had no line for HEARTBEAT_SECONDS."""

    def __init__(self, stream, board: Board | None = None):
        self.stream = stream
        self.board = board
        self.root = board.root if board else os.getcwd()
        self.last_line: dict[str, float] = {}  # item → when a line last named it
        self.steps: dict[str, str] = {}  # item → the step it was last seen at

    def line(self, text: str, *more: str) -> None:
        counter = ""
        if self.board is not None:
            ended, total = self.board.ended_count()
            counter = f"[{ended}/{total}] "
        self.stream.write(f"{time.strftime('%H:%M:%S')} {counter}{text}\n" + "".join(f"{m}\n" for m in more))
        self.stream.flush()

    def started(self, view: ItemView) -> None:
        self.last_line[view.key] = time.time()
        self.line(f"▶ {view.key}" + (f" (attempt {view.attempt})" if view.attempt > 1 else ""))

    def stepped(self, view: ItemView) -> None:
        """A line for the steps that take long or wait: check, waiting to merge, and the merge that
        ends a wait. Setup and agent have their heartbeat and ▶ lines; a merge straight after its
        check, the ✓ line a moment later."""
        before, self.steps[view.key] = self.steps.get(view.key), view.step
        if view.step in (CHECK, WAITING_TO_MERGE) or (view.step == MERGING and before == WAITING_TO_MERGE):
            self.last_line[view.key] = time.time()
            self.line(step_line(view))

    def finished(self, view: ItemView) -> None:
        self.last_line.pop(view.key, None)
        self.steps.pop(view.key, None)
        if view.state not in (NOT_STARTED, SKIPPED):  # those, by why, are in the summary
            self.line(finished_line(view, self.root), *tail_lines(view))

    def retrying(self, view: ItemView) -> None:
        self.last_line[view.key] = time.time()
        self.line(retry_line(view))

    def paused(self, agent: str, until: float) -> None:
        self.line(pause_line(agent, until))

    def notice(self, text: str) -> None:
        self.line(f"! {printable(text)}")

    def tick(self, now: float) -> None:
        if self.board is None:
            return
        for view in self.board.flying():
            if view.state == RETRYING:
                continue  # its line said when it goes on
            if now - self.last_line.get(view.key, view.started or now) >= HEARTBEAT_SECONDS:
                self.last_line[view.key] = now
                self.line(heartbeat_line(view, now))

    def close(self, lines: list[str]) -> None:
        self.stream.write("\n" + "\n".join(lines) + "\n")
        self.stream.flush()


class TerminalView:
    """A live panel at the bottom of the terminal; finished items scroll above it."""

    STYLES = {DONE: "green", FAILED: "red", INTERRUPTED: "yellow"}

    def __init__(self, stream, board: Board):
        self.console = console_for(stream)
        self.board = board
        # transient: once stopped (the end, Ctrl-C), the panel is erased; the summary says the rest.
        from rich.live import Live

        self.live = Live(Panel(board), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def started(self, view: ItemView) -> None:
        pass  # the panel shows it at its next refresh

    def stepped(self, view: ItemView) -> None:
        pass  # likewise, in its step column

    def finished(self, view: ItemView) -> None:
        if view.state in (NOT_STARTED, SKIPPED):
            return  # by why, in the summary
        self.live.console.print(_text(finished_line(view, self.board.root), style=self.STYLES.get(view.state, "")))
        for line in tail_lines(view):  # a line each, cut at the width: a long one would wrap the tail to a screenful
            self.live.console.print(_text(line, style="dim"), no_wrap=True, overflow="ellipsis", crop=True)

    def retrying(self, view: ItemView) -> None:
        self.live.console.print(_text(retry_line(view), style="yellow"))

    def paused(self, agent: str, until: float) -> None:
        self.live.console.print(_text(pause_line(agent, until), style="yellow"))

    def notice(self, text: str) -> None:
        self.live.console.print(_text(f"! {printable(text)}", style="yellow"))

    def tick(self, now: float) -> None:
        pass  # rich redraws the panel itself, 4 times a second

    def close(self, lines: list[str]) -> None:
        self.live.stop()
        print_lines(self.console, lines)


def view_for(stream, board: Board):
    """The view for `stream` (a panel on a terminal, plain lines elsewhere), watching `board`."""
    is_terminal = getattr(stream, "isatty", lambda: False)()
    view = TerminalView(stream, board) if is_terminal else PlainView(stream, board)
    board.watch(view)
    return view
