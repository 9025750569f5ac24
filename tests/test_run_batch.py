"""`doit run-batch` end to end: items run group after group, succeed, tick, fail, and say so."""

import json
import os
import sys
import time

from conftest import FRONT_MATTER

SAMPLE = """\
# Split the monolith

## Inventory
- [ ] auth: list the public functions of `src/auth/`
- [ ] billing: list the public functions of `src/billing/`
  Also note any global state.

## Extract interfaces
<!-- parallel: false -->
- [ ] auth: extract an `AuthService` protocol
- [x] billing: extract a `Billing` protocol
"""


def test_runs_open_items_ticks_them_and_a_second_run_does_nothing(batch):
    batch.write(SAMPLE)
    first = batch.run("run-batch", "-n", "4")
    assert first.returncode == 0, first.stdout + first.stderr
    assert batch.runs() == {"inventory:auth": 1, "inventory:billing": 1, "extract-interfaces:auth": 1}
    text = batch.taskfile.read_text()
    assert "- [x] auth: list the public functions" in text
    assert "- [x] billing: list the public functions" in text
    assert "- [x] auth: extract an `AuthService` protocol" in text
    assert "3 done, 0 failed, 1 already done" in first.stdout

    second = batch.run("run-batch", "-n", "4")
    assert second.returncode == 0
    assert batch.runs() == {"inventory:auth": 1, "inventory:billing": 1, "extract-interfaces:auth": 1}
    assert "0 done, 0 failed, 4 already done" in second.stdout


def test_groups_run_in_order(batch):
    batch.write(SAMPLE)
    batch.behave(**{"*": {"sleep": 0.3}})
    assert batch.run("run-batch", "-n", "4").returncode == 0
    times = {}
    for line in (batch.path / "runs.log").read_text().splitlines():
        event, item, _, moment = line.split()
        times[(event, item)] = float(moment)
    later_start = times[("start", "extract-interfaces:auth")]
    assert later_start > times[("done", "inventory:auth")]
    assert later_start > times[("done", "inventory:billing")]


def test_item_gets_its_prompt_arguments_and_environment_without_a_shell(batch):
    batch.write(
        """\
        # T
        ## Inventory
        - [ ] $(touch${IFS}pwned);x: look at it
        """
    )
    batch.behave(**{"*": {"write": "prompt-seen.md"}})
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (batch.path / "pwned").exists()
    log = (batch.state("inventory", "$(touch${IFS}pwned);x") / "output.log").read_text()
    assert "argv ['$(touch${IFS}pwned);x', 'inventory']" in log
    prompt = (batch.path / "prompt-seen.md").read_text()
    assert "Module: $(touch${IFS}pwned);x" in prompt
    assert "look at it" in prompt


def test_environment_names_the_item(batch):
    script = "import os; print(*[os.environ[k] for k in ('BATCH_GROUP','BATCH_MODULE','BATCH_ITEM','BATCH_ATTEMPT')]); print(open(os.environ['BATCH_PROMPT_FILE']).read())"
    batch.write(
        """\
        # T
        ## Inventory
        - [ ] auth: look
        """,
        front_matter=f"---\ncommand: {json.dumps([sys.executable, '-c', script])}\n---\n",
    )
    assert batch.run("run-batch").returncode == 0
    log = (batch.state("inventory", "auth") / "output.log").read_text()
    assert "inventory auth inventory:auth 1" in log
    assert "Module: auth" in log


def test_the_next_prompt_carries_the_previous_result_of_the_same_module(batch):
    batch.write(
        """\
        # T
        ## One
        - [ ] auth: first
        ## Two
        - [ ] auth: second
        """
    )
    batch.behave(**{"one:auth": {"print": "FOUND 3 FUNCTIONS"}})
    assert batch.run("run-batch").returncode == 0
    prompt = (batch.state("two", "auth") / "prompt.md").read_text()
    assert "second" in prompt
    assert "FOUND 3 FUNCTIONS" in prompt


def test_a_failure_leaves_its_box_open_stops_later_groups_and_is_named(batch):
    batch.write(
        """\
        # T
        ## One
        - [ ] a: fine
        - [ ] b: breaks
        - [ ] c: slow but fine
        ## Two
        - [ ] a: never starts
        """
    )
    batch.behave(b={"exit": 3}, c={"sleep": 1.0})
    result = batch.run("run-batch", "-n", "3")
    assert result.returncode != 0
    text = batch.taskfile.read_text()
    assert "- [ ] b: breaks" in text
    assert "- [x] c: slow but fine" in text  # the running item of its group finished
    assert "- [ ] a: never starts" in text
    assert "two:a" not in batch.runs("start")
    summary = result.stdout.split("\n\n")[-1]
    assert "2 done, 1 failed" in summary
    assert "✗ one:b" in summary and "exit status 3 (log: .batch/task/items/one/b/output.log)" in summary


def test_taskfile_option_and_selection(batch):
    batch.write(SAMPLE, name="plan.md")
    only = batch.run("run-batch", "-T", "plan.md", "inventory:auth")
    assert only.returncode == 0, only.stdout + only.stderr
    assert batch.runs() == {"inventory:auth": 1}
    group = batch.run("run-batch", "-T", "plan.md", "extract-interfaces")
    assert group.returncode == 0
    # A group runs with what it depends on, as `doit run` does.
    assert batch.runs() == {"inventory:auth": 1, "inventory:billing": 1, "extract-interfaces:auth": 1}
    assert not (batch.path / "task.md").exists()


def test_a_missing_program_is_one_error_before_anything_runs(batch):
    batch.write("# T\n## G\n- [ ] a: x\n", front_matter="---\ncommand: [no-such-program-here]\n---\n")
    result = batch.run("run-batch")
    assert result.returncode != 0
    assert "ERROR: group 'g': 'no-such-program-here' is not a program on PATH" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_config_hint_only_when_doit_cannot_read_task_md(batch):
    batch.write(SAMPLE)
    assert "loader = batch" in batch.run("run-batch", "--dry-run").stderr + batch.run("run-batch").stderr
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    batch.taskfile.write_text(batch.taskfile.read_text().replace("[x]", "[ ]"))
    assert "hint" not in batch.run("run-batch").stderr


def test_state_paths_stay_inside_the_state_folder(batch):
    batch.write("# T\n## G\n- [ ] ../../escape: x\n- [ ] /etc/passwd: y\n")
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    state = batch.path / ".batch" / "task"
    written = [path for path in batch.path.rglob("*") if path.is_file()]
    outside = [p for p in written if state not in p.parents and p.parent != batch.path]
    assert outside == []
    item_folders = {p.parent for p in written if p.name == "result.json"}
    assert len(item_folders) == 2 and all(state / "items" / "g" in f.parents for f in item_folders)
    assert not os.path.exists(batch.path.parent.parent / "escape")


def test_a_damaged_result_stops_the_run_with_its_name_and_runs_nothing(batch):
    batch.write(SAMPLE)
    assert batch.run("run-batch").returncode == 0
    result = batch.state("inventory", "billing") / "result.json"
    result.write_text('{"item": "inventory:billing", "run_id": ')  # cut short
    (batch.path / "runs.log").unlink()
    batch.taskfile.write_text(batch.taskfile.read_text().replace("- [x] auth: list", "- [ ] auth: list"))
    again = batch.run("run-batch")
    assert again.returncode == 3
    assert again.stderr.strip() == (
        f"ERROR: {result} cannot be read: it is not valid JSON; "
        "to run inventory:billing again, `doit forget inventory:billing` (or remove the file)"
    )
    assert not (batch.path / "runs.log").exists()
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    assert batch.run("forget", "inventory:billing").returncode == 0
    assert batch.run("run-batch").returncode == 0
    assert set(batch.runs()) == {"inventory:auth", "inventory:billing", "extract-interfaces:auth"}


def test_failed_runs_only_the_items_that_failed_last_time(batch):
    batch.write("# T\n## G\n- [ ] a: breaks\n- [ ] b: fine\n- [ ] c: not yet\n")
    batch.behave(a={"exit": 2}, c={"exit": 2})
    assert batch.run("run-batch", "-k").returncode == 1
    batch.taskfile.write_text(batch.taskfile.read_text().replace("- [x] b: fine", "- [ ] b: fine"))
    batch.behave()
    assert "g:b" in batch.run("run-batch", "--dry-run").stdout  # unticked by hand: it would run
    retried = batch.run("run-batch", "--failed")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert batch.runs() == {"g:a": 1, "g:b": 1, "g:c": 1}  # b ran once, in the first run only


def test_a_template_asking_for_what_is_not_there_is_one_error_before_anything_runs(batch):
    batch.write("# T\n## G\n- [ ] a: one\n", FRONT_MATTER.replace("agent: command\n", "agent: command\ntemplate: t.j2\n"))
    (batch.path / "t.j2").write_text("{{ item.txet }}\n")
    for args in (("run-batch", "--dry-run"), ("run-batch",)):
        result = batch.run(*args)
        assert result.returncode == 3
        assert "'txet'" in result.stderr and "g:a" in result.stderr
    assert not (batch.path / "runs.log").exists()


def test_a_limit_that_resets_at_infinity_is_no_pause(batch):
    batch.write("# T\n## G\n- [ ] a: odd limit\n", FRONT_MATTER.replace("agent: command\n", "agent: command\nretries: 0\n"))
    batch.behave(a={"print": "batch-tasks: retry at inf", "exit": 1})
    result = batch.run("run-batch")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "retry at inf`: not a time to wait for" in json.loads((batch.state("g", "a") / "failure.json").read_text())["reason"]


def test_a_limit_that_resets_beyond_any_calendar_is_a_clear_failure(batch):
    batch.write("# T\n## G\n- [ ] a: odd limit\n", FRONT_MATTER.replace("agent: command\n", "agent: command\nretries: 0\n"))
    batch.behave(a={"print": "batch-tasks: retry at 1e20", "exit": 1})
    result = batch.run("run-batch")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    failure = json.loads((batch.state("g", "a") / "failure.json").read_text())
    assert failure["reason"] == "it said `batch-tasks: retry at 1e20`: not a time to wait for (Unix or ISO 8601 time)"
    assert failure["attempts"][0]["failure_class"] == "permanent"


def test_a_limit_that_resets_in_years_pauses_a_day_at_most_and_says_so():
    from batch_tasks.agents import retry
    from batch_tasks.agents.command import CommandReader

    reader = CommandReader()
    reader.feed("batch-tasks: retry at 9999-12-31")
    outcome = reader.outcome(1)
    assert outcome.failure_class == "wait"
    now = time.time()
    decision = retry.decide(outcome.failure_class, outcome.retry_at, retry.Counts(), {"retries": 2}, now)
    assert decision.retry and decision.at == now + retry.MAX_PAUSE
    assert decision.why == "limit resets at 9999-12-31 00:00:00, more than 24h away: paused 24h at most, then tried again"
