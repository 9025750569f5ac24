"""`notify:`: a command told, with one JSON object on its standard input, of what a person
cares about: an item awaiting review (see test_review), a usage-limit pause, a failure, the
budget spent, the run's end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import FRONT_MATTER

from batch_tasks.landing.notify import Notifier
from batch_tasks.redaction import Redactor

WRITER = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + ' ' + sys.stdin.read())"


def notify_argv(log: Path) -> list[str]:
    return [sys.executable, "-c", WRITER, str(log), "{event}"]


def told(log: Path) -> list[tuple[str, dict]]:
    if not log.exists():
        return []
    pairs = [line.split(" ", 1) for line in log.read_text().splitlines()]
    return [(argument, json.loads(message)) for argument, message in pairs]


def test_each_event_reaches_the_command_once_with_its_json_and_secrets_masked(tmp_path):
    log, errors = tmp_path / "told.log", []
    notifier = Notifier(notify_argv(log), "/plans/task.md", "RUN", Redactor({"API_TOKEN": "sk-very-secret-token"}),
                        errors.append, lambda key: f"doit batch-review {key}")
    notifier.item_awaiting_review("g:a", {"commit": "c0ffee", "cost_usd": 0.25})
    notifier.agent_paused("claude", 1_900_000_000.0)
    notifier.item_finished("g:b", {"failed": True, "reason": "exit status 1: sk-very-secret-token"})
    notifier.item_finished("g:c", {"ticked": True})  # a success tells no one
    notifier.item_not_started("g:d", "the batch's budget of $1.00 is spent")
    notifier.item_not_started("g:e", "the batch's budget of $1.00 is spent")  # once a run
    notifier.run_ended(1, {"done": 1, "failed": 1, "awaiting_review": 1, "interrupted": 0})
    events = told(log)
    assert sorted(argument for argument, _ in events) == sorted(
        ["awaiting_review", "paused", "failed", "budget_spent", "run_ended"])
    by_event = {message["event"]: message for _, message in events}
    assert by_event["awaiting_review"]["command"] == "doit batch-review g:a"
    assert by_event["awaiting_review"]["item"] == "g:a" and by_event["awaiting_review"]["run_id"] == "RUN"
    assert by_event["paused"]["agent"] == "claude" and by_event["paused"]["until"] == 1_900_000_000.0
    assert by_event["run_ended"]["exit_status"] == 1 and "1 done, 1 failed, 1 awaiting review" in by_event[
        "run_ended"]["text"]
    assert "sk-very-secret-token" not in log.read_text()
    assert errors == []


def test_a_notify_command_that_fails_is_said_once_and_holds_nothing_up(tmp_path):
    errors = []
    notifier = Notifier([str(tmp_path / "no-such-program")], "task.md", "RUN", Redactor({}), errors.append, str)
    notifier.item_finished("g:a", {"failed": True, "reason": "x"})
    notifier.run_ended(1, {"failed": 1})
    assert len(errors) == 1 and errors[0].startswith("notify: ") and "no-such-program" in errors[0]


def test_a_run_tells_notify_of_a_pause_a_failure_and_its_end(batch):
    log = tmp = batch.path / "told.log"
    front = FRONT_MATTER.replace("---\n", f"---\nnotify: {json.dumps(notify_argv(tmp))}\nretries: 0\n", 1)
    batch.write("# T\n## G\n- [ ] m0: pauses once\n- [ ] m1: fails\n", front)
    batch.behave(m0={"attempts": {"1": {"limit_in": 0.5}}}, m1={"exit": 1})
    result = batch.run("run-batch")
    assert result.returncode == 1, result.stdout + result.stderr
    events = {argument: message for argument, message in told(log)}
    assert set(events) == {"paused", "failed", "run_ended"}
    assert events["failed"]["item"] == "g:m1" and events["run_ended"]["exit_status"] == 1
    assert events["run_ended"]["done"] == 1 and events["run_ended"]["failed"] == 1
