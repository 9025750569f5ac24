"""`doit batch-status [--watch] [--runs]`: a batch's progress from its state folders, from
another terminal while it runs, or after; the past runs with `--runs`.

It only reads: the items' records (through item_status), the run lock's holder and the
run history. The running batch is not asked, and never waited for.
"""

from __future__ import annotations

import os
import time

from doit.cmd_base import DoitCmdBase
from rich.console import Group
from rich.live import Live
from rich.text import Text

from ..main import rerun_command
from ..run import forecast, history
from ..state.state import lock_holder
from ..tasks.loader import ReadsTaskFile
from ..views.board_on_disk import board_from_state
from ..views.live_view import console_for, panel, print_lines
from ..views.run_summary import summary
from .cli import FriendlyArgs, flag

opt_watch = flag("watch", "keep showing it, refreshed, until Ctrl-C")
opt_runs = flag("runs", "list the past runs: when, how long, done and failed, cost")
opt_interval = {
    "name": "interval",
    "long": "interval",
    "type": float,
    "default": 1.0,
    "help": "seconds between refreshes with --watch [default: %(default)s]",
}


class BatchStatus(FriendlyArgs, ReadsTaskFile, DoitCmdBase):
    name = "batch-status"
    doc_purpose = "show a batch's progress, from another terminal, or after it ran"
    doc_usage = "[--watch]"
    doc_description = (
        "Reads the items' state folders: what runs now and what it does, what is done\n"
        "or failed, and what it cost. Needs no server: the running batch is not asked."
    )
    cmd_options = (opt_watch, opt_interval, opt_runs)

    def _execute(self, watch=False, interval=1.0, runs=False):
        batch = self.loader.batch
        if runs:
            self.outstream.write(history.runs_table(batch.state.root))
            return 0
        console = console_for(self.outstream)
        if not watch:
            board, picture = _status(batch)
            console.print(picture)
            notes = forecast.against_actual(forecast.of_last_run(batch.state.root), board.snapshot())
            print_lines(console, summary(board, notes, rerun=rerun_command(os.path.relpath(batch.plan.path), self.bin_name)))
            return 0
        try:
            with Live(console=console, refresh_per_second=4) as live:
                while True:
                    live.update(_status(batch)[1])
                    time.sleep(interval)
        except KeyboardInterrupt:
            return 0


def _status(batch):
    """The board as the state folders tell it, and its picture under a line about the run."""
    holder = lock_holder(batch.state)
    board = board_from_state(batch.plan, batch.state, holder["started"] if holder else None,
                             workers=holder.get("workers") if holder else None)
    header = f"running: {holder['text']}" if holder else "no run in progress"
    return board, Group(Text(header), panel(board))
