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
