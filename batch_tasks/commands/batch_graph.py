"""`doit batch-graph`: what each item waits for, and which items are kept apart, as text
or Graphviz dot. Reads the plan (and, for the prediction, the items' records); writes nothing."""

from __future__ import annotations

from doit.cmd_base import DoitCmdBase

from ..tasks import graph
from ..tasks.loader import ReadsTaskFile
from ..views.dry_run import kept_apart
from .cli import FriendlyArgs, flag

opt_dot = flag("dot", "print Graphviz dot (doit batch-graph --dot | dot -Tsvg > batch.svg)")


class BatchGraph(FriendlyArgs, ReadsTaskFile, DoitCmdBase):
    name = "batch-graph"
    doc_purpose = "show what each item waits for (text, or Graphviz dot)"
    doc_usage = "[--dot]"
    doc_description = ("Groups in order; under each, every item, what it waits for, and which items it is kept "
                       "apart from (both predicted to touch one file).")
    cmd_options = (opt_dot,)

    def _execute(self, dot=False):
        plan = self.loader.batch.plan
        apart = kept_apart(self.loader.batch)
        self.outstream.write(graph.as_dot(plan, apart) if dot else graph.as_text(plan, apart))
        return 0
