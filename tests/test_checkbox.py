"""Ticking one item in place, on a real file and no process: which box, which boxes along with
it, and what the user's edits since the plan was read do to that. A box ticked wrongly is a
user's edit lost, or an item paid for again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from batch_tasks.plan.taskfile import load_plan, parse
from batch_tasks.state.checkbox import Moves, find_checkbox, set_checkbox

FIXTURES = Path(__file__).parent / "fixtures" / "dialects"


def plan_at(path: Path, text: str):
    path.write_text(text, encoding="utf-8")
    return parse(text, path)


def tick(path: Path, plan, key: str, done: bool = True, moves=None) -> bool:
    item = next(item for item in plan.items() if item.key == key)
    group = next(group for group in plan.groups if item in group.items)
    return set_checkbox(path, group, item, done, path.with_suffix(".lock"), moves)


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


def line_found(plan_text: str, key: str, data: str) -> tuple[int, int] | None:
    """Where find_checkbox finds the item of PLAN_TEXT in DATA: (1-based line, column of the mark)."""
    plan = parse(plan_text, Path("task.md"))
    item = next(item for item in plan.items() if item.key == key)
    group = next(group for group in plan.groups if item in group.items)
    raw = data.encode()
    offset = find_checkbox(raw, group, item)
    if offset is None:
        return None
    lines = raw[:offset].splitlines()
    return len(lines), len(lines[-1])


ONE = "# Plan\n## One\n- [ ] a: x\n## Two\n- [ ] b: y\n"
FOURTH = "# Plan\n## One\n\n- [ ] a: x\n"
AFTER_TWO = "# Plan\n## Two\n- [ ] a: x\n## One\n- [ ] a: x\n"


@pytest.mark.parametrize("plan_text, key, data, found", [
    (ONE, "one:a", ONE, (3, 3)),
    (ONE, "one:a", "# Plan\n## One\n- [x] a: x\n", (3, 3)),
    (ONE, "one:a", "# Plan\n## One\n- [X] a: x\n", (3, 3)),
    (ONE, "one:a", "# Plan\n## One\n- [-] a: x\n", None),  # no box of ours
    (ONE, "one:a", "# Plan\n## One\n- [ ]] a: x\n", None),  # starts and ends alike, but longer
    (ONE, "one:a", "# Plan\n## One\n- [ ] a: xx\n", None),
    (ONE, "one:a", "# Plan\n## One\n* [ ] a: x\n", None),
    (ONE, "one:a", "# Plan\n## One\n- [ ) a: x\n", None),
    (ONE, "one:a", "", None),
    (ONE, "one:a", "## One\n- [ ] a: x", (2, 3)),  # the last line, without a line end
    (ONE, "one:a", "# Plan\r## One\r\r- [ ] a: x\r", (4, 3)),  # old Mac line ends
    ("# Plan\n## One\n  - [ ] a: x\n", "one:a", "# Plan\n## One\n  - [ ] a: x\n", (3, 5)),
    # a code block's lines are neither items nor headings, however near
    (ONE, "one:a", "# Plan\n## One\n```\n- [ ] a: x\n```\n- [ ] a: x\n", (6, 3)),
    (ONE, "one:a", "# Plan\n## One\n~~~ text\n- [ ] a: x\n~~~\n- [ ] a: x\n", (6, 3)),
    (ONE, "one:a", "# Plan\n## One\n```\n~~~\n- [ ] a: x\n```\n- [ ] a: x\n", (7, 3)),  # closed by its own kind
    (ONE, "one:a", "# Plan\n## One\n   ```\n- [ ] a: x\n   ```\n- [ ] a: x\n", (6, 3)),  # three spaces in
    (ONE, "one:a", "# Plan\n## One\n    ```\n- [ ] a: x\n", (4, 3)),  # four: no fence
    (ONE, "one:a", "# Plan\n## One\n\t```\n- [ ] a: x\n", (4, 3)),  # nor a tab
    (AFTER_TWO, "two:a", "# Plan\n## One\n```\n## Two\n```\n- [ ] a: x\n## Two\n- [ ] a: x\n", (8, 3)),
    # under its own heading wins over nearer; a heading's trailing blanks do not matter
    (AFTER_TWO, "one:a", "# Plan\n## One  \n- [ ] a: x\n## Two\n- [ ] a: x\n", (3, 3)),
    (AFTER_TWO, "two:a", "# Plan\n## One\n- [ ] a: x\n## Two\n- [ ] a: x\n", (5, 3)),
    ("# Plan\n## One \n- [ ] a: x\n", "one:a", "## Two\n- [ ] a: x\n## One\n- [ ] a: x\n", (4, 3)),
    # of several under its heading, the nearest to its old line (ties: the first)
    (ONE, "one:a", "# Plan\n## One\n- [ ] a: x\nnote\nnote\n- [ ] a: x\n", (3, 3)),
    (FOURTH, "one:a", "## One\n- [ ] a: x\nnote\nnote\n- [ ] a: x\n", (5, 3)),
    (FOURTH, "one:a", "## One\nnote\n- [ ] a: x\nnote\nnote\n- [ ] a: x\n", (3, 3)),
    (FOURTH, "one:a", "## One\nnote\nnote\nnote\n- [ ] a: x\n- [ ] a: x\n", (5, 3)),
    # under no heading of its own (renamed): the nearest
    (AFTER_TWO, "one:a", "# Plan\n## Two\n- [ ] a: x\n## Uno\n- [ ] a: x\n", (5, 3)),
    (AFTER_TWO, "one:a", "\ufeff## Uno\n- [ ] a: x\n## Two\n\n\n- [ ] a: x\n", (6, 3)),
    # a BOM is no part of the first line: the heading there is still its heading
    (AFTER_TWO, "one:a", "\ufeff## One\n- [ ] a: x\n## Two\n- [ ] a: x\n", (2, 3)),
    (AFTER_TWO, "one:a", "## One\n- [ ] a: x\n## Two\n- [ ] a: x\n", (2, 3)),
])
def test_find_checkbox(plan_text, key, data, found):
    assert line_found(plan_text, key, data) == found


def test_a_line_that_is_no_checkbox_is_never_found():
    plan = parse(ONE, Path("task.md"))
    item = replace(plan.groups[0].items[0], source_line="a: x")
    assert find_checkbox(b"# Plan\n## One\na: x\n- [ ] a: x\n", plan.groups[0], item) is None


def loaded(path: Path, text: str):
    """The plan as a batch loads it: each item knows where its mark was in the file's bytes."""
    path.write_bytes(text.encode())
    return load_plan(path, for_dry_run=True)


# The user's edit in place keeps every byte's offset: the item's old place holds a line like its own.
@pytest.mark.parametrize("edited", [
    "# Plan\n## One\nz- [ ] b: first\n",  # the line before it lost its line end
    "# Plan\n## One\n\n- [ ] b: firsT\n",
    "# Plan\n## One\n\n* [ ] b: first\n",
    "# Plan\n## One\n\n- [-] b: first\n",
    "# Plan\n## One\n\n- [ ] b: firs\nt",
    "# Plan\n## One\n\n- [ ] b: first!",
])
def test_a_line_at_the_items_old_place_that_is_not_its_own_is_not_ticked(tmp_path, edited):
    path = tmp_path / "task.md"
    text = "# Plan\n## One\n\n- [ ] b: first\n"
    plan = loaded(path, text)
    assert len(edited) == len(text)
    path.write_text(edited)
    before = path.read_bytes()
    assert not tick(path, plan, "one:b")
    assert path.read_bytes() == before


@pytest.mark.parametrize("text, edited", [
    (SIMPLE, SIMPLE),
    (SIMPLE, SIMPLE.replace("- [ ] a: first", "- [x] a: first")),
    (SIMPLE.rstrip("\n"), SIMPLE.rstrip("\n")),  # its line is the last, with no line end
    (SIMPLE.replace("\n", "\r"), SIMPLE.replace("\n", "\r")),
    ("\ufeff" + SIMPLE, "\ufeff" + SIMPLE),
    (SIMPLE, SIMPLE.replace("# Plan\n", "# Plan, longer now\n\n")),
    (SIMPLE, SIMPLE.replace("# Plan\n", "")),
])
def test_a_loaded_plans_items_are_ticked_where_they_are(tmp_path, text, edited):
    path = tmp_path / "task.md"
    plan = loaded(path, text)
    path.write_bytes(edited.encode())
    for key, line in [("two:a", "- [ ] a: second"), ("one:b", "- [ ] b: first")]:
        assert tick(path, plan, key)
        edited = edited.replace(line, line.replace("[ ]", "[x]"))
        assert path.read_bytes() == edited.encode()


def test_a_task_file_that_is_gone_is_not_ticked(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, SIMPLE)
    path.unlink()
    assert not tick(path, plan, "one:a")
    assert not path.exists()


NESTED = ("# A\n- [ ] auth: split it\n  - [ ] move the code\n  - [ ] move the code\n\n  Notes on it\n"
          "  - [ ] keep the names\n- [ ] billing: split it\n  - [ ] keep the names\n")


@pytest.mark.parametrize("edited, ticked", [
    (NESTED, NESTED.replace("[ ] auth", "[x] auth").replace("  - [ ] move the code\n  - [ ] move the code\n\n",
                                                          "  - [x] move the code\n  - [x] move the code\n\n")
     .replace("  - [ ] keep the names\n- [ ] billing", "  - [x] keep the names\n- [ ] billing")),
    # a sub-box the user changed stays as it is, the others tick; a line added above one does not lose it
    (NESTED.replace("  - [ ] keep the names\n- [ ] billing", "  - [ ] keep the names, all\n- [ ] billing"),
     NESTED.replace("[ ] auth", "[x] auth").replace("  - [ ] move the code\n  - [ ] move the code\n\n",
                                                   "  - [x] move the code\n  - [x] move the code\n\n")
     .replace("  - [ ] keep the names\n- [ ] billing", "  - [ ] keep the names, all\n- [ ] billing")),
    # a box the user added just above one, as long as it and starting alike, is not it
    (NESTED.replace("  Notes on it\n", "  Notes on it\n  - [ ] keep the games\n"),
     NESTED.replace("  Notes on it\n", "  Notes on it\n  - [ ] keep the games\n").replace("[ ] auth", "[x] auth")
     .replace("  - [ ] move the code\n  - [ ] move the code\n\n", "  - [x] move the code\n  - [x] move the code\n\n")
     .replace("  - [ ] keep the names\n- [ ] billing", "  - [x] keep the names\n- [ ] billing")),
    (NESTED.replace("  Notes on it\n", "  Notes on it\n  - [ ] a box the user added\n"),
     NESTED.replace("  Notes on it\n", "  Notes on it\n  - [ ] a box the user added\n").replace("[ ] auth", "[x] auth")
     .replace("  - [ ] move the code\n  - [ ] move the code\n\n", "  - [x] move the code\n  - [x] move the code\n\n")
     .replace("  - [ ] keep the names\n- [ ] billing", "  - [x] keep the names\n- [ ] billing")),
])
def test_sub_boxes_tick_along_in_the_items_block_only(tmp_path, edited, ticked):
    path = tmp_path / "task.md"
    plan = plan_at(path, NESTED)
    path.write_text(edited)
    assert tick(path, plan, "a:auth")
    assert path.read_text() == ticked


def test_a_sub_box_far_down_a_long_block_ticks_along(tmp_path):
    path = tmp_path / "task.md"
    about = "  A line of what it is about, at some length.\n" * 2000  # far past the first read
    text = "# A\n- [ ] auth: split it\n" + about + "  - [ ] last\n- [ ] b: x\n"
    plan = plan_at(path, text)
    assert tick(path, plan, "a:auth")
    assert path.read_text() == text.replace("- [ ] auth", "- [x] auth").replace("  - [ ] last", "  - [x] last")


SUPERPOWERS = ("# Plan\n\n> **For agentic workers:** REQUIRED SUB-SKILL: Use superpowers:executing-plans to implement "
               "this plan task-by-task.\n\n### Task 1: Tests\n\n- [ ] **Step 1: Write the test**\n\n"
               "- [ ] **Step 2: Commit**\n\n### Task 2: Code\n\n- [ ] **Step 1: Write the code**\n\n"
               "- [ ] **Step 2: Commit**\n")
STEP_TWO = "\n\n- [ ] **Step 2: Commit**\n\n### Task 2"


@pytest.mark.parametrize("edited, ticked", [
    (SUPERPOWERS, SUPERPOWERS.replace("- [ ] **Step", "- [x] **Step", 2)),
    # its step moved down: found; its step changed: the next task's same step is not it
    (SUPERPOWERS.replace(STEP_TWO, "\n\nRun: it" + STEP_TWO),
     SUPERPOWERS.replace(STEP_TWO, "\n\nRun: it" + STEP_TWO).replace("- [ ] **Step", "- [x] **Step", 2)),
    (SUPERPOWERS.replace("- [ ] **Step 2: Commit**\n\n### Task 2", "- [ ] **Step 2: Commit it**\n\n### Task 2"),
     SUPERPOWERS.replace("- [ ] **Step 2: Commit**\n\n### Task 2", "- [ ] **Step 2: Commit it**\n\n### Task 2")
     .replace("- [ ] **Step 1", "- [x] **Step 1", 1)),
    # indented under another box, it is that box's, not a step of the task
    (SUPERPOWERS.replace("- [ ] **Step 2: Commit**\n\n### Task 2", "- [ ] **Step 2: Commit it**\n- [ ] Review:\n"
                         "  - [ ] **Step 2: Commit**\n\n### Task 2"),
     SUPERPOWERS.replace("- [ ] **Step 2: Commit**\n\n### Task 2", "- [ ] **Step 2: Commit it**\n- [ ] Review:\n"
                         "  - [ ] **Step 2: Commit**\n\n### Task 2").replace("- [ ] **Step 1", "- [x] **Step 1", 1)),
])
def test_a_superpowers_task_ticks_its_own_steps_in_its_own_section(tmp_path, edited, ticked):
    path = tmp_path / "plan.md"
    plan = plan_at(path, SUPERPOWERS)
    path.write_text(edited)
    assert tick(path, plan, "plan:task-1")
    assert path.read_text() == ticked


KIRO = ("# Implementation Plan\n\n- [ ] 1. Set up\n\n- [ ] 2. Write the CSV writer\n  - [ ] 2.1 Write the header row\n"
        "  - [ ] 2.2 Write one row per record\n  - [ ] 2.3 Write the footer\n")


@pytest.mark.parametrize("edited, parent_ticked", [
    (KIRO.replace("[ ] 2.1", "[x] 2.1").replace("[ ] 2.2", "[X] 2.2"), True),
    (KIRO.replace("[ ] 2.1", "[x] 2.1"), False),  # 2.2 still open
    (KIRO.replace("[ ] 2.1", "[x] 2.1").replace("[ ] 2.2 Write one row per record", "[x] 2.2 Write one row each"), False),
    (KIRO.replace("[ ] 2.1", "[x] 2.1").replace("[ ] 2.2", "[x] 2.2").replace("2. Write the CSV", "2. Write a CSV"), False),
    (KIRO.replace("[ ] 2.1", "[x] 2.1").replace("[ ] 2.2", "[x] 2.2").replace("- [ ] 1. Set up\n", "- [ ] 1. Set up\n\n\n"),
     True),
    # a ticked copy of a sub-task's line just above or below it is not that sub-task
    (KIRO.replace("[ ] 2.2", "[x] 2.2").replace("- [ ] 1. Set up\n\n",
                                                "- [ ] 1. Set up\n  - [x] 2.1 Write the header row\n"),
     False),
    (KIRO.replace("[ ] 2.2 Write one row per record\n",
                  "[x] 2.2 Write one row per record\n  - [x] 2.1 Write the header row\n"),
     False),
])
def test_a_kiro_parent_ticks_with_its_last_sub_task_once_the_others_are(tmp_path, edited, parent_ticked):
    (tmp_path / ".kiro").mkdir()
    path = tmp_path / ".kiro" / "tasks.md"
    plan = plan_at(path, KIRO)
    path.write_text(edited)
    assert tick(path, plan, "implementation-plan:2.3")
    assert "- [x] 2.3 Write the footer" in path.read_text()
    parent = "- [x] 2. Write" if parent_ticked else "- [ ] 2. Write"
    assert path.read_text() == edited.replace("[ ] 2.3", "[x] 2.3").replace("- [ ] 2. Write", parent)


# The user renamed the item's heading and wrote a copy of its line under a new heading of the old
# name: the item's own line, still where it was, is the one ticked.
RENAMED = "# Plan\n## One\n- [ ] a: x\n- [ ] b: y\n## Two\n- [ ] c: z\n"


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_an_items_line_where_it_was_is_ticked_there(tmp_path, eol):
    path = tmp_path / "task.md"
    text = RENAMED.replace("\n", eol)
    plan = loaded(path, text)
    edited = text.replace("## One", "## Eno") + "## One" + eol + "- [ ] a: x" + eol
    path.write_bytes(edited.encode())
    assert tick(path, plan, "one:a")
    assert path.read_bytes() == edited.replace("- [ ] a: x", "- [x] a: x", 1).encode()


def test_the_last_line_where_it_was_is_ticked_there(tmp_path):
    path = tmp_path / "task.md"
    text = RENAMED.removesuffix("\n")
    plan = loaded(path, text)
    above, below = text.rsplit("## Two", 1)
    edited = above.replace("## One\n- [ ] a: x\n", "## Two\n- [ ] c: z\n") + "## Twe" + below
    assert len(edited) == len(text)
    path.write_text(edited)
    assert tick(path, plan, "two:c")
    assert path.read_text() == edited[:-len("[ ] c: z")] + "[x] c: z"


def test_after_one_item_was_found_moved_the_next_is_looked_for_as_far_moved(tmp_path):
    path = tmp_path / "task.md"
    plan = loaded(path, RENAMED)
    edited = RENAMED.replace("# Plan\n", "# Plan\nA line the user wrote\n").replace("## One", "## Eno")
    edited += "## One\n- [ ] b: y\n"
    path.write_text(edited)
    run = Moves()  # one run's ticks: the second is looked for as far as the first was found moved
    assert tick(path, plan, "one:a", moves=run) and tick(path, plan, "one:b", moves=run)
    assert path.read_text() == edited.replace("- [ ] a: x\n- [ ] b: y", "- [x] a: x\n- [x] b: y")


def test_an_item_gone_is_not_found_where_another_moved_to(tmp_path):
    path = tmp_path / "task.md"
    text = "# P\n## One\n- [ ] b: y\n" + "x\n" * 7 + "- [ ] a: x\n"
    plan = loaded(path, text)
    edited = "# P\n## One\n- [ ] b: z\n- [ ] a: x\n"  # a moved up by 14 bytes, b's line changed
    path.write_text(edited)
    assert tick(path, plan, "one:a")
    assert not tick(path, plan, "one:b")
    assert path.read_text() == edited.replace("[ ] a", "[x] a")


def test_unticking_clears_a_capital_x_and_the_sub_boxes_ticked_along(tmp_path):
    path = tmp_path / "task.md"
    plan = plan_at(path, NESTED)
    assert tick(path, plan, "a:auth")
    path.write_text(path.read_text().replace("[x] auth", "[X] auth"))
    assert tick(path, plan, "a:auth", done=False)
    assert path.read_text() == NESTED


def test_an_items_block_that_ends_the_file_has_its_sub_boxes_ticked(tmp_path):
    path = tmp_path / "task.md"
    text = "# A\n- [ ] auth: split it\n  - [ ] move the code"
    plan = plan_at(path, text)
    assert tick(path, plan, "a:auth")
    assert path.read_text() == text.replace("[ ]", "[x]")


def test_a_superpowers_tasks_two_same_steps_both_tick(tmp_path):
    path = tmp_path / "plan.md"
    text = SUPERPOWERS.replace("- [ ] **Step 2: Commit**\n\n### Task 2",
                               "- [ ] **Step 2: Run it**\n\n- [ ] **Step 2: Run it**\n\n### Task 2")
    plan = plan_at(path, text)
    assert tick(path, plan, "plan:task-1")
    assert path.read_text() == text.replace("- [ ] **Step", "- [x] **Step", 3)
    assert tick(path, plan, "plan:task-1", done=False)
    assert path.read_text() == text
