"""What `run-batch` shows of how task.md was read: the dialect and why, each warning and
note at its line, in --dry-run and at the start of a run; and a dry run that lists the
plan even when no agent is configured. (Printing is commands.py's: these pass once it
prints plan.dialect_reason, plan.warnings, plan.notes and loads with for_dry_run.)"""

from test_dialect_runs import write


def test_dry_run_and_run_name_the_dialect_and_the_warnings(batch):
    write(batch, "speckit-tasks.md")
    text = batch.taskfile.read_text().replace("- [ ] T009", "- [-] T010 in progress\n- [ ] T009")
    batch.taskfile.write_text(text)
    warned = text[: text.index("- [-] T010")].count("\n") + 1
    for command in (("run-batch", "--dry-run"), ("run-batch",)):
        result = batch.run(*command)
        assert result.returncode == 0, result.stdout + result.stderr
        shown = result.stdout + result.stderr
        assert 'read as a spec-kit task list: the "## Format: [ID] [P?] [Story]" line' in shown
        assert any(f"task.md:{warned}:" in line and "looks like an item but is not one" in line for line in shown.splitlines())
        assert any("metadata, not a setting" in line for line in shown.splitlines())


def test_a_dry_run_lists_the_plan_without_an_agent_and_a_run_refuses(batch):
    batch.write("# A\n- [ ] x: one\n- [ ] y: two\n", front_matter="")
    result = batch.run("run-batch", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a:x" in result.stdout and "a:y" in result.stdout
    assert "front matter" in result.stdout + result.stderr
    result = batch.run("run-batch")
    assert result.returncode == 3 and "task.md:1: there is no front matter, so it names no agent" in result.stderr


def test_kiro_optional_items_run_only_with_optional(batch):
    write(batch, "kiro-tasks.md")
    dry = batch.run("run-batch", "--dry-run")
    assert "implementation-plan:2.3" in dry.stdout and "optional" in dry.stdout
    assert batch.run("run-batch").returncode == 0
    assert "implementation-plan:2.3" not in batch.runs("start")
    assert batch.run("run-batch", "--optional").returncode == 0
    assert batch.runs("done")["implementation-plan:2.3"] == 1
