"""Ticking one item in place, on a real file and no process: which box, which boxes along with
it, and what the user's edits since the plan was read do to that. A box ticked wrongly is a
user's edit lost, or an item paid for again."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_tasks.checkbox import set_checkbox
from batch_tasks.taskfile import parse

FIXTURES = Path(__file__).parent / "fixtures" / "dialects"


def plan_at(path: Path, text: str):
    path.write_text(text, encoding="utf-8")
    return parse(text, path)


def tick(path: Path, plan, key: str, done: bool = True) -> bool:
    item = next(item for item in plan.items() if item.key == key)
    group = next(group for group in plan.groups if item in group.items)
    return set_checkbox(path, group, item, done, path.with_suffix(".lock"))


SIMPLE = "# Plan\n## One\n- [ ] a: first\n- [ ] b: first\n## Two\n- [ ] a: second\n"


def test_only_the_items_box_changes(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, SIMPLE)
    assert tick(path, plan, "one:b")
    assert path.read_text() == SIMPLE.replace("- [ ] b: first", "- [x] b: first")
    assert tick(path, plan, "one:b", done=False)
    assert path.read_text() == SIMPLE


def test_a_box_already_as_wanted_is_not_written(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, SIMPLE.replace("- [ ] a: second", "- [X] a: second"))
    before = path.stat().st_mtime_ns, path.read_bytes()
    assert tick(path, plan, "two:a")
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before  # `[X]` is ticked as it is


def test_lines_the_user_added_above_do_not_move_the_tick(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, SIMPLE)
    edited = SIMPLE.replace("## One\n", "## One\nA note the user wrote\n\n- [ ] c: new item\n")
    path.write_text(edited)
    assert tick(path, plan, "one:b")
    assert path.read_text() == edited.replace("- [ ] b: first", "- [x] b: first")


def test_an_item_whose_line_the_user_changed_is_not_ticked_and_the_file_is_kept(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, SIMPLE)
    edited = SIMPLE.replace("b: first", "b: first, and more")
    path.write_text(edited)
    assert not tick(path, plan, "one:b")
    assert path.read_text() == edited


def test_of_two_same_lines_the_one_under_the_items_heading_is_ticked(tmp_path):
    path = tmp_path / "task.md"
    text = "# Plan\n## One\n- [ ] a: do it\n## Two\n- [ ] a: do it\n"
    plan = plan_at(path, text)
    assert tick(path, plan, "two:a")
    assert path.read_text() == "# Plan\n## One\n- [ ] a: do it\n## Two\n- [x] a: do it\n"
    assert tick(path, plan, "one:a")
    assert path.read_text() == "# Plan\n## One\n- [x] a: do it\n## Two\n- [x] a: do it\n"


def test_a_moved_group_keeps_its_ticks_with_it(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, SIMPLE)
    moved = "# Plan\n## Two\n- [ ] a: second\n## One\n- [ ] a: first\n- [ ] b: first\n"
    path.write_text(moved)
    assert tick(path, plan, "two:a")
    assert path.read_text() == moved.replace("- [ ] a: second", "- [x] a: second")


def test_nested_boxes_are_ticked_along_but_not_the_next_items(tmp_path):
    path = tmp_path / "task.md"
    text = ("# A\n- [ ] auth: split it\n  - [ ] move the session code\n  - [x] keep the old names\n"
            "- [ ] billing: split it\n  - [ ] move the session code\n")
    plan = plan_at(path, text)
    assert tick(path, plan, "a:auth")
    assert path.read_text() == text.replace("- [ ] auth", "- [x] auth").replace(
        "  - [ ] move the session code\n  - [x]", "  - [x] move the session code\n  - [x]")


def test_a_superpowers_task_ticks_its_steps_and_no_other_tasks(tmp_path):
    path = tmp_path / "plan.md"
    text = (FIXTURES / "superpowers-plan.md").read_text()
    plan = plan_at(path, text)
    assert tick(path, plan, "csv-export-implementation-plan:task-1")
    task_one, task_two = text.split("### Task 2", 1)
    assert path.read_text() == task_one.replace("- [ ] **Step", "- [x] **Step") + "### Task 2" + task_two
    assert tick(path, plan, "csv-export-implementation-plan:task-2")
    assert path.read_text() == text.replace("- [ ] **Step", "- [x] **Step")


def test_a_kiro_parent_is_ticked_with_its_last_sub_task_only(tmp_path):
    path = tmp_path / "tasks.md"
    text = (FIXTURES / "kiro-tasks.md").read_text().replace("  - [ ]* 2.3 Add property tests for quoting\n"
                                                             "    - _Requirements: 2.2_\n", "")
    plan = plan_at(path, text)
    sub_one, sub_two = "implementation-plan:2.1", "implementation-plan:2.2"
    assert tick(path, plan, sub_one)
    assert "- [ ] 2. Write the CSV writer" in path.read_text()  # 2.2 still open
    assert tick(path, plan, sub_two)
    assert "- [x] 2. Write the CSV writer" in path.read_text()
    # Unticking a sub-task leaves its parent as the user sees it: ticked.
    assert tick(path, plan, sub_one, done=False)
    assert "- [ ] 2.1" in path.read_text() and "- [x] 2. Write the CSV writer" in path.read_text()


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_file_with_either_line_ending_is_ticked_byte_exact(tmp_path, eol):
    path = tmp_path / "task.md"
    text = SIMPLE.replace("\n", eol)
    path.write_bytes(text.encode())
    plan = parse(text, path)
    assert tick(path, plan, "two:a")
    assert path.read_bytes() == text.replace("- [ ] a: second", "- [x] a: second").encode()
