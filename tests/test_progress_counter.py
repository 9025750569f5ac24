"""The [ended/total] counter of the plain lines, on plain data: it counts the items that ended
after they began (or were up to date), so that a run stopped does not jump to its end."""

import io

from batch_tasks.views.board import Board
from batch_tasks.views.live_view import PlainView


def test_a_stopped_run_counts_only_the_items_that_ended_not_those_never_started():
    board = Board([(f"g:{n}", "g") for n in range(6)], workers=2)
    out = io.StringIO()
    board.watch(PlainView(out, board))
    board.started("g:0", 1, "log")
    board.started("g:1", 1, "log")
    board.finished("g:0", True)
    for n in range(2, 6):  # Ctrl-C: what had not started never will
        board.not_started(f"g:{n}", "the run was stopped")
    board.interrupted("g:1")
    counters = [line.split()[1] for line in out.getvalue().splitlines()]
    assert counters == ["[0/6]", "[0/6]", "[1/6]", "[2/6]"]
