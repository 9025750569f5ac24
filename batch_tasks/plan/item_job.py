"""One item's job: the plain data its run needs, and nothing of the rest of the plan. Made
by doit_tasks for each item, read by its lifecycle and by the executor of its attempts.
Touches nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import prompt
from .plan import Group, Item


@dataclass(slots=True, frozen=True)
class ItemJob:
    """Everything one item's run needs, and nothing of the rest of the plan: plain data, read-only
    (an adjusted attempt gets a new one)."""

    taskfile: Path
    workdir: Path  # where its agent and its check run (see workdir.py)
    batch_title: str
    plan_context: Mapping[str, Any]  # the plan's preamble, its design documents, the workdir (see plan_context)
    group: Group  # its items are not carried along: see doit_tasks.build_tasks
    group_index: int
    item: Item
    settings: Mapping[str, Any]
    template: prompt.Template
    fingerprint: Mapping[str, str]
    upstream: tuple[Item, ...]
    previous: Item | None
    previous_group_title: str | None
    untick_first: bool  # it is ticked but stale: open its checkbox while it runs
