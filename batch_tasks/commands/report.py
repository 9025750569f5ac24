"""`doit batch-report`: one run's report, as a self-contained HTML file or as JSON.

It reads task.md (through the batch loader), the run's history and the items' output
logs; it writes only the file it is asked for (whole, through a temporary file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from doit.cmd_base import DoitCmdBase

from ..errors import BatchError
from ..state.state import write_atomic
from ..tasks.loader import ReadsTaskFile
from ..views import report_data, report_html

opt_output = {
    "name": "output",
    "short": "o",
    "long": "output",
    "type": str,
    "default": "",
    "help": "the file to write [default: report.html, or report.json with --format json; - for standard output]",
}
opt_run = {
    "name": "run",
    "long": "run",
    "type": str,
    "default": "",
    "help": "the run to report on (`doit batch-status --runs` lists them) [default: the latest]",
}
opt_format = {
    "name": "format",
    "long": "format",
    "type": str,
    "choices": (("html", "one self-contained page"), ("json", "the same data, for machines")),
    "default": "html",
    "help": "html or json [default: %(default)s]",
}


class BatchReport(ReadsTaskFile, DoitCmdBase):
    name = "batch-report"
    doc_purpose = "write a run's report: timeline, costs, failures, graph (HTML or JSON)"
    doc_usage = "[-o report.html] [--run ID] [--format html|json]"
    doc_description = (
        "Draws one run of `doit run-batch` from its history: a bar per attempt, the\n"
        "concurrency under it, durations, tokens and costs by group and item, the\n"
        "failures and the end of their output, the dependency graph, and the run's\n"
        "settings and versions. The HTML needs no network: open it from disk."
    )
    cmd_options = (opt_output, opt_run, opt_format)

    def _execute(self, output="", run="", format="html"):
        batch = self.loader.batch
        try:
            run_id = report_data.choose_run(batch.state.root, run or None)
            data = report_data.build(batch, run_id)
        except BatchError as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return 3
        text = json.dumps(data, indent=1, default=str) + "\n" if format == "json" else report_html.render(data)
        if output == "-":
            self.outstream.write(text)
            return 0
        target = Path(output or f"report.{format}")
        try:
            write_atomic(target, text)
        except OSError as error:
            sys.stderr.write(f"ERROR: cannot write {target}: {error.strerror or error}\n")
            return 1
        self.outstream.write(f"wrote {target} (run {run_id})\n")
        return 0


