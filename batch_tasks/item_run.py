"""Running one item: the doit action behind every `GROUP:MODULE` task.

In order: wait for a slot of its group, untick it if it changed, render its
prompt, run its agent (output and events appended live to its state folder),
then on success write its result record (the doit target, atomically) and tick
its checkbox. A failed or interrupted item leaves a failure record and its
checkbox open. It is a module-level function fed plain data, so that doit can
hand it to a thread or a process alike.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from doit.exceptions import TaskFailed

from . import checkbox, events, process, prompt, retry
from .agents import AGENTS, PERMANENT, TRANSIENT, WAIT, Outcome
from .budget import Budget
from .errors import BatchError
from .events import AgentEvent
from .plan import Group, Item
from .redaction import Redactor
from .scheduler import SCHEDULER, Turn
from .staleness import stamp, upstream_digest
from .state import BatchState, ItemState, write_json_atomic


# How a failure that is no failure of the item begins: it never started.
NOT_STARTED = "not started: "


@dataclass(slots=True)
class ItemJob:
    """Everything one item's run needs, and nothing of the rest of the plan."""

    taskfile: Path
    batch_title: str
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
    budget: Budget  # shared by every item of the run


@dataclass
class Attempt:
    """One run of the item's agent, as recorded in its result or failure record."""

    number: int
    session_id: str
    started: float
    finished: float = 0.0
    exit_status: int | None = None
    outcome: Outcome | None = None  # None: the run was stopped under it

    def record(self) -> dict[str, Any]:
        outcome = self.outcome or Outcome(ok=False, reason="interrupted")
        return {
            "attempt": self.number,
            "session_id": outcome.data.get("session_id", self.session_id),
            "started": self.started,
            "finished": self.finished,
            "exit_status": self.exit_status,
            "ok": outcome.ok,
            "reason": outcome.reason,
            "failure_class": outcome.failure_class,
            "cost_usd": outcome.data.get("cost_usd"),
            "tokens": outcome.data.get("tokens"),
        }


def run_item(job: ItemJob) -> dict[str, Any] | TaskFailed:
    state = BatchState(job.taskfile)
    folder = state.item(job.item.group, job.item.module)
    try:
        return _run_in_slot(job, state, folder)
    except OSError as error:
        # A full disk or an unwritable state folder: task.md is only ever ticked after a
        # result is safely written, so it is unharmed.
        SCHEDULER.item_failed()
        return TaskFailed(f"cannot keep {job.item.key}'s state in {folder.folder}: {error.strerror or error}")


def _run_in_slot(job: ItemJob, state: BatchState, folder: ItemState) -> dict[str, Any] | TaskFailed:
    os.makedirs(folder.folder, exist_ok=True)
    turn = Turn(job.item.key, job.group.slug, job.group.limit, job.settings["agent"])
    with SCHEDULER.turn(turn) as started:
        if not started:
            return TaskFailed(NOT_STARTED + ("the run was stopped" if process.stopping.is_set() else "an item failed"))
        if not job.budget.allows_another():
            return TaskFailed(NOT_STARTED + f"the batch's budget of ${job.budget.limit:.2f} is spent")
        if job.untick_first:
            checkbox.set_checkbox(job.taskfile, job.group, job.item, False, state.tick_lock)
        outcome = _run(job, state, folder)
    if isinstance(outcome, TaskFailed):
        SCHEDULER.item_failed()
    return outcome


def _run(job: ItemJob, state: BatchState, folder: ItemState) -> dict[str, Any] | TaskFailed:
    run_id = uuid.uuid4().hex
    started = time.time()
    try:
        text = prompt.render(job.template, _prompt_context(job, state))
    except BatchError as error:
        return _failed(job, folder, str(error), [])
    with open(folder.prompt, "w", encoding="utf-8") as stream:
        stream.write(text)
    upstream = _upstream_digest(job.upstream, state)
    folder.set_result_aside()

    run = {"run_id": run_id, "started": started, "fingerprint": dict(job.fingerprint), "upstream": upstream}
    attempts = _attempts(job, folder, run, text)
    attempt = attempts[-1]
    if attempt.outcome is None:
        return _interrupted(job, folder, attempts)
    if not attempt.outcome.ok:
        return _failed(job, folder, attempt.outcome.reason, attempts)
    record = success_record(run, job.settings, [a.record() for a in attempts], attempt.outcome, job.item.key)
    if not record_success(job.taskfile, job.group, job.item, state, record):
        return TaskFailed(
            f"{job.item.key} succeeded, but its line in {job.taskfile.name} changed while it ran, "
            "so it was not ticked; the next run will run it again as changed"
        )
    return {"run_id": run_id}


_digests: dict[int, str] = {}
_digests_lock = threading.Lock()


def _upstream_digest(upstream: tuple[Item, ...], state: BatchState) -> str:
    """What the item was made from, upstream. Items that wait for the same things share
    one tuple, all of it finished before any of them starts: one reading serves them all
    (a group of 100 behind a group of 100 reads 100 records, not 10,000)."""
    with _digests_lock:
        if id(upstream) in _digests:
            return _digests[id(upstream)]
    digest = upstream_digest((d.key, stamp(state.item(d.group, d.module).read_result(), d)) for d in upstream)
    with _digests_lock:
        _digests[id(upstream)] = digest
    return digest


def success_record(run: dict[str, Any], settings, attempts: list[dict], outcome: Outcome, key: str) -> dict[str, Any]:
    finished = time.time()
    return {
        "item": key,
        "run_id": run["run_id"],
        "agent": settings["agent"],
        "model": outcome.data.get("model") or settings.get("model"),
        "session_id": attempts[-1]["session_id"],
        "exit_status": attempts[-1]["exit_status"],
        "started": run["started"],
        "finished": finished,
        "duration_s": round(finished - run["started"], 3),
        "attempts": attempts,
        "cost_usd": _total(a["cost_usd"] for a in attempts),
        "tokens": _sum_tokens(a["tokens"] for a in attempts),
        "fingerprint": run["fingerprint"],
        "upstream": run["upstream"],
        "result_text": outcome.result_text,
        "ticked": False,
    }


def record_success(taskfile: Path, group: Group, item: Item, state: BatchState, record: dict[str, Any]) -> bool:
    """Write the result (the paid-for success, first and durably), then tick; False if the
    item's line is no longer in task.md as it was."""
    folder = state.item(item.group, item.module)
    write_json_atomic(folder.result, record, durable=True)
    folder.remove(folder.failure, folder.forgotten, folder.running)
    events.publish("item_finished", item.key, record)
    if not checkbox.set_checkbox(taskfile, group, item, True, state.tick_lock):
        return False
    write_json_atomic(folder.result, {**record, "ticked": True})
    return True


def _attempts(job: ItemJob, folder: ItemState, run: dict[str, Any], text: str) -> list[Attempt]:
    """Attempt after attempt, as the cause of each failure says (see retry), until one
    succeeds, one fails for good, or the run stops."""
    agent = job.settings["agent"]
    attempts: list[Attempt] = []
    transient_retries = waits = 0
    delay = 0.0
    while True:
        if not retry.wait(delay, agent):
            attempts.append(Attempt(len(attempts) + 1, "", time.time()))  # stopped while waiting
            return attempts
        attempt = _attempt(job, folder, {**run, "earlier": [a.record() for a in attempts]}, text, len(attempts) + 1)
        attempts.append(attempt)
        job.budget.spend(attempt.record()["cost_usd"])
        if attempt.outcome is None or attempt.outcome.ok:
            return attempts
        failure = retry.failure_class(attempt.outcome, attempt.exit_status, job.settings)
        attempt.outcome.failure_class = failure
        decision = retry.decide(attempt.outcome, failure, transient_retries, waits, job.settings)
        if not decision.retry:
            return attempts
        if failure == WAIT and attempt.outcome.retry_at is not None:
            waits += 1
            retry.pause(agent, attempt.outcome.retry_at)
        else:
            transient_retries += 1
        delay = decision.delay
        notice = f"{attempt.outcome.reason}: {decision.why}"
        events.publish("item_event", job.item.key, AgentEvent("retry", notice, {"failure_class": failure}))
        with open(folder.log, "ab") as log:
            log.write(f"=== {job.item.key} attempt {attempt.number} failed ({failure}): {notice} ===\n".encode())


def _attempt(job: ItemJob, folder: ItemState, run: dict[str, Any], text: str, number: int) -> Attempt:
    """Run the agent once; its output goes to output.log, its events to events.jsonl, as they come."""
    agent = AGENTS[job.settings["agent"]]
    attempt = Attempt(number=number, session_id=str(uuid.uuid4()), started=time.time())
    context = {
        "module": job.item.module,
        "group": job.item.group,
        "prompt_file": folder.prompt,
        "session_id": attempt.session_id,
    }
    env = {
        **os.environ,
        **agent.environment(job.settings),
        "BATCH_GROUP": job.item.group,
        "BATCH_MODULE": job.item.module,
        "BATCH_ITEM": job.item.key,
        "BATCH_PROMPT_FILE": folder.prompt,
        "BATCH_ATTEMPT": str(number),
        "BATCH_RUN_ID": run["run_id"],
    }
    reader = agent.reader(job.settings)
    key = job.item.key
    result_seen = threading.Event()

    with open(folder.log, "ab") as log, open(folder.events, "a", encoding="utf-8") as event_log:

        def record_event(event: AgentEvent) -> None:
            event_log.write(json.dumps({"t": round(time.time(), 3), "attempt": number, **event.to_json()}) + "\n")
            event_log.flush()
            events.publish("item_event", key, event)

        def on_line(line: str) -> None:
            for event in reader.feed(line):
                record_event(event)
                if event.kind == "result":
                    result_seen.set()

        def on_start(agent_process) -> None:
            # All a later run needs to finish this attempt's item if this run is killed.
            write_json_atomic(
                folder.running,
                {
                    **run,
                    "attempt": number,
                    "session_id": attempt.session_id,
                    "attempt_started": attempt.started,
                    "runner_pid": os.getpid(),
                    "pid": agent_process.pid,
                    "create_time": agent_process.create_time(),
                },
            )
            events.publish("item_started", key, number, folder.log)

        log.write(f"=== {key} attempt {number} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        try:
            ended = process.run(
                agent.argv(job.settings, context),
                cwd=job.taskfile.parent,
                env=env,
                stdin=text.encode("utf-8"),
                log=log,
                on_line=on_line,
                on_start=on_start,
                timeout=job.settings["timeout"],
                idle_timeout=job.settings["idle_timeout"],
                finished=result_seen.is_set,
                redact=_redactor(),
            )
        except process.StoppedError:
            return attempt
        except OSError as error:
            log.write(f"cannot start the agent: {error}\n".encode())
            attempt.outcome = Outcome(ok=False, reason=f"cannot start: {error.strerror or error}", failure_class=PERMANENT)
            return attempt
        finally:
            attempt.finished = time.time()
        # At once, before anything else: a run killed from here on can finish the item from its log.
        record_event(AgentEvent("exit", data={"status": ended.status, "stopped_for": ended.stopped_for}))
    attempt.exit_status = ended.status
    if process.stopping.is_set() and ended.status < 0:
        return attempt  # stopped with the run: no outcome
    if ended.stopped_for is None:
        attempt.outcome = reader.outcome(ended.status)
    elif result_seen.is_set():
        attempt.outcome = reader.outcome(0)  # it said how it ended, then lingered: its word counts
    else:
        attempt.outcome = Outcome(ok=False, reason=ended.stopped_for, failure_class=TRANSIENT)
    return attempt


@lru_cache(maxsize=1)
def _redactor() -> Redactor:
    return Redactor(os.environ)


def _total(values) -> float | None:
    known = [value for value in values if value is not None]
    return round(sum(known), 6) if known else None


def _sum_tokens(per_attempt) -> dict[str, int] | None:
    totals: dict[str, int] = {}
    for tokens in per_attempt:
        for name, count in (tokens or {}).items():
            totals[name] = totals.get(name, 0) + (count or 0)
    return totals or None


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


def _failed(job: ItemJob, folder: ItemState, reason: str, attempts: list[Attempt]) -> TaskFailed:
    record = {
        "item": job.item.key,
        "reason": reason,
        "attempts": [a.record() for a in attempts],
        "cost_usd": _total(a.record()["cost_usd"] for a in attempts),
        "finished": time.time(),
    }
    write_json_atomic(folder.failure, record)
    folder.remove(folder.running)
    events.publish("item_finished", job.item.key, {**record, "failed": True})
    return TaskFailed(f"{reason}; log: {folder.log}")


def _interrupted(job: ItemJob, folder: ItemState, attempts: list[Attempt]) -> TaskFailed:
    record = {"item": job.item.key, "reason": "the run was stopped", "interrupted": True, "finished": time.time()}
    write_json_atomic(folder.failure, {**record, "attempts": [a.record() for a in attempts]})
    folder.remove(folder.running)
    return TaskFailed("interrupted: the run was stopped")
