"""The board of a run read back from the items' state folders, for another process (`doit
batch-status`) or a run past: each item's records say how it ended (item_status), its
latest events (item_log) what it does now, read by the same note_* functions that the
live board's events go through. It reads, and never writes.
"""

from __future__ import annotations

from typing import Any

from ..events import STEP
from ..landing.review import review_command
from ..state import item_log, tool_counts
from ..state.item_status import ABSENT, UNREADABLE, read_status
from ..state.state import BatchState
from ..state.tails import said_last
from .board import (AWAITING_REVIEW, DONE, FAILED, INTERRUPTED, RETRYING, RUNNING, Board, ItemView, landing_of,
                    last_session, note_event, note_retry, note_step)


def board_from_state(plan, state: BatchState, run_started: float | None, workers: int | None = None) -> Board:
    """Rebuild the board from the items' state folders, for a run in another process or past."""
    board = Board([(item.key, item.group) for item in plan.items()], workers=workers or 1, root=str(plan.path.parent))
    for item in plan.items():
        folder = state.item(item.group, item.module)
        view = board.items[item.key]
        status = read_status(folder)  # the one reader of an item's records
        result, failure, running = status.result, status.failure, status.running
        if status.kind == UNREADABLE:
            view.reason = status.problem
            board.settle(view, FAILED)
        elif running and run_started:
            view.attempt, view.started = running.get("attempt", 1), running.get("started")
            view.log = folder.log
            _read_activity(view, folder.events)
            view.tools = tool_counts.count(folder.events, running.get("run_id"))
            board.settle(view, RETRYING if view.retry_at else RUNNING)
        elif status.kind == ABSENT and run_started and _read_activity(view, folder.events, since=run_started):
            # Its first attempt's worktree is being made and set up: no agent has started yet.
            view.log = folder.log
            board.settle(view, RUNNING)
        elif result:
            view.started, view.finished = result.get("started"), result.get("finished")
            view.cost_usd, view.tokens = result.get("cost_usd"), result.get("tokens") or {}
            view.landing = landing_of(result)
            view.tools = tool_counts.count(folder.events, _last_run(result))
            board.settle(view, DONE)
        elif failure:
            view.reason, view.log = failure.get("reason", ""), folder.log
            view.finished, view.cost_usd = failure.get("finished"), failure.get("cost_usd")
            view.agent, view.session_id = failure.get("agent") or "", last_session(failure)
            view.landing = landing_of(failure)
            view.tools = tool_counts.count(folder.events, _last_run(failure))
            if failure.get("awaiting_review"):
                said = failure["awaiting_review"]
                pull = isinstance(said, dict) and said.get("pull_request") is not None
                view.reason = f"review it: {said.get('waits_for') if pull else review_command(item.key)}"
                board.settle(view, AWAITING_REVIEW)
            elif failure.get("interrupted"):
                board.settle(view, INTERRUPTED)
            else:
                view.output_tail = tuple(said_last(folder.log))
                board.settle(view, FAILED)
        elif item.done:
            view.activity = "done by hand"
            board.settle(view, DONE)
    board.at_rest = not run_started
    if run_started:
        board.begun = run_started
        board.count_done_since(run_started)  # the ETA's mean, like the runner's: the items done in this run
    return board


def _last_run(record: dict[str, Any]) -> str | None:
    """The run of a record's last attempt: its tool calls are that run's."""
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else {}
    return last.get("run_id") if isinstance(last.get("run_id"), str) else None


def _read_activity(view: ItemView, events_path: str, since: float | None = None) -> bool:
    """The latest activity, step and token count of a running item, and whether it waits to
    retry, from its latest events (with `since`, only those written since then); True if it read any."""
    events = item_log.recent_events(events_path, since)
    for event in events:
        data, stamp = event["data"], event.get("t") if isinstance(event.get("t"), (int, float)) else None
        attempt = event.get("attempt") if isinstance(event.get("attempt"), int) else 0
        text = str(event.get("text") or "")
        if stamp is not None:
            view.started = view.started or stamp
        at = stamp if stamp is not None else view.last_activity
        if event.get("kind") == "retry" and isinstance(data.get("retry_at"), (int, float)):
            # The runner's own notice (an agent's retries within an attempt carry no retry_at).
            note_retry(view, attempt, text, data["retry_at"])
            view.last_activity = at
        elif event.get("kind") == STEP:  # the runner's too: where an item that lands its work is
            note_step(view, attempt, str(data.get("step") or ""), text, at)
        else:
            note_event(view, str(event.get("kind")), text, data, at)
    return bool(events)
