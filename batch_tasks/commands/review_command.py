"""`doit batch-review [ITEM [--approve | --reject WHY]]`: the items awaiting review, one
item's work, and the decision on it, from another terminal while the run goes on, or
between runs (the next run takes it).

    doit batch-review                    each item awaiting review: its diffstat, its check's
                                         result, its agent's final message, its cost
    doit batch-review ITEM               its diff against the integration branch (paged in a terminal)
    doit batch-review ITEM --approve     it lands, through the merge queue
    doit batch-review ITEM --reject WHY  its session is told why, and it comes back for review

It reads the items' records and git, and writes one signed decision (see review.py) in the
item's state folder; nothing else. The commit decided on is the one the item waits with: an
item whose branch moved since is refused, so what was seen is what lands.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from doit.cmd_base import DoitCmdBase

from ..errors import BatchError
from ..landing import review
from ..redaction import Redactor
from ..repository.git import git, rev
from ..state.item_status import read_status
from ..tasks.loader import ReadsTaskFile
from ..views.live_view import money
from .cli import EXIT_BAD_INPUT, FriendlyArgs, flag

opt_approve = flag("approve", "approve the item's work: it lands through the merge queue")
opt_reject = {"name": "reject", "long": "reject", "type": str, "default": "",
              "help": "WHY: send the work back to its session, told why; it comes back for review"}


class BatchReview(FriendlyArgs, ReadsTaskFile, DoitCmdBase):
    name = "batch-review"
    doc_purpose = "list the items awaiting review; show one's diff; approve or reject it"
    doc_usage = "[GROUP:MODULE [--approve | --reject WHY]]"
    doc_description = (
        "Without a name, lists the items awaiting review. With one, shows its diff; with\n"
        "--approve it lands, with --reject WHY its agent's session is told why and tries again.\n"
        "Works while the run goes on (it takes the decision at once) or between runs."
    )
    cmd_options = (opt_approve, opt_reject)

    def _execute(self, pos_args, approve=False, reject=""):
        batch = self.loader.batch
        redact = Redactor(os.environ).text
        waiting = {item.key: (item, said) for item in batch.plan.items()
                   if (said := review.awaiting(read_status(batch.state.item(item.group, item.module)).failure))}
        try:
            if not pos_args:
                if approve or reject:
                    raise BatchError("name the item to decide on: doit batch-review GROUP:MODULE --approve")
                self.outstream.write(redact(_listing(batch, waiting)))
                return 0
            if len(pos_args) != 1 or approve and reject:
                raise BatchError("name one item, and at most one of --approve and --reject WHY")
            key = pos_args[0]
            if key not in waiting:
                known = {item.key for item in batch.plan.items()}
                raise BatchError(f"no item {key!r}" if key not in known else
                                 f"{key} is not awaiting review" + (f" (those that are: {', '.join(waiting)})"
                                                                    if waiting else ""))
            item, said = waiting[key]
            top, target, branch = _where(batch, item)
            if not approve and not reject:
                diff = git("diff", "--no-ext-diff", "--no-textconv", "--stat", "--patch", f"{target}...{branch}",
                           cwd=top).text
                text = redact(f"{key}: {item.text}\n{diff}\n")
                if not (self.outstream.isatty() and _paged(text)):
                    self.outstream.write(text)
                return 0
            if rev(branch, top) != said.get("commit"):
                raise BatchError(f"{key}'s branch {branch} moved since it asked for review: nothing decided "
                                 "(look at its work again: doit batch-review " + key + ")")
            if os.environ.get("BATCH_ATTEMPT_ID"):  # a speed bump, not a wall: see review.py
                raise BatchError("a decision is a person's: refused from inside an item's attempt")
            verdict = review.APPROVE if approve else review.REJECT
            review.write_decision(batch.state.item(item.group, item.module), key,
                                  review.Decision(verdict, said["commit"], reject))
        except (BatchError, OSError) as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return EXIT_BAD_INPUT
        told = ("approved: it lands through the merge queue" if approve else
                "rejected: its session is told why, and it comes back for review")
        self.outstream.write(f"{key} {told} (at once in the run going on, else in the next `doit run-batch`)\n")
        return 0


def _paged(text: str) -> bool:
    """Shown through $PAGER (else `less -R`), in a terminal; False if there is none to run."""
    try:
        subprocess.run(shlex.split(os.environ.get("PAGER") or "less -R"), input=text.encode(), check=False)
    except (OSError, ValueError):
        return False
    return True


def _where(batch, item) -> tuple[str, str, str]:
    """The repository's top, the integration branch's ref, and the item's branch's ref."""
    from ..isolation.worktree import Isolation

    isolation = Isolation(batch.plan.path, batch.plan.settings, workdir=batch.workdir)
    isolation.validate()
    return str(isolation.top), isolation.ref, f"refs/heads/{isolation.item_branch(item.group, item.module)}"


def _listing(batch, waiting) -> str:
    if not waiting:
        return "no item is awaiting review\n"
    lines = []
    for key, (item, said) in waiting.items():
        top, target, branch = _where(batch, item)
        stat = git("diff", "--no-ext-diff", "--shortstat", f"{target}...{branch}", cwd=top).text.strip()
        check = said.get("check") or {}
        checked = ("check passed" if check.get("passed", True) else "check failed") if check else "no check"
        lines.append(f"{key}: {item.text}")
        lines.append(f"  {stat or 'no changes'} · {checked} · {money(said.get('cost_usd')) or 'cost unknown'}")
        claim = (said.get("claim") or "").strip().splitlines()
        if claim:
            lines += [f"  agent: {line}" for line in claim[-5:]]
        lines.append(f"  doit batch-review {key}   (--approve, or --reject \"why\")")
    return "\n".join(lines) + "\n"
