"""`doit info GROUP:MODULE` for a batch's item: what a person asks of it, in a screenful.
Its state, whether it would run and why, what it waits for, its check, its prompt's first lines
and its last result. It only reads: the plan, the item's records and its output.
"""

from __future__ import annotations

import os
import shlex
import time
from typing import Any

from ..formats import duration, money, plural
from ..state import tool_counts
from ..state.item_status import DONE, FAILED, INTERRUPTED, RUNNING_NOW, UNREADABLE, read_status
from ..state.tails import said_last
from ..tasks import graph

PROMPT_LINES = 8
TAIL_LINES = 5


def describe(batch, job) -> list[str]:
    item = job.item
    folder = batch.state.item(item.group, item.module)
    status = read_status(folder)
    verdict = batch.verdicts[item.key]
    lines = [f"{item.key}  ({batch.plan.path.name} line {item.line}): {item.text}", f"state: {_state(status, item, folder)}"]
    if status.kind == FAILED:
        lines += [f"    {line}" for line in said_last(folder.log, TAIL_LINES)]
    lines.append(f"would run: yes, {verdict.reason}" if verdict.runs else "would run: no, up to date")
    lines.append(f"waits for: {graph.waits_for(batch.plan, item)}")
    lines.append(f"agent: {job.settings['agent']}" + (f", model {job.settings['model']}" if job.settings.get("model") else ""))
    if job.settings.get("check"):
        lines.append(f"its check: {shlex.join(job.settings['check'])}")
    prompt = _prompt(job, batch.state)
    lines.append(f"prompt, its first lines: ({len(prompt)} lines in all)")
    lines += [f"    {line}" for line in prompt[:PROMPT_LINES]]
    lines.append(f"its records: {os.path.relpath(folder.folder)}  (`doit batch-log {item.key}` for its attempts)")
    return lines


def _state(status, item, folder) -> str:
    if status.kind == DONE:
        return "done " + _spent(status.result, folder)
    if status.kind == FAILED and isinstance(status.failure.get("awaiting_review"), dict):
        return f"awaiting review: {status.failure['awaiting_review'].get('waits_for', '')} " + _spent(status.failure, folder)
    if status.kind == FAILED:
        return f"failed: {status.failure.get('reason') or 'see its log'} " + _spent(status.failure, folder)
    if status.kind == INTERRUPTED:
        return "interrupted " + _spent(status.failure, folder)
    if status.kind == RUNNING_NOW:
        running = status.running or {}
        return f"running (attempt {running.get('attempt', 1)}), or left so by a run that was killed"
    if status.kind == UNREADABLE:
        return f"its records cannot be read: {status.problem}"
    return "ticked in task.md" if item.done else "open"


def _spent(record: dict[str, Any] | None, folder) -> str:
    record = record or {}
    parts = []
    if isinstance(record.get("finished"), (int, float)):
        parts.append(time.strftime("at %Y-%m-%d %H:%M:%S", time.localtime(record["finished"])))
    if isinstance(record.get("duration_s"), (int, float)):
        parts.append(f"in {duration(record['duration_s'])}")
    attempts = record.get("attempts") or []
    parts.append(plural(len(attempts), "attempt"))
    if record.get("cost_usd"):
        parts.append(money(record["cost_usd"]))
    last_run = attempts[-1].get("run_id") if attempts and isinstance(attempts[-1], dict) else None
    calls = sum(tool_counts.count(folder.events, last_run).values())
    if calls:
        parts.append(plural(calls, "tool call"))
    return f"({', '.join(parts)})"


def _prompt(job, state) -> list[str]:
    from ..errors import BatchError
    from ..plan import prompt  # the run core: loaded only for an item's info
    from ..run.prompt_context import prompt_context

    try:
        return prompt.render(job.template, prompt_context(job, state, [])).splitlines()
    except BatchError as error:
        return [f"(its template cannot be rendered: {error})"]
