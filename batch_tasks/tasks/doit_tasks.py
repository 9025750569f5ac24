"""Building doit tasks from a batch: one task per item, one group task per heading.

Item `GROUP:MODULE` is a subtask of `GROUP`; its target is its result record; it
waits (task_dep) for what the plan says it waits for; its `uptodate` is its Verdict,
so doit skips exactly the items staleness says are current, and `doit info` says why.
An item has no doit action: its job (plain data, in `meta`) is run by run-batch's own
runner (see runner.py), which doit's plain `run` is not. A batch loaded without its
records (for a command that only shows the plan) gives tasks without verdicts or jobs;
a command that runs nothing (`--dry-run`, `-q`) may ask for tasks without jobs, and make
the few it needs with `jobs_of`.
"""

from __future__ import annotations

from dataclasses import replace

from doit.task import Task

from ..doit_bridge import as_uptodate
from ..plan.item_job import ItemJob
from ..state.staleness import DONE_BY_HAND
from .batch import Batch


def build_tasks(batch: Batch, optional: bool = True, jobs: bool = True) -> list[Task]:
    """`optional`: whether Kiro's optional items are tasks too (run-batch: only with --optional).
    `jobs`: whether each item's task carries its job (a run's do; 10,000 of them are a tenth
    of a dry run, which needs none of them, or a few)."""
    plan = batch.plan
    tasks: list[Task] = []
    for index, group in enumerate(plan.groups):
        bare_group = replace(group, items=())  # each job carries its own item, not the group's
        items = [item for item in group.items if optional or not item.optional]
        for item in items:
            verdict = batch.verdicts[item.key] if batch.verdicts is not None else None
            folder = batch.folders[item.key] if batch.folders is not None else batch.state.item(item.group, item.module)
            result = folder.result
            meta = {"line": item.line}
            if verdict is not None and jobs:
                meta["job"] = item_job(batch, index, bare_group, item)
            tasks.append(
                Task(
                    item.key,
                    [],
                    # An item ticked by hand has no record to make; any other has its result.
                    targets=[] if verdict is not None and verdict.reason == DONE_BY_HAND else [result],
                    task_dep=plan.task_dep(item),
                    # doit takes the Verdict's truth, and `doit info` prints it: the reason the item runs.
                    uptodate=as_uptodate(verdict) if verdict is not None else [],
                    doc=item.text if len(item.text) <= 72 else item.text[:71] + "…",
                    subtask_of=group.slug,
                    io={"capture": False},
                    meta=meta,
                )
            )
        tasks.append(
            Task(group.slug, None, task_dep=[item.key for item in items], has_subtask=True, doc=group.title)
        )
    return tasks


def jobs_of(batch: Batch, keys) -> dict[str, ItemJob]:
    """The jobs of the items KEYS, by key, as build_tasks makes them."""
    wanted, made = set(keys), {}
    for index, group in enumerate(batch.plan.groups):
        bare_group = None
        for item in group.items:
            if item.key in wanted:
                bare_group = replace(group, items=()) if bare_group is None else bare_group
                made[item.key] = item_job(batch, index, bare_group, item)
    return made


def item_job(batch: Batch, index: int, bare_group, item):
    """The plain data one item's run needs (an item_job.ItemJob): its group without its items,
    its template, what it waits for."""
    plan = batch.plan
    previous = plan.groups[index - 1] if index else None
    group = plan.groups[index]
    return ItemJob(
        taskfile=plan.path,
        workdir=batch.workdir,
        batch_title=plan.title,
        plan_context=batch.plan_context,
        group=bare_group,
        group_index=index,
        item=item,
        settings=group.settings,
        template=batch.templates[group.slug],
        fingerprint=batch.fingerprints[item.key],
        upstream=plan.upstream(item),
        previous=plan.previous(item),
        previous_group_title=previous.title if previous else None,
        untick_first=item.done,
    )
