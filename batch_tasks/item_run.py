"""Running one item: the doit action behind every `GROUP:MODULE` task.

In order: untick it if it changed, render its prompt, run its agent (output
appended live to its log), then on success write its result record (the doit
target, atomically) and tick its checkbox. A failed or interrupted item leaves a
failure record and its checkbox open. It is a module-level function fed plain
data, so that doit can hand it to a thread or a process alike.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from doit.exceptions import TaskFailed

from . import checkbox, process, prompt
from .agents import AGENTS, Outcome
from .errors import BatchError
from .plan import Group, Item
from .state import BatchState, ItemState, write_json_atomic
from .staleness import stamp, upstream_digest


@dataclass(slots=True)
class ItemJob:
    """Everything one item's run needs, and nothing of the rest of the plan."""

    taskfile: Path
    batch_title: str
    group: Group  # its items are not carried along: see doit_tasks.item_job
    group_index: int
    item: Item
    settings: Mapping[str, Any]
    template: prompt.Template
    fingerprint: Mapping[str, str]
    upstream: tuple[Item, ...]
    previous: Item | None
    previous_group_title: str | None
    untick_first: bool  # it is ticked but stale: open its checkbox while it runs


def run_item(job: ItemJob) -> dict[str, Any] | TaskFailed:
    state = BatchState(job.taskfile)
    folder = state.item(job.item.group, job.item.module)
    os.makedirs(folder.folder, exist_ok=True)
    if process.stopping.is_set():
        return TaskFailed("interrupted: the run was stopped before it started")
    if job.untick_first:
        checkbox.set_checkbox(job.taskfile, job.group, job.item, False, state.tick_lock)
    with _group_slot(job.group) as acquired:
        if not acquired:
            return TaskFailed("interrupted: the run was stopped before it started")
        return _run(job, state, folder)


def _run(job: ItemJob, state: BatchState, folder: ItemState) -> dict[str, Any] | TaskFailed:
    run_id = uuid.uuid4().hex
    started = time.time()
    try:
        text = prompt.render(job.template, _prompt_context(job, state))
    except BatchError as error:
        return _failed(folder, str(error), started)
    with open(folder.prompt, "w", encoding="utf-8") as stream:
        stream.write(text)
    upstream = upstream_digest((d.key, stamp(state.item(d.group, d.module).read_result(), d)) for d in job.upstream)

    folder.set_result_aside()
    outcome, exit_status = _run_agent(job, folder, run_id, text)
    if outcome is None:
        return _interrupted(folder, "the run was stopped")
    if not outcome.ok:
        return _failed(folder, outcome.reason, started, exit_status)

    record = {
        "item": job.item.key,
        "run_id": run_id,
        "agent": job.settings["agent"],
        "exit_status": exit_status,
        "started": started,
        "finished": time.time(),
        "duration_s": round(time.time() - started, 3),
        "fingerprint": dict(job.fingerprint),
        "upstream": upstream,
        "result_text": outcome.result_text,
        **outcome.data,
        "ticked": False,
    }
    write_json_atomic(folder.result, record, durable=True)
    folder.remove(folder.failure, folder.forgotten, folder.running)
    if not checkbox.set_checkbox(job.taskfile, job.group, job.item, True, state.tick_lock):
        return TaskFailed(
            f"{job.item.key} succeeded, but its line in {job.taskfile.name} changed while it ran, "
            "so it was not ticked; the next run will run it again as changed"
        )
    write_json_atomic(folder.result, {**record, "ticked": True})
    return {"run_id": run_id}


_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


@contextmanager
def _group_slot(group: Group):
    """Hold one of the group's `parallel` slots while the item runs; False if the run stops first."""
    if group.limit is None:
        yield True
        return
    with _slots_lock:
        slots = _slots.setdefault(group.slug, threading.BoundedSemaphore(group.limit))
    while not slots.acquire(timeout=0.1):
        if process.stopping.is_set():
            yield False
            return
    try:
        yield True
    finally:
        slots.release()


def _run_agent(job: ItemJob, folder: ItemState, run_id: str, text: str):
    """(outcome, exit status), or (None, None) if the run is stopping."""
    agent = AGENTS[job.settings["agent"]]
    context = {
        "module": job.item.module,
        "group": job.item.group,
        "prompt_file": folder.prompt,
        "session_id": str(uuid.uuid4()),
    }
    env = {
        **os.environ,
        "BATCH_GROUP": job.item.group,
        "BATCH_MODULE": job.item.module,
        "BATCH_ITEM": job.item.key,
        "BATCH_PROMPT_FILE": folder.prompt,
        "BATCH_ATTEMPT": "1",
        "BATCH_RUN_ID": run_id,
    }
    reader = agent.reader()

    def on_start(agent_process) -> None:
        write_json_atomic(
            folder.running,
            {
                "run_id": run_id,
                "runner_pid": os.getpid(),
                "pid": agent_process.pid,
                "create_time": agent_process.create_time(),
            },
        )

    with open(folder.log, "ab") as log:
        log.write(f"=== {job.item.key} attempt 1 at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        try:
            exit_status = process.run(
                agent.argv(job.settings, context),
                cwd=job.taskfile.parent,
                env=env,
                stdin=text.encode("utf-8"),
                log=log,
                on_line=reader.feed,
                on_start=on_start,
            )
        except process.StoppedError:
            return None, None
        except OSError as error:
            log.write(f"cannot start the agent: {error}\n".encode())
            return _cannot_start(error), None
    if process.stopping.is_set() and exit_status < 0:
        return None, None
    return reader.outcome(exit_status), exit_status


def _cannot_start(error: OSError) -> Outcome:
    return Outcome(ok=False, reason=f"cannot start: {error.strerror or error}")


def _prompt_context(job: ItemJob, state: BatchState) -> dict[str, Any]:
    item = job.item
    context: dict[str, Any] = {
        "batch": {"title": job.batch_title, "path": str(job.taskfile)},
        "group": {"slug": job.group.slug, "title": job.group.title, "index": job.group_index},
        "item": {
            "key": item.key,
            "module": item.module,
            "text": item.text,
            "body": item.body,
            "instruction": item.instruction,
            "line": item.line,
        },
        "previous": None,
    }
    if job.previous is not None:
        record = state.item(job.previous.group, job.previous.module).read_result() or {}
        context["previous"] = {
            "group": job.previous.group,
            "group_title": job.previous_group_title,
            "module": job.previous.module,
            "instruction": job.previous.instruction,
            "result_text": record.get("result_text", ""),
            "result": record,
        }
    return context


def _failed(folder: ItemState, reason: str, started: float, exit_status: int | None = None) -> TaskFailed:
    write_json_atomic(
        folder.failure,
        {"reason": reason, "exit_status": exit_status, "started": started, "finished": time.time()},
    )
    folder.remove(folder.running)
    return TaskFailed(f"{reason}; log: {folder.log}")


def _interrupted(folder: ItemState, reason: str) -> TaskFailed:
    write_json_atomic(folder.failure, {"reason": reason, "interrupted": True, "finished": time.time()})
    folder.remove(folder.running)
    return TaskFailed(f"interrupted: {reason}")
