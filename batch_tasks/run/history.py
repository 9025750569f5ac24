"""The history of runs: what each attempt of each item did in each `doit run-batch`,
appended as it happens, so that a killed run's history is kept too, up to the kill.

It may touch only `.batch/<task file stem>/runs/`, one file per run, never rewritten:

    runs/<run id>.jsonl       one JSON object a line, in the order things happened

A run id (run.new_run_id) is the run's start time in UTC and a random tail (`20260101T120000Z-3f9a1c`),
so that ids sort as runs began. Every line has `event` and `t` (Unix time it was
written); the rest depends on the event:

    run_started      run, command_line (list), versions ({batch-tasks, doit, python,
                     and each agent CLI used: its `--version`}), settings (the front
                     matter's), title, taskfile, workers (-n), items (the keys it means to run),
                     forecast (item → its forecast in USD, null if unknown; see forecast)
    attempt_started  item, attempt (1, 2, ...), started
    attempt_ended    item, attempt, started, finished, exit_status, ok, reason,
                     failure_class (transient, wait, permanent, or null), tokens, cost_usd,
                     session_id: the attempt's record, as in result.json's `attempts`
    retry_scheduled  item, attempt (the one that failed), cause, at (when the next may start)
    paused           agent, until: no attempt of that agent starts before then (a usage limit)
    step             item, attempt, step (setup, agent, check, review, awaiting review, waiting to
                     merge, merging: see events.py),
                     text (what it does there): an item that lands its work reached that step
    item_finished    item, outcome (done, failed, interrupted, not started, awaiting review), why,
                     duration_s, cost_usd, tokens, attempts (count), model
    run_ended        totals: {done, failed, interrupted, not_started, attempts, cost_usd,
                     and what the runner adds: exit_status, stopped_by}

A run without `run_ended` was killed: its last line says how far it got. Each line is
one `write` to a file opened with O_APPEND, so lines never interleave and a kill leaves
at most one cut last line, which readers skip. Secrets are masked as in every record.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from ..agents import AGENTS
from ..formats import duration, money
from ..processes.started import process_started
from ..redaction import Redactor
from ..state.item_machine import AWAITING_REVIEW, FAILED, INTERRUPTED
from ..state.item_status import DONE
from ..state.state import open_to_read, read_json

RUNS = "runs"
NOT_STARTED = "not started"
VERSION_TIMEOUT_S = 10.0


def runs_folder(state_root: Path | str) -> Path:
    return Path(state_root) / RUNS


class History:
    """Appends one run's events to `runs/<run id>.jsonl`. Thread-safe: item runs call it
    from their threads. Every method is one line; a failure to write raises OSError,
    which the caller's event hub keeps from failing an item."""

    def __init__(self, state_root: Path | str, run_id: str, environ=os.environ):
        self.run_id = run_id
        self.path = runs_folder(state_root) / f"{run_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._redact = Redactor(environ)
        self._lock = threading.Lock()
        self._totals = {DONE: 0, FAILED: 0, INTERRUPTED: 0, NOT_STARTED: 0, "attempts": 0, "cost_usd": 0.0}
        # O_NOFOLLOW: .batch is the workspace's, and a symlink there is not ours to follow.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)

    def _append(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": round(time.time(), 3), **fields}, default=str, ensure_ascii=False)
        data = self._redact(line.encode("utf-8")) + b"\n"
        with self._lock:
            os.write(self._fd, data)  # one write a line: O_APPEND keeps it whole

    def run_started(self, meta: dict[str, Any]) -> None:
        self._append("run_started", run=self.run_id, **meta)

    def attempt_started(self, key: str, attempt: int, started: float) -> None:
        self._append("attempt_started", item=key, attempt=attempt, started=started)

    def attempt_ended(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._totals["attempts"] += 1
            self._totals["cost_usd"] += record.get("cost_usd") or 0.0
        self._append("attempt_ended", item=key, **record)

    def retry_scheduled(self, key: str, attempt: int, cause: str, at: float) -> None:
        self._append("retry_scheduled", item=key, attempt=attempt, cause=cause, at=at)

    def step(self, key: str, attempt: int, step: str, text: str) -> None:
        self._append("step", item=key, attempt=attempt, step=step, text=text)

    def paused(self, agent: str, until: float) -> None:
        self._append("paused", agent=agent, until=until)

    def item_finished(self, key: str, outcome: str, record: dict[str, Any] | None, why: str = "") -> None:
        record = record or {}
        with self._lock:
            self._totals[outcome] = self._totals.get(outcome, 0) + 1
        self._append(
            "item_finished",
            item=key,
            outcome=outcome,
            why=why,
            duration_s=record.get("duration_s"),
            cost_usd=record.get("cost_usd"),
            tokens=record.get("tokens"),
            attempts=len(record.get("attempts") or ()),
            model=record.get("model"),  # the one that answered: what a forecast prices its tokens at
        )

    def run_ended(self, totals: dict[str, Any]) -> None:
        with self._lock:
            own = {**self._totals, "cost_usd": round(self._totals["cost_usd"], 6)}
        self._append("run_ended", totals={**own, **totals})
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class Recorders:
    """The run's hub listener that keeps its history (and a joblog): it hears the hub's
    events and writes each to every recorder, in the recorders' own terms."""

    def __init__(self, *recorders):
        self.recorders = [recorder for recorder in recorders if recorder is not None]

    def _each(self, method: str, *args) -> None:
        for recorder in self.recorders:
            getattr(recorder, method)(*args)

    def run_started(self, meta: dict[str, Any]) -> None:
        self._each("run_started", meta)

    def run_ended(self, totals: dict[str, Any]) -> None:
        self._each("run_ended", totals)

    # The hub's events (see events.Listener).
    def attempt_started(self, key: str, attempt: int, started: float) -> None:
        self._each("attempt_started", key, attempt, started)

    def attempt_ended(self, key: str, record: dict[str, Any]) -> None:
        self._each("attempt_ended", key, record)

    def item_retrying(self, key: str, attempt: int, cause: str, at: float) -> None:
        self._each("retry_scheduled", key, attempt, cause, at)

    def item_step(self, key: str, attempt: int, step: str, text: str) -> None:
        self._each("step", key, attempt, step, text)

    def agent_paused(self, agent: str, until: float) -> None:
        self._each("paused", agent, until)

    def item_finished(self, key: str, record: dict[str, Any]) -> None:
        if record.get("interrupted"):
            self._each("item_finished", key, "interrupted", record, "the run was stopped")
        elif record.get("failed"):
            self._each("item_finished", key, "failed", record, record.get("reason", ""))
        else:
            self._each("item_finished", key, "done", record, "")

    def item_not_started(self, key: str, why: str) -> None:
        self._each("item_finished", key, "not started", None, why)

    def item_awaiting_review(self, key: str, awaiting: dict[str, Any]) -> None:
        # Its last word in this run unless its decision comes while the run goes on. Imported
        # here: the review's module brings GitHub's client, which a forecast, reading history, never needs.
        from ..landing.review import review_command

        self._each("item_finished", key, AWAITING_REVIEW, None, f"review it: {review_command(key)}")


def run_meta(batch, argv: list[str], workers: int, will_run: Iterable[str]) -> dict[str, Any]:
    """What `run_started` records for a batch about to run `will_run`."""

    planned = set(will_run)
    agents = sorted({g.settings["agent"] for g in batch.plan.groups if any(i.key in planned for i in g.items)})
    return {
        "command_line": list(argv),
        "versions": versions(agents),
        "settings": dict(batch.plan.settings),
        "title": batch.plan.title,
        "taskfile": str(batch.plan.path),
        "workers": workers,
        "items": [item.key for item in batch.plan.items() if item.key in planned],
        "began": process_started(),  # the run's time counts from here, as its summary's does
    }


def versions(agents: Iterable[str]) -> dict[str, str]:
    """batch-tasks', doit's and Python's versions, and each agent CLI's own word (`--version`)."""
    found = {name: _package_version(name) for name in ("batch-tasks", "doit")}
    found["python"] = platform.python_version()
    programs = {name: AGENTS[name].executable for name in agents if AGENTS[name].executable}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(programs))) as pool:
        for name, version in zip(programs, pool.map(_cli_version, programs.values())):
            found[name] = version
    return found


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _cli_version(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        return "not found"
    try:
        ended = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=VERSION_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (ended.stdout or ended.stderr).strip().splitlines()
    return lines[0][:120] if lines else "unknown"


# Reading.
def run_ids(state_root: Path | str) -> list[str]:
    """Past runs' ids, oldest first."""
    try:
        names = os.listdir(runs_folder(state_root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name.removesuffix(".jsonl") for name in names if name.endswith(".jsonl"))


def read_run(state_root: Path | str, run_id: str) -> list[dict[str, Any]]:
    """One run's events, skipping what is not a whole JSON object (a killed run's cut last line)."""
    path = runs_folder(state_root) / f"{run_id}.jsonl"
    with open_to_read(str(path)) as stream:
        lines = stream.read().splitlines()
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            events.append(event)
    return events


def run_summary(run_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """When a run began and ended, what it did, what it cost; `killed` if it never said it ended."""
    opened = next((e for e in events if e["event"] == "run_started"), events[0] if events else None)
    # From its process's start, as its summary counts (a run recorded before `began` was, from its first event).
    started = (opened.get("began") or opened["t"]) if opened else None
    ended = next((e for e in reversed(events) if e["event"] == "run_ended"), None)
    finished = [e for e in events if e["event"] == "item_finished"]
    count = {outcome: sum(1 for e in finished if e.get("outcome") == outcome) for outcome in (DONE, FAILED, INTERRUPTED)}
    costs = [e["cost_usd"] for e in events if e["event"] == "attempt_ended" and e.get("cost_usd") is not None]
    return {
        "run": run_id,
        "started": started,
        "ended": ended["t"] if ended else None,
        "last_event": events[-1]["t"] if events else None,
        "killed": ended is None,
        "attempts": sum(1 for e in events if e["event"] == "attempt_ended"),
        "cost_usd": round(sum(costs), 6) if costs else None,
        **count,
    }


def runs_table(state_root: Path | str) -> str:
    """Past runs, oldest first: when, how long, done/failed, cost (`doit batch-status --runs`)."""
    ids = run_ids(state_root)
    if not ids:
        return "no runs recorded yet\n"
    rows = [("run", "started", "took", "done", "failed", "interrupted", "attempts", "cost")]
    running = _held(state_root)
    for run_id in ids:
        try:
            summary = run_summary(run_id, read_run(state_root, run_id))
        except OSError:
            continue
        began = summary["started"]
        end = summary["ended"] or summary["last_event"]
        took = duration(end - began) if began and end else "-"
        rows.append((
            run_id,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(began)) if began else "-",
            took + (("" if not summary["killed"] else " (running)" if running and run_id == ids[-1] else " (killed)")),
            str(summary[DONE]),
            str(summary[FAILED]),
            str(summary[INTERRUPTED]),
            str(summary["attempts"]),
            money(summary["cost_usd"]) or "-",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)


def _held(state_root: Path | str) -> bool:
    """Whether a run holds the batch now (state.lock_holder's reading of run.lock)."""
    from ..state.process_identity import is_same_process

    holder = read_json(Path(state_root) / "run.lock")
    try:
        return is_same_process(holder["pid"], holder["create_time"])
    except (TypeError, KeyError):
        return False
