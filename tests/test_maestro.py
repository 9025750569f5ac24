"""Maestro's Auto Run documents: the boxes that are no work (conditions to verify before
implementing, the progress gate's reset boxes, the summary's placeholders) are neither run
nor ticked, each with a note at its line; the task runs and is ticked, the rest kept."""

from __future__ import annotations

import pytest
from test_real_plans import FIXTURES, Project, box_lines, ticked
from test_taskmaster import recorder_set

from batch_tasks.plan.taskfile import parse


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path / "project")


def test_only_the_task_of_an_implement_document_runs_and_is_ticked(project):
    path = project.root / "Auto Run Docs" / "Testing" / "4_IMPLEMENT.md"
    path.parent.mkdir(parents=True)
    path.write_text((FIXTURES / "maestro-implement.md").read_text())
    before = path.read_bytes()
    result = project.run(path, *recorder_set(project))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as a plain checklist: Maestro's Auto Run variables" in result.stderr
    assert [entry["item"] for entry in project.recorded()] == ["task:test-one-pending-gap-or-skip-if-none-f46e68"]
    for line in (21, 22, 23):
        assert f"4_IMPLEMENT.md:{line}: note: for a person to verify before the work (line 20 says so" in result.stderr
    assert path.read_bytes() == ticked(before, [16])


def test_a_progress_gates_reset_boxes_are_not_work():
    text = (FIXTURES / "maestro-progress.md").read_text()
    plan = parse(text, FIXTURES / "maestro-progress.md")
    assert [item.line for item in plan.items()] == [9]
    resets = box_lines(text.encode(), rb"- \[ \] \*\*Reset ")
    assert resets == [15, 16, 17, 18]
    assert [line for line, note in plan.notes if "a reset box (Maestro's loop control" in note] == resets
