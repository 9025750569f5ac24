"""A reviewer agent (`review: agent`, or `review: {agent: claude, model: …, template: …}`):
a second agent reads the item's diff against its instruction and answers in one form, its
final message ending with a verdict line:

    VERDICT: APPROVE
    VERDICT: CHANGES
    - what to change, one per line

APPROVE lands the work; CHANGES goes back to the item's session as a rejection does (see
review.py), the lines after the verdict (else those before it) as the reason. An answer in
no such form, a reviewer that fails, or one that changed the work leaves the decision to a
person: the item waits for `doit batch-review`. Its decision is signed as a person's is, so
the merge proves it the same way.

The reviewer runs in the item's worktree (to read its files), through the run's supervisor
(its processes recorded, for a run after a kill to stop); what it leaves there is put back.
Its output goes to the item's output.log under a line of its own; its cost counts against
the batch's budget and is kept apart in the attempt's record (`review.cost_usd`).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ..agents import AGENTS
from ..errors import BatchError
from ..events import REVIEWING
from ..executors.attempt import outcome_of
from ..plan import prompt
from ..processes.process import StoppedError
from ..repository.git import environment_for_worktrees, git
from ..state import item_log

if TYPE_CHECKING:
    from ..state.records import Attempt
    from .landing_item import ReviewedItem

DIFF_CHARACTERS = 200_000  # of the diff, in the prompt: a reviewer's context is not endless
VERDICT = re.compile(r"^[\s*_`#>]*VERDICT:\s*\**\s*(APPROVE|CHANGES)\b", re.M | re.I)


def verdict(text: str) -> tuple[str, str] | None:
    """("approve" or "changes", the reasons) from a reviewer's final message; None without a verdict line."""
    found = list(VERDICT.finditer(text or ""))
    if not found:
        return None
    last = found[-1]
    after, before = text[last.end():].strip(" \t\n*_`"), text[:last.start()].strip()
    return last.group(1).lower(), after or before


def settings_of(group_settings: dict[str, Any]) -> dict[str, Any]:
    """The reviewer's settings: the group's, with the review's agent, model and template."""
    wanted = group_settings["review"]
    settings = dict(group_settings)
    if wanted.get("agent") and wanted["agent"] != group_settings["agent"]:
        settings.update(agent=wanted["agent"], model=None, extra_args=None)  # another CLI's flags do not fit it
    if wanted.get("model"):
        settings["model"] = wanted["model"]
    return settings


def review(item_run: "ReviewedItem", attempt: "Attempt", commit: str) -> tuple[tuple[str, str] | None, dict[str, Any]]:
    """Run the reviewer on the work at `commit`: its verdict (None: a person decides), and what
    the attempt's record keeps of it. Raises StoppedError when the run stops meanwhile."""
    job, run, workspace = item_run.job, item_run.run, item_run.workspace
    settings = settings_of(dict(job.settings))
    agent = AGENTS[settings["agent"]]
    kept: dict[str, Any] = {"by": settings["agent"], "model": settings.get("model")}
    try:
        template = (prompt.load_template(job.taskfile, job.settings["review"]["template"])
                    if job.settings["review"].get("template") else prompt.review_template())
        diff = git("diff", "--no-ext-diff", "--no-textconv", f"{workspace.isolation.ref}...{commit}",
                   cwd=workspace.isolation.top).text
        text = prompt.render(template, {
            "batch": {"title": job.batch_title, "path": str(job.taskfile)},
            "item": {"key": job.item.key, "module": job.item.module, "text": job.item.text,
                     "instruction": job.item.instruction},
            "check": attempt.extra.get("check"), "claim": attempt.extra.get("claim", ""),
            "diff": run.redactor.text(diff[:DIFF_CHARACTERS]),
        })
    except BatchError as error:
        return None, {**kept, "undecided": f"the reviewer could not be asked: {error}"}
    prompt_file = os.path.join(item_run.folder.folder, "review-prompt.md")
    with open(prompt_file, "w", encoding="utf-8") as stream:
        stream.write(text)
    item_run.tell_step(attempt.number, REVIEWING, f"{settings['agent']} reviews the work")
    reader, said = agent.reader(settings), threading.Event()

    def on_line(line: str) -> None:
        if any(event.kind == "result" for event in reader.feed(line)):
            said.set()

    env = {**environment_for_worktrees(), **agent.environment(settings), "BATCH_ITEM": job.item.key,
           "BATCH_GROUP": job.item.group, "BATCH_MODULE": job.item.module, "BATCH_ATTEMPT": str(attempt.number),
           "BATCH_RUN_ID": run.run_id, "BATCH_PROMPT_FILE": prompt_file, "BATCH_REVIEW": "1"}
    context = {"module": job.item.module, "group": job.item.group, "prompt_file": prompt_file,
               "session_id": str(uuid.uuid4()), "resume_session": ""}
    with item_run.folder.open_log() as log:
        log.write(item_log.note_header(f"review of {job.item.key} by {settings['agent']}"))
        try:
            ended = run.supervisor.run(agent.argv(settings, context), cwd=workspace.workdir, env=env,
                                       stdin=text.encode("utf-8"), log=log, on_line=on_line,
                                       on_start=lambda processes: item_log.append(
                                           item_run.folder, attempt.run_id, attempt.number, item_log.PROCESSES,
                                           data=processes.record()),
                                       timeout=settings["timeout"], idle_timeout=settings["idle_timeout"],
                                       finished=said.is_set, redact=run.redactor)
        except OSError as error:
            return None, {**kept, "undecided": f"the reviewer cannot start: {error.strerror or error}"}
        finally:
            workspace.discard_leftovers()  # a reviewer changes nothing
    if run.supervisor.stopping.is_set() and ended.status < 0:
        raise StoppedError()
    outcome = outcome_of(reader, ended.status, ended.stopped_for, said.is_set())
    cost = outcome.data.get("cost_usd")
    run.budget.spend(cost)
    kept.update(cost_usd=cost, said=run.redactor.text(outcome.result_text[-2000:]))
    found = verdict(outcome.result_text) if outcome.ok else None
    if workspace.tip() != commit:
        return None, {**kept, "undecided": "the reviewer changed the work: a person decides"}
    if found is None:
        why = "its answer had no VERDICT line" if outcome.ok else f"it failed: {outcome.reason}"
        return None, {**kept, "undecided": f"the reviewer could not decide ({why}): a person decides"}
    return found, kept
