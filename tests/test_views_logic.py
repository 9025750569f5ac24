"""What the views say, on plain data: a board moved by hand, as the runner or the state
folders would move it (no process runs)."""

from __future__ import annotations

from batch_tasks.board import Board
from batch_tasks.live_view import progress_line
from batch_tasks.run_summary import summary


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
