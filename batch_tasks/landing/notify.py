"""`notify:` a command (a list, no shell) run on the events a person cares about, with one
JSON object on its standard input:

    {"event": "awaiting_review", "item": "g:m", "text": "g:m awaits your review: doit batch-review g:m",
     "taskfile": "/path/task.md", "run_id": "…", "at": 1765000000.0, …}

The events: `awaiting_review` (with `command`), `paused` (an agent's usage limit: `agent`,
`until`), `failed` (an item, with `reason`), `budget_spent` (once a run), `run_ended` (with
`exit_status`, `done`, `failed`, `awaiting_review`). `{event}`, `{item}` and `{text}` in the
command's arguments are replaced, for a program that takes its message as an argument
(notify-send). Secrets are masked in all of it.

A notification never holds the run up: each command runs beside it (at most NOTIFY_SECONDS,
then it is killed), and one that fails is said once, on standard error. The run waits for
the last ones (its end) before it exits. Touches nothing but the processes it starts.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any, Callable, Sequence

from ..redaction import Redactor

NOTIFY_SECONDS = 30.0
AWAITING_REVIEW, PAUSED, FAILED, BUDGET_SPENT, RUN_ENDED = (
    "awaiting_review", "paused", "failed", "budget_spent", "run_ended")


class Notifier:
    """A listener of the run's hub (see events.Hub) that tells the `notify` command."""

    def __init__(self, argv: Sequence[str], taskfile: str, run_id: str, redactor: Redactor,
                 report_error: Callable[[str], None], review_command: Callable[[str], str]):
        self.argv, self.taskfile, self.run_id = tuple(argv), taskfile, run_id
        self.redactor, self.report_error, self.review_command = redactor, report_error, review_command
        self._threads: list[threading.Thread] = []
        self._budget_told = False
        self._failed_once = False
        self._lock = threading.Lock()

    # From the run's hub.
    def item_awaiting_review(self, key: str, awaiting: dict[str, Any]) -> None:
        command = awaiting["waits_for"] if awaiting.get("pull_request") is not None else self.review_command(key)
        self.send(AWAITING_REVIEW, f"{key} awaits your review: {command}", item=key, command=command,
                  commit=awaiting.get("commit"), cost_usd=awaiting.get("cost_usd"))

    def agent_paused(self, agent: str, until: float) -> None:
        resumes = time.strftime("%H:%M", time.localtime(until))
        self.send(PAUSED, f"{agent} hit a usage limit: its items wait until {resumes}", agent=agent, until=until)

    def item_finished(self, key: str, record: dict[str, Any]) -> None:
        if record.get("failed"):
            self.send(FAILED, f"{key} failed: {record.get('reason', '')}", item=key, reason=record.get("reason", ""))

    def item_not_started(self, key: str, why: str) -> None:
        with self._lock:
            told, self._budget_told = self._budget_told, self._budget_told or "budget" in why
        if "budget" in why and not told:
            self.send(BUDGET_SPENT, f"no more items start: {why}", reason=why)

    def run_ended(self, exit_status: int, counts: dict[str, int]) -> None:
        said = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items() if count)
        self.send(RUN_ENDED, f"the batch ended (exit status {exit_status}): {said or 'nothing ran'}",
                  exit_status=exit_status, **counts)
        self.wait()

    # Telling.
    def send(self, event: str, text: str, item: str = "", **data: Any) -> None:
        message = self.redactor.value({"event": event, "item": item, "text": text, "taskfile": self.taskfile,
                                       "run_id": self.run_id, "at": time.time(), **data})
        fields = {"event": event, "item": item, "text": message["text"]}
        argv = [self.redactor.text(_filled(arg, fields)) for arg in self.argv]
        thread = threading.Thread(target=self._run, args=(argv, json.dumps(message) + "\n"), name="notify", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _run(self, argv: list[str], message: str) -> None:
        try:
            done = subprocess.run(argv, input=message, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=NOTIFY_SECONDS)
            failure = f"exit status {done.returncode}: {done.stderr.strip()[-200:]}" if done.returncode else None
        except subprocess.TimeoutExpired:
            failure = f"it ran over {NOTIFY_SECONDS:.0f}s and was stopped"
        except OSError as error:
            failure = error.strerror or str(error)
        if failure is not None:
            with self._lock:
                told, self._failed_once = self._failed_once, True
            if not told:  # once: a notifier that is down would say so at every event
                self.report_error(self.redactor.text(f"notify: {argv[0]} failed ({failure})"))

    def wait(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(NOTIFY_SECONDS + 1)


def _filled(arg: str, fields: dict[str, str]) -> str:
    for name, value in fields.items():
        arg = arg.replace("{" + name + "}", value)
    return arg
