"""Taskmaster's tasks.json read as Taskmaster means it: tasks and subtasks, their dependencies,
the order its `next` gives, and the tick as the task's `"status"`, every other byte kept."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_real_plans import FIXTURES, RECORDER, Project, in_order, prompt_of

from batch_tasks.errors import TaskFileError
from batch_tasks.plan.taskfile import parse


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path / "project")


def recorder_set(project: Project) -> list[str]:
    return ["--set", "agent=command", "--set", f"command=[{sys.executable}, {RECORDER}, {project.log}]"]


def place(project: Project, relative: str, text: str) -> Path:
    path = project.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_tasks_json_runs_its_open_tasks_in_nexts_order_and_sets_each_done_byte_for_byte(project):
    path = place(project, ".taskmaster/tasks/tasks.json", (FIXTURES / "taskmaster-tasks.json").read_text())
    place(project, ".taskmaster/docs/prd.txt", "Reports can be downloaded as CSV.\n")
    before = path.read_text()
    result = project.run(path, *recorder_set(project), cwd=project.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as Taskmaster's tasks.json: the tasks of tag \"master\"" in result.stderr
    assert "task 5 is deferred: not run" in result.stderr and "task 6 waits for task 5" in result.stderr
    # Task 4 (low) before task 3, which waits for it; task 2's subtasks in their order.
    assert [entry["item"] for entry in project.recorded()] == ["master:2.1", "master:2.2", "master:4", "master:3"]
    assert {entry["cwd"] for entry in project.recorded()} == {os.path.realpath(project.root)}
    in_order(prompt_of(project, "master:2.2"), "Tasks for master context", ".taskmaster/docs/prd.txt",
             "Task 2: Implement the CSV Writer", "def write_csv(rows, stream)", "Priority: high",
             "Quote fields that need it", "csv.QUOTE_MINIMAL")
    in_order(prompt_of(project, "master:3"), "Add the download endpoint", "stream with a generator",
             "Test strategy:\nAn integration test downloads a report", "Priority: medium")
    after = path.read_text()
    changed = [(old, new) for old, new in zip(before.split("\n"), after.split("\n")) if old != new]
    assert len(before.split("\n")) == len(after.split("\n")) and len(changed) == 5, changed
    assert all(new == old.replace('"status": "pending"', '"status": "done"') for old, new in changed), changed
    statuses = {str(t["id"]): t["status"] for t in json.loads(after)["master"]["tasks"]}
    assert statuses == {"1": "done", "2": "done", "3": "done", "4": "done", "5": "deferred", "6": "pending"}
    again = project.run(path, *recorder_set(project), cwd=project.root)
    assert again.returncode == 0 and "0 done, 0 failed, 5 already done" in again.stdout, again.stdout + again.stderr


FLAT = """{
  "tasks": [
    {
      "id": 1,
      "title": "Create Shared Types Package",
      "description": "Types for room state",
      "details": "Define RoomState",
      "testStrategy": "Unit tests",
      "priority": "high",
      "dependencies": [],
      "status": "pending",
      "subtasks": [
        {
          "id": 1,
          "title": "Define Core Interfaces",
          "description": "RoomState, Participant",
          "dependencies": [],
          "details": "JSDoc comments",
          "status": "done"
        },
        {
          "id": 2,
          "title": "Define WebSocketEvent Types",
          "description": "A union of events",
          "dependencies": [
            1
          ],
          "details": "Type guards",
          "status": "pending"
        }
      ]
    }
  ],
  "metadata": {
    "projectName": "scrumpoker"
  }
}
"""


def test_the_older_flat_tasks_json_is_read_its_subtask_ids_relative_to_their_task(tmp_path):
    plan = parse(FLAT, tmp_path / "tasks" / "tasks.json")
    [group] = plan.groups
    assert [(item.module, item.done) for item in group.items] == [("1.1", True), ("1.2", False)]
    assert group.items[1].status_at == ("taskmaster", "", "1", "2")
    assert "Task 1: Create Shared Types Package" in group.items[1].parent


def tasks_file(*tasks) -> str:
    return json.dumps({"master": {"tasks": list(tasks)}}, indent=2)


@pytest.mark.parametrize("text, line, message", [
    ('{"name": "app", "version": "1.0.0"}', 1, "is JSON but not Taskmaster's tasks.json"),
    ('{\n  "master": {\n    "tasks": [,]\n  }\n}', 3, "is not valid JSON: Expecting value"),
    (tasks_file({"id": 1, "title": "a", "dependencies": [2], "status": "pending"},
                {"id": 2, "title": "b", "dependencies": [1], "status": "pending"}), 5, "tasks 1, 2 wait for each other"),
    (tasks_file({"id": 1, "title": "a", "status": "pending"}, {"id": 1, "title": "b", "status": "pending"}), 10,
     "task id 1 is given twice (also at line 5)"),
    (tasks_file({"id": 1, "title": "a", "status": "cancelled"}), 3, "none of its 1 tasks is pending, in progress or done"),
])
def test_what_is_no_taskmaster_plan_is_one_error_at_its_line(tmp_path, text, line, message):
    with pytest.raises(TaskFileError) as raised:
        parse(text, tmp_path / "tasks.json")
    assert raised.value.line == line and message in str(raised.value), str(raised.value)


def test_the_current_tag_of_state_json_is_the_one_run(tmp_path):
    folder = tmp_path / ".taskmaster"
    (folder / "tasks").mkdir(parents=True)
    (folder / "state.json").write_text('{"currentTag": "feature-csv"}')
    text = json.dumps({"master": {"tasks": [{"id": 1, "title": "old", "status": "pending"}]},
                       "feature-csv": {"tasks": [{"id": 1, "title": "new", "status": "pending"}]}})
    plan = parse(text, folder / "tasks" / "tasks.json")
    assert [item.text for item in plan.items()] == ["new"]
    assert 'tag "feature-csv", the current tag in .taskmaster/state.json; not run: the tags master' in plan.dialect_reason


def test_a_tick_rewrites_only_the_status_value_whatever_the_line_ends_and_bom(tmp_path):
    from batch_tasks.state.status_field import set_status

    path = tmp_path / "tasks.json"
    text = "\ufeff" + FLAT.replace("\n", "\r\n").replace('"status": "pending"', '"status":"pending"', 1)
    path.write_bytes(text.encode())
    [_, second] = parse(text.removeprefix("\ufeff"), path).items()
    assert set_status(path, second, True, tmp_path / "lock")
    # The subtask, and its task with its last open subtask; nothing else.
    assert path.read_bytes() == text.replace('"pending"', '"done"').encode()
    assert set_status(path, second, False, tmp_path / "lock")
    assert path.read_bytes() == text.replace('"pending"', '"done"', 1).encode()
