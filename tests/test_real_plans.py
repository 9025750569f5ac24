"""Plans written for other tools, in the folders those tools put them, run as their authors
meant: real `doit run-batch` runs with an agent that records each prompt and its folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import git

RECORDER = Path(__file__).parent / "agents" / "recorder.py"
FIXTURES = Path(__file__).parent / "fixtures" / "dialects"


def recorder_front_matter(log: Path, extra: str = "") -> str:
    return (f"---\nagent: command\ncommand: [{json.dumps(sys.executable)}, {json.dumps(str(RECORDER))}, "
            f"{json.dumps(str(log))}]\n{extra}---\n")


class Project:
    """A git repository with a plan somewhere inside it, run with the recording agent."""

    def __init__(self, root: Path):
        self.root = root
        self.log = root.parent / "recorded.jsonl"
        root.mkdir()
        git("init", "-q", "-b", "main", cwd=root)
        (root / "README.md").write_text("# the project\n")

    def plan(self, relative: str, text: str, front_matter: bool = True, extra: str = "") -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if front_matter:
            text = recorder_front_matter(self.log, extra) + (text.split("---\n", 2)[2].lstrip("\n") if text.startswith("---\n") else text)
        path.write_text(text)
        return path

    def run(self, plan: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "doit", "run-batch", "-T", str(plan), *args],
                              cwd=cwd or plan.parent, capture_output=True, text=True, timeout=120)

    def recorded(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path / "project")


def test_a_spec_kit_plan_runs_its_agents_at_the_repository_top(project):
    plan = project.plan("specs/002-export/tasks.md", (FIXTURES / "speckit-tasks.md").read_text())
    result = project.run(plan, "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = project.recorded()
    assert recorded and {entry["cwd"] for entry in recorded} == {os.path.realpath(project.root)}


def test_a_batch_task_md_still_runs_in_its_own_folder(project):
    plan = project.plan("sub/task.md", "# Work\n\n## Do\n- [ ] alpha: edit alpha\n")
    result = project.run(plan)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [entry["cwd"] for entry in project.recorded()] == [os.path.realpath(plan.parent)]


def test_workdir_chooses_where_agents_run(project):
    (project.root / "app").mkdir()
    plan = project.plan("specs/002-export/tasks.md", (FIXTURES / "speckit-tasks.md").read_text(), extra="workdir: ../../app\n")
    result = project.run(plan, "phase-1-setup:T001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [entry["cwd"] for entry in project.recorded()] == [os.path.realpath(project.root / "app")]


def test_a_workdir_that_is_no_folder_is_an_error_at_its_line(project):
    plan = project.plan("specs/002-export/tasks.md", (FIXTURES / "speckit-tasks.md").read_text(), extra="workdir: nowhere\n")
    result = project.run(plan)
    assert result.returncode == 3
    assert "tasks.md:4: workdir 'nowhere' is not a folder" in result.stderr, result.stderr
    assert project.recorded() == []


def test_an_isolated_kiro_plan_runs_its_agents_at_the_top_of_their_worktree(project):
    text = (FIXTURES / "kiro-tasks.md").read_text()
    plan = project.plan(".kiro/specs/csv-export/tasks.md", text, extra="isolation: worktree\nallow_empty: true\n")
    git("add", "-A", cwd=project.root)
    git("-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "plan", cwd=project.root)
    result = project.run(plan, "implementation-plan:1")
    assert result.returncode == 0, result.stdout + result.stderr
    [entry] = project.recorded()
    assert "/.batch/tasks/worktrees/" in entry["cwd"]
    assert {"README.md", ".kiro"} <= set(entry["files"]), entry


def prompt_of(project: Project, key: str) -> str:
    return next(entry["prompt"] for entry in project.recorded() if entry["item"] == key)


def in_order(text: str, *parts: str) -> None:
    """Each part is in the text, after the one before."""
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} not found after position {at} in:\n{text}"
        at = found + len(part)


def test_a_spec_kit_item_is_told_the_plan_its_design_documents_and_its_phase(project):
    plan = project.plan("specs/002-export/tasks.md", (FIXTURES / "speckit-tasks.md").read_text())
    for name in ("spec.md", "plan.md", "data-model.md"):
        (plan.parent / name).write_text(f"# {name}\n")
    (plan.parent / "contracts").mkdir()
    result = project.run(plan, "tests-for-user-story-1:T004")
    assert result.returncode == 0, result.stdout + result.stderr
    in_order(prompt_of(project, "tests-for-user-story-1:T004"),
             'of the batch "Tasks: CSV export"',
             "**Input**: Design documents from `specs/002-export/`",
             "specs/002-export/spec.md, specs/002-export/plan.md, specs/002-export/data-model.md, specs/002-export/contracts/",
             "## Phase 2: User Story 1 - Export a report",
             "**Goal**: A user downloads any report as a CSV file",
             "Step: Tests for User Story 1",
             "> **NOTE: Write these tests FIRST",
             "Contract test for `GET /reports/{id}.csv`")


def test_a_superpowers_task_is_told_the_plans_goal_and_architecture(project):
    text = (FIXTURES / "superpowers-plan.md").read_text().replace("---\n\n### Task 1", "---\n\n## Phase 1: The writer\n\n### Task 1")
    plan = project.plan("docs/superpowers/plans/2025-01-01-csv-export.md", text)
    result = project.run(plan, "phase-1-the-writer:task-1")
    assert result.returncode == 0, result.stdout + result.stderr
    in_order(prompt_of(project, "phase-1-the-writer:task-1"),
             'of the batch "CSV Export Implementation Plan"',
             "**Goal:** Let users download a report as CSV.",
             "**Architecture:** A writer module and one endpoint.",
             "Step: Phase 1: The writer",
             "Module: task-1",
             "**Files:**")


def test_a_superpowers_task_is_told_to_read_the_design_its_header_names_and_the_spec_of_its_name(project):
    text = (FIXTURES / "superpowers-plan.md").read_text().replace(
        "**Architecture:**", "**Spec:** `docs/superpowers/specs/2024-12-20-export-formats-design.md`\n\n**Architecture:**")
    plan = project.plan("docs/superpowers/plans/2025-01-01-csv-export.md", text)
    specs = project.root / "docs" / "superpowers" / "specs"
    specs.mkdir(parents=True)
    for name in ("2024-12-20-export-formats-design.md", "2025-01-01-csv-export-design.md", "2025-01-01-other-design.md"):
        (specs / name).write_text("# Design\n")
    result = project.run(plan, "csv-export-implementation-plan:task-1")
    assert result.returncode == 0, result.stdout + result.stderr
    prompt = prompt_of(project, "csv-export-implementation-plan:task-1")
    in_order(prompt, "Read these design documents first (paths from your working folder): "
             "docs/superpowers/specs/2024-12-20-export-formats-design.md, "
             "docs/superpowers/specs/2025-01-01-csv-export-design.md\n", "**Goal:** Let users download a report as CSV.",
             "Module: task-1")
    assert "other-design" not in prompt


def test_a_kiro_sub_task_is_told_its_parent_task(project):
    plan = project.plan(".kiro/specs/csv-export/tasks.md", (FIXTURES / "kiro-tasks.md").read_text())
    (plan.parent / "design.md").write_text("# Design\n")
    (plan.parent / "requirements.md").write_text("# Requirements\n")
    result = project.run(plan, "implementation-plan:2.2")
    assert result.returncode == 0, result.stdout + result.stderr
    prompt = prompt_of(project, "implementation-plan:2.2")
    in_order(prompt, ".kiro/specs/csv-export/requirements.md, .kiro/specs/csv-export/design.md",
             "This item is part of the task:\n2. Write the CSV writer", "Module: 2.2", "Write one row per record")
    assert "2.1 Write the header row" not in prompt


def test_dry_run_prompts_shows_each_prompt(project):
    plan = project.plan("specs/002-export/tasks.md", (FIXTURES / "speckit-tasks.md").read_text())
    result = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-T", str(plan), "--dry-run", "--prompts",
                             "phase-1-setup:T001"], cwd=plan.parent, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "    | **Input**: Design documents from `specs/002-export/`\n" in result.stdout
    assert "    | Create the `export/` package" in result.stdout
    assert project.recorded() == []


SUPERPOWERS_WITH_COMMENTS = """# Config Loader Implementation Plan

> **For agentic workers:** REQUIRED SUB-SKILL: Use superpowers:subagent-driven-development (recommended) or superpowers:executing-plans to implement this plan task-by-task. Steps use checkbox (`- [ ]`) syntax for tracking.

**Goal:** Read settings from `config.toml`.

---

### Task 1: Parse the file

**Files:**
- Create: `src/config.rs`

- [ ] **Step 1: Write the failing test**

```rust
#[test]
fn reads_the_port() {
    assert_eq!(parse("port = 8080").port, 8080);
}
```

- [ ] **Step 2: Add the sample config**

```toml
# the default port
port = 8080
```

- [ ] **Step 3: Run the test**

```bash
# expect one test to pass
cargo test reads_the_port
```

- [ ] **Step 4: Commit**

### Task 2: Document it

- [ ] **Step 1: Write the section**
- [ ] **Step 2: Commit**
"""


def test_superpowers_steps_after_code_with_hash_lines_are_ticked(project):
    plan = project.plan("docs/superpowers/plans/2025-01-02-config.md", SUPERPOWERS_WITH_COMMENTS)
    before = plan.read_bytes()
    result = project.run(plan)
    assert result.returncode == 0, result.stdout + result.stderr
    assert plan.read_bytes() == before.replace(b"- [ ] **Step", b"- [x] **Step")
    again = project.run(plan)
    assert again.returncode == 0 and "0 done, 0 failed, 2 already done" in again.stdout, again.stdout + again.stderr
    assert len(project.recorded()) == 2


def test_spec_kit_same_file_tasks_and_dependencies_wait_and_ticks_keep_the_files_x(project):
    plan = project.plan("specs/001-photo-albums/tasks.md", (FIXTURES / "speckit-photo-albums.md").read_text())
    before = plan.read_bytes()
    graph = subprocess.run([sys.executable, "-m", "doit", "batch-graph", "-T", str(plan)], cwd=plan.parent,
                           capture_output=True, text=True, timeout=60)
    group = "implementation-for-user-story-1:"
    # T005 names T003's file, T007 waits for T006 (## Dependencies): each starts a new run.
    assert f"  {group}T005  ← {group}T003, {group}T004\n" in graph.stdout, graph.stdout
    assert f"  {group}T006  ← {group}T003, {group}T004\n" in graph.stdout, graph.stdout
    assert f"  {group}T007  ← {group}T005, {group}T006\n" in graph.stdout, graph.stdout
    result = project.run(plan, "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr, result.stderr  # the **Checkpoint**: line is no item's lost block
    assert plan.read_bytes() == before.replace(b"- [ ] T0", b"- [X] T0")


def test_spec_kit_dependency_on_a_later_task_is_a_warning_at_its_line(project):
    text = (FIXTURES / "speckit-photo-albums.md").read_text().replace("- T006 blocks T007", "- T003 depends on T007")
    plan = project.plan("specs/001-photo-albums/tasks.md", text)
    result = project.run(plan, "--dry-run")
    line = plan.read_text().splitlines().index("- T003 depends on T007") + 1
    assert f"tasks.md:{line}: warning: T003 is to wait for T007, which comes after it in the file" in result.stderr


def test_kiro_parent_with_own_work_runs_and_optional_sub_tasks_run_in_their_place(project):
    plan = project.plan(".kiro/specs/timezones/tasks.md", (FIXTURES / "kiro-optional.md").read_text())
    before = plan.read_bytes()
    result = project.run(plan, "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    key = "implementation-plan:"
    assert [entry["item"] for entry in project.recorded()] == [key + n for n in ("1", "2", "3", "4.1", "5")]
    assert "Add `convert(dt, source, target)`" in prompt_of(project, key + "2")
    assert "Round-trip" not in prompt_of(project, key + "2")
    assert "implementation-plan:4.2  skipped (optional: run with --optional)" in project.run(plan, "--dry-run").stdout
    optional_lines = box_lines(before, rb" *- \[ \]\* 2\.1| *- \[ \] 4\.[23]\*")
    after = plan.read_bytes()
    assert after == ticked(before, [n for n in box_lines(before, rb" *- \[ \]") if n not in optional_lines])

    project.log.unlink()
    plan = project.plan(".kiro/specs/timezones-2/tasks.md", (FIXTURES / "kiro-optional.md").read_text())
    dry = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-T", str(plan), "--optional", "--dry-run"],
                         cwd=plan.parent, capture_output=True, text=True, timeout=60)
    # The checkpoints wait for the optional tests before them, which run one at a time.
    for waits in ("2.1", "4.2", "4.3"):
        assert f"    after: {key}{waits}\n" in dry.stdout, dry.stdout
    result = project.run(plan, "-n", "4", "--optional")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [entry["item"] for entry in project.recorded()] == [
        key + n for n in ("1", "2", "2.1", "3", "4.1", "4.2", "4.3", "5")]
    assert plan.read_bytes() == before.replace(b"- [ ]", b"- [x]")


def ticked(before: bytes, lines: list[int]) -> bytes:
    out = before.split(b"\n")
    for number in lines:
        out[number - 1] = out[number - 1].replace(b"[ ]", b"[x]", 1)
    return b"\n".join(out)


def box_lines(data: bytes, pattern: bytes) -> list[int]:
    import re

    return [n for n, line in enumerate(data.split(b"\n"), 1) if re.match(pattern, line)]


def test_a_phased_plan_runs_each_phase_once_checked_by_its_own_automated_criteria(project):
    plan = project.plan("thoughts/shared/plans/2025-01-08-session-export.md",
                        (FIXTURES / "humanlayer-plan.md").read_text())
    before = plan.read_bytes()
    result = project.run(plan, "--continue")
    # Phase 1 passes its criteria; phase 2's says transcript.md must exist, and nothing wrote it.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "read as a phased implementation plan" in result.stderr
    assert [entry["item"] for entry in project.recorded()] == ["phase-1-session-reader:phase-1",
                                                              "phase-2-the-export-command:phase-2"] * 1 + \
        ["phase-2-the-export-command:phase-2"] * 2  # a failed check is retried twice, as check_retries says
    prompt = prompt_of(project, "phase-1-session-reader:phase-1")
    in_order(prompt, "Let users export a session's transcript", "Step: Phase 1: Session reader",
             "**File**: `export/reader.py`", "# returns the events in the order")
    lines = before.split(b"\n")
    automated = [n for n, line in enumerate(lines, 1) if line.startswith(b"- [ ] The ")]
    assert plan.read_bytes() == ticked(before, automated[:2])  # phase 1's automated criteria only
    assert '"What We\'re NOT Doing": its 2 items are not run' in result.stderr
    assert "note: for a person to verify (not run, never ticked): A real session loads with all its events" in result.stderr


def test_a_deferred_section_of_a_fix_plan_is_not_run(project):
    text = """# Fix Plan

## High Priority
- [ ] Fix the crash when the config file is empty
- [ ] Make `--verbose` print the resolved paths

## Deferred — DO NOT pick
- [ ] Rewrite the parser with a grammar
- [ ] Support YAML configs

## Phase 3: Colour output ❌ CANCELLED
- [ ] Colour the diff lines
"""
    plan = project.plan("fix_plan.md", text)
    result = project.run(plan)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [entry["item"].split(":")[0] for entry in project.recorded()] == ["high-priority"] * 2
    line = plan.read_text().splitlines().index("## Deferred — DO NOT pick") + 1
    assert f'fix_plan.md:{line}: note: "Deferred — DO NOT pick": its 2 items are not run' in result.stderr, result.stderr


def recorder_toml(log: Path) -> str:
    return f"agent = \"command\"\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(RECORDER))}, {json.dumps(str(log))}]\n"


def test_a_generated_plan_runs_unedited_with_settings_from_pyproject_and_set(project):
    text = (FIXTURES / "speckit-tasks.md").read_text()
    plan = project.plan("specs/002-export/tasks.md", text, front_matter=False)
    (project.root / "pyproject.toml").write_text("[project]\nname = \"x\"\n\n[tool.batch-tasks]\n" + recorder_toml(project.log)
                                                 + "parallel = 2\n")
    result = project.run(plan, "phase-1-setup:T001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [entry["item"] for entry in project.recorded()] == ["phase-1-setup:T001"]
    other = project.root.parent / "other.jsonl"
    dry = project.run(plan, "--dry-run", "--set", f"command=[{sys.executable}, {RECORDER}, {other}]", "--set", "parallel=3")
    assert dry.returncode == 0, dry.stderr
    assert "settings given: agent (pyproject.toml [tool.batch-tasks]), command (--set), parallel (--set)" in dry.stderr
    result = project.run(plan, "phase-1-setup:T002", "--set", f"command=[{sys.executable}, {RECORDER}, {other}]")
    assert result.returncode == 0, result.stdout + result.stderr
    # The command is part of T001's fingerprint: changed, T001 is done again before T002.
    assert [json.loads(line)["item"] for line in other.read_text().splitlines()] == ["phase-1-setup:T001", "phase-1-setup:T002"]
    assert plan.read_text() == text.replace("- [ ] T001", "- [x] T001").replace("- [ ] T002", "- [x] T002")


def test_front_matter_is_over_batch_tasks_toml_and_a_wrong_setting_there_names_its_line(project):
    plan = project.plan("plans/task.md", "---\nparallel: 2\n---\n# W\n\n## Do\n- [ ] alpha: edit alpha\n", front_matter=False)
    (plan.parent / "batch-tasks.toml").write_text(recorder_toml(project.log) + "parallel = 5\n")
    dry = project.run(plan, "--dry-run")
    assert "settings given: agent (batch-tasks.toml), command (batch-tasks.toml), parallel (front matter, line 2)" in dry.stderr
    result = project.run(plan)
    assert result.returncode == 0 and len(project.recorded()) == 1, result.stdout + result.stderr
    (plan.parent / "batch-tasks.toml").write_text(recorder_toml(project.log) + "paralel = 5\n")
    result = project.run(plan, "-a")
    assert result.returncode == 3
    assert "batch-tasks.toml:3: unknown setting 'paralel': did you mean 'parallel'?" in result.stderr, result.stderr
    (plan.parent / "batch-tasks.toml").write_text(recorder_toml(project.log))
    result = project.run(plan, "-a", "--set", "agent=claud")
    assert result.returncode == 3 and "--set 'agent=claud': setting 'agent' must be one of" in result.stderr


def test_an_execplan_runs_its_progress_items_in_order_told_the_whole_plan(project):
    plan = project.plan("docs/execplans/dry-run.md", (FIXTURES / "execplan.md").read_text())
    before = plan.read_bytes()
    result = project.run(plan, "-n", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as an ExecPlan (PLANS.md)" in result.stderr
    items = [entry["item"] for entry in project.recorded()]
    assert [item.split(":")[1][:16] for item in items] == ["add-the-dry-run-", "print-each-plann"]
    prompt = prompt_of(project, items[0])
    in_order(prompt, "After this change a user can run `sync --dry-run`", "Decision: the dry run prints to stdout",
             "Add the option in `sync/cli.py`", "Run `sync --dry-run src dst`", "Step: Progress",
             "Add the `--dry-run` option to `sync/cli.py`.")
    assert "Print each planned copy" not in prompt.split("Step: Progress")[0]
    assert plan.read_bytes() == before.replace(b"- [ ] ", b"- [x] ")


def test_a_bmad_story_runs_its_tasks_told_the_story_and_ticks_their_subtasks(project):
    plan = project.plan("docs/stories/1.2.password-reset.md", (FIXTURES / "bmad-story.md").read_text())
    before = plan.read_bytes()
    result = project.run(plan)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as a BMAD story" in result.stderr
    items = [entry["item"] for entry in project.recorded()]
    assert len(items) == 2 and items[0].startswith("tasks-subtasks:add-the-reset-token")
    in_order(prompt_of(project, items[0]), "**I want** to reset my password by email", "1. A reset link is mailed",
             "Tokens are single-use", "Step: Tasks / Subtasks", "Add the reset token model (AC: 1, 2)",
             "- [ ] Create `ResetToken`")
    assert plan.read_bytes() == before.replace(b"- [ ] ", b"- [x] ")


def test_a_bmad_story_in_draft_says_so(project):
    plan = project.plan("docs/stories/1.2.password-reset.md",
                        (FIXTURES / "bmad-story.md").read_text().replace("\nApproved\n", "\nDraft\n"))
    result = project.run(plan, "--dry-run")
    assert "note: the story's status is 'Draft'" in result.stderr, result.stderr


def test_agents_md_todo_headings_run_in_order_and_tick_their_heading(project):
    plan = project.plan("AGENTS.md", (FIXTURES / "agents-todo.md").read_text())
    before = plan.read_bytes()
    result = project.run(plan, "-T", str(plan), "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as a list of TODO headings" in result.stderr
    items = [entry["item"] for entry in project.recorded()]
    assert [item.split(":")[1][:12] for item in items] == ["add-a-dry-ru", "retry-failed"]
    in_order(prompt_of(project, items[0]), "A command line tool that syncs folders", "`ruff check` must pass",
             "Step: TODO", "Add a --dry-run flag to sync", "The option goes in `sync/cli.py`.")
    assert plan.read_bytes() == before.replace(b"### [ ] ", b"### [x] ")
    again = project.run(plan)
    assert again.returncode == 0 and "0 done, 0 failed, 3 already done" in again.stdout, again.stdout


README = (Path(__file__).parent.parent / "README.md").read_text()
# Where each dialect's files live, for the README's examples of them.
HOMES = {"speckit": "specs/001-export/tasks.md", "kiro": ".kiro/specs/export/tasks.md",
         "superpowers": "docs/superpowers/plans/2025-01-01-export.md", "phases": "thoughts/shared/plans/export.md",
         "execplan": "docs/execplans/dry-run.md", "bmad": "docs/stories/1.2.story.md", "todo-headings": "AGENTS.md",
         "checklist": "fix_plan.md", "cursor": ".cursor/plans/setup-route-hygiene.plan.md",
         "taskmaster": ".taskmaster/tasks/tasks.json"}


def dialect_examples() -> list[tuple[str, str]]:
    """Each dialect's example in the README's "Dialects" section: (dialect, the markdown block under its bullet)."""
    import re
    import textwrap

    section = README[README.index("### Dialects"):README.index("### Settings")]
    found = []
    for bullet in re.split(r"^- \*\*`", section, flags=re.M)[1:]:
        name = bullet.split("`", 1)[0]
        block = re.search(r"^  (````?)(?:markdown|json)\n(.*?)^  \1$", bullet, re.M | re.S)
        if name != "batch":
            assert block, f"the README's {name} dialect has no example"
            found.append((name, textwrap.dedent(block.group(2))))
    return found


@pytest.mark.parametrize("dialect, example", dialect_examples(), ids=[name for name, _ in dialect_examples()])
def test_each_readme_dialect_example_runs_as_shown(project, dialect, example):
    from batch_tasks.plan.dialects import NAMES

    assert set(HOMES) == {name for name, _ in dialect_examples()}
    plan = project.plan(HOMES[dialect], example, front_matter=False)
    command = f"command=[{sys.executable}, {RECORDER}, {project.log}]"
    dry = project.run(plan, "--dry-run", "--set", "agent=command", "--set", command)
    assert dry.returncode == 0 and f"read as {NAMES[dialect]}" in dry.stderr, dry.stdout + dry.stderr
    if dialect == "phases":
        return  # its check is the example's `make test`, which has no Makefile here to run
    result = project.run(plan, "--set", "agent=command", "--set", command)
    assert result.returncode == 0 and project.recorded(), result.stdout + result.stderr


def test_an_older_superpowers_plan_without_boxes_runs_once_and_is_left_as_it_was(project):
    plan = project.plan("docs/plans/2025-01-03-slug.md", (FIXTURES / "superpowers-old.md").read_text())
    before = plan.read_bytes()
    result = project.run(plan, "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "has bold steps and no boxes: its state is kept in the state folder only" in result.stderr
    assert [entry["item"] for entry in project.recorded()] == ["slug-helper-implementation-plan:task-1",
                                                              "slug-helper-implementation-plan:task-2"]
    in_order(prompt_of(project, "slug-helper-implementation-plan:task-1"), "**Step 1: Write the failing test**",
             'git commit -m "feat: add slugify"')
    assert plan.read_bytes() == before
    again = project.run(plan)
    assert again.returncode == 0 and "0 done, 0 failed, 2 already done" in again.stdout, again.stdout + again.stderr
    assert len(project.recorded()) == 2


def test_a_cursor_plan_runs_its_open_todos_in_order_and_ticks_their_status_byte_for_byte(project):
    plan = project.plan(".cursor/plans/setup-route-hygiene.plan.md", (FIXTURES / "cursor.plan.md").read_text(),
                        front_matter=False)
    before = plan.read_bytes()
    command = f"command=[{sys.executable}, {RECORDER}, {project.log}]"
    result = project.run(plan, "--set", "agent=command", "--set", command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as a Cursor plan" in result.stderr and "kept in the state folder only" not in result.stderr
    assert [entry["item"] for entry in project.recorded()] == ["setup-route-hygiene:setup-honest-response",
                                                              "setup-route-hygiene:tests"]
    in_order(prompt_of(project, "setup-route-hygiene:tests"), "`app/api/setup/route.ts` seeds the admin user",
             "Compare secrets with `crypto.timingSafeEqual`", "Add tests for the setup route's skipped seeding")
    lines = before.split(b"\n")
    for line in (9, 17):  # the two todos run: their status, as Cursor writes it
        assert lines[line] == b"    status: pending"
        lines[line] = b"    status: completed"
    assert plan.read_bytes() == b"\n".join(lines)
    again = project.run(plan, "--set", "agent=command", "--set", command)
    assert again.returncode == 0 and "0 done, 0 failed, 3 already done" in again.stdout, again.stdout + again.stderr


def test_set_format_chooses_the_dialect_and_says_so(project):
    plan = project.plan("plans/task.md", "# W\n\n## Do\n- [ ] alpha: edit alpha\n")
    dry = project.run(plan, "--dry-run", "--set", "format=checklist")
    assert dry.returncode == 0 and "read as a plain checklist: `format: checklist` from --set" in dry.stderr, dry.stderr
