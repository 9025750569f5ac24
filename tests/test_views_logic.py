"""What the views say, on plain data: a board moved by hand, as the runner or the state
folders would move it (no process runs)."""

from __future__ import annotations

import re
import time

from batch_tasks.views.board import Board
from batch_tasks.views.live_view import progress_line
from batch_tasks.views.run_summary import summary


def board_at_rest() -> Board:
    """A batch of four after two runs, each of which did one item: none runs now."""
    board = Board([("g:a", "g"), ("g:b", "g"), ("g:c", "g"), ("g:d", "g")], begun=1000.0)
    for key, started in (("g:a", 1000.0), ("g:b", 2000.0)):
        board.started(key, 1, "")
        board.items[key].started = started
        board.finished(key, True)
        board.items[key].finished = started + 2
    board.at_rest = True
    return board


def test_status_at_rest_shows_the_batch_not_a_run_without_eta_or_elapsed():
    board = board_at_rest()
    line = progress_line(board.totals())
    assert line == "2/4 done · 0 running"
    said = summary(board)
    assert said[0] == "2 of 4 done, 0 failed, 2 open"
    assert not any("not started" in line or "the run ended first" in line for line in said), said
    assert said[-1] == "next: `doit run-batch` reruns only the 2 items left"


def test_an_items_tool_calls_are_counted_live_and_shown_where_it_ends():
    from batch_tasks.events import AgentEvent
    from batch_tasks.views.live_view import finished_line

    board = Board([("g:a", "g")], begun=1000.0)
    board.started("g:a", 1, "")
    for name, text in (("Read", "Read src/a.py"), ("Edit", "Edit src/a.py"), ("Read", "Read src/b.py")):
        board.event("g:a", AgentEvent("tool_use", text, {"name": name}))
    board.event("g:a", AgentEvent("assistant", "done"))
    board.finished("g:a", True)
    view = board.snapshot()[0]
    assert view.tools == {"Read": 2, "Edit": 1}
    assert finished_line(view).endswith(" · 3 tool calls")
    assert "tool call" not in finished_line(Board([("g:b", "g")]).snapshot()[0])  # none: not said


def test_tool_calls_are_counted_from_events_jsonl_for_one_run(tmp_path):
    import json

    from batch_tasks.state import tool_counts

    events = tmp_path / "events.jsonl"
    lines = [{"run_id": "R1", "kind": "tool_use", "data": {"name": "Bash"}},
             {"run_id": "R2", "kind": "tool_use", "data": {"name": "Edit"}},
             {"run_id": "R2", "kind": "tool_use", "data": {"name": "Edit"}},
             {"run_id": "R2", "kind": "assistant", "text": "tool_use is a word too", "data": {}}]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"cut')
    assert tool_counts.count(str(events), "R2") == {"Edit": 2}
    assert tool_counts.count(str(events)) == {"Bash": 1, "Edit": 2}
    assert tool_counts.count(str(tmp_path / "none.jsonl")) == {}


def test_at_80_columns_a_long_name_is_shortened_and_every_row_keeps_attempt_and_time():
    from batch_tasks.views.live_view import _rows

    board = Board([("g:a", "g"), ("extract-interfaces:src/payments/providers/legacy_gateway_adapter", "extract-interfaces")])
    for key in board.items:
        board.started(key, 1, "")
        board.event(key, __import__("batch_tasks.events", fromlist=["AgentEvent"]).AgentEvent("assistant", "Edit src/a.py"))
        board.items[key].started = time.time() - 5
    rows = [text for text, _ in _rows(board.flying(), 80, now=time.time())]
    assert all(len(row) <= 80 for row in rows), rows
    assert all(re.search(r" #1  5\.\ds  Edit src/a", row) for row in rows), rows
    name = rows[1].split()[0]
    assert name.startswith("extract-interfa") and "…" in name and name.endswith("gateway_adapter") and len(name) == 32


def test_the_eta_is_not_a_stuck_zero_while_items_run_past_the_mean():
    from batch_tasks.views.board import _eta

    assert _eta(10.0, 0, [(1000.0, None)], 4, now=1005.0) == 5.0
    assert _eta(10.0, 0, [(1000.0, None)], 4, now=1030.0) is None  # overdue: no figure rather than 0.0s
    assert _eta(10.0, 2, [(1000.0, None)], 1, now=1030.0) == 20.0


def test_the_terminal_panel_leaves_no_stale_status_and_a_tail_line_does_not_wrap(monkeypatch):
    import io
    import re

    from batch_tasks.views.live_view import TerminalView

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    screen = Terminal()
    board = Board([("g:a", "g"), ("g:b", "g")], begun=1000.0)
    view = TerminalView(screen, board)
    board.watch(view)
    board.started("g:a", 1, "")
    board.finished("g:a", False, reason="exit status 2", output_tail=["x" * 200])
    view.close(["1 done"])
    raw = screen.getvalue()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert ("    " + "x" * 75 + "…") in text and "x" * 77 not in text  # one line, cut at the terminal's width
    last_status = raw.rindex("0 running")
    assert "\x1b[2K" in raw[last_status:raw.rindex("1 done")]  # the panel is erased before the summary


def test_a_running_items_row_shows_its_tool_calls_and_gives_them_up_first():
    from batch_tasks.events import AgentEvent
    from batch_tasks.views.live_view import _rows

    board = Board([("g:a", "g")])
    board.started("g:a", 1, "")
    for _ in range(3):
        board.event("g:a", AgentEvent("tool_use", "Read src/a.py", {"name": "Read"}))
    wide = _rows(board.flying(), 120, now=time.time())[0][0]
    assert re.search(r" #1  \d+\.\ds  3 tools  Read src/a\.py$", wide), wide
    narrow = _rows(board.flying(), 30, now=time.time())[0][0]
    assert "tools" not in narrow and narrow.endswith("Read src/a.py")  # the activity keeps its room


def test_an_items_events_read_back_from_its_log_show_as_they_did_live(tmp_path):
    """batch-status reads an item's events.jsonl through item_log, and notes each event as the
    live board does: both show the same."""
    from batch_tasks.events import CHECK, STEP, AgentEvent
    from batch_tasks.state import item_log
    from batch_tasks.state.state import ItemState
    from batch_tasks.views.board import ItemView
    from batch_tasks.views.board_on_disk import _read_activity

    folder = ItemState(str(tmp_path / "items" / "g" / "a"), str(tmp_path))
    folder.ensure()
    board = Board([("g:a", "g")])
    board.started("g:a", 1, "")
    fields = ("activity", "step", "model", "session_id", "tokens", "worker", "attempt", "retry_at", "reason")

    def same_both_ways():
        read = ItemView("g:a", "g", attempt=1)  # as its running.json says (see board_from_state)
        assert _read_activity(read, folder.events)
        live = board.items["g:a"]
        assert {name: getattr(read, name) for name in fields} == {name: getattr(live, name) for name in fields}

    for event in (AgentEvent("started", data={"model": "opus", "session_id": "s-1"}),
                  AgentEvent("worker", "on worker tcp://w:1 (w)", {"worker": "tcp://w:1"}),
                  AgentEvent("usage", data={"tokens": {"input": 5, "output": 7}}),
                  AgentEvent("tool_use", "Read src/a.py", {"name": "Read"})):
        board.event("g:a", event)
        item_log.append(folder, "run-1", 1, event.kind, event.text, event.data)
    same_both_ways()
    board.step("g:a", 1, CHECK, "running the check")
    item_log.append(folder, "run-1", 1, STEP, "running the check", {"step": CHECK})
    same_both_ways()
    at = time.time() + 30
    board.retrying("g:a", 1, "server error (529)", at)
    item_log.append(folder, "run-1", 1, "retry", "server error (529)", {"retry_at": at})
    same_both_ways()


def test_a_landed_items_line_says_what_the_merge_queue_checked_it_with_and_its_bisections():
    from batch_tasks.views.live_view import queue_parts

    queue = {"checks": 3, "checked_with": [["g:a", "g:b", "g:c"], ["g:a", "g:b"], ["g:a"]], "bisected": 1}
    assert queue_parts(queue, "g:a") == ["3 merged-state checks with g:b, g:c", "bisected 1 time"]
    assert queue_parts({"checks": 1, "checked_with": [["g:a"]], "bisected": 0}, "g:a") == ["1 merged-state check"]
    assert queue_parts({"checks": 0, "checked_with": [], "bisected": 0}, "g:a") == []  # it landed as it was checked
    assert queue_parts({"checks": "3"}, "g:a") == [] and queue_parts(None, "g:a") == []  # records are untrusted
