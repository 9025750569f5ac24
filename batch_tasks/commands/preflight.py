"""What would stop a run, found before it starts: a template asking for what is not there,
a damaged record, an agent CLI that is not installed. One BatchError, before anything
runs (and, without a selection, before the lock and doit's records are touched).
Reads the plan, the items' records and PATH; writes nothing."""

from __future__ import annotations

import shutil
from typing import Iterable

from ..agents import AGENTS
from ..errors import BatchError
from ..processes import agent_sandbox
from ..run.prompt_context import check_prompts
from ..state.item_status import UNREADABLE, ItemStatus, unreadable_error
from ..tasks.doit_tasks import item_job


def check(batch, will_run: Iterable[str]) -> frozenset[str]:
    """Raises BatchError for the first thing that would stop the items WILL_RUN; returns them."""
    will_run = frozenset(will_run)
    check_prompts((item_job(batch, index, group, item) for index, group in enumerate(batch.plan.groups)
                   for item in group.items if item.key in will_run), batch.state)
    _check_readable(batch, will_run)
    _check_agents(batch, will_run)
    return will_run


def _check_readable(batch, will_run: frozenset[str]) -> None:
    """A finished item whose records are damaged is not run (and paid for) again unasked."""
    for key in sorted(will_run):
        verdict = batch.verdicts[key]
        if verdict.problem:
            raise unreadable_error(key, ItemStatus(UNREADABLE, problem=verdict.problem))


def _check_agents(batch, will_run: frozenset[str]) -> None:
    """Every agent CLI the run will need is there, or one error before anything runs."""
    for group in batch.plan.groups:
        if not any(item.key in will_run for item in group.items):
            continue
        name = group.settings["agent"]
        program = AGENTS[name].executable or group.settings["command"][0]
        found = shutil.which(program) if "/" not in program else shutil.which(batch.workdir / program)
        if found is None:
            what = f"agent {name!r} needs the {program} command on PATH"
            raise BatchError(what if name != "command" else f"group {group.slug!r}: {program!r} is not a program on PATH")
    agent_sandbox.preflight(group for group in batch.plan.groups if any(item.key in will_run for item in group.items))
