"""Forgiving where the author meant no harm, strict where a mistake costs money: each
warning, note and error about how task.md is read, at its line."""

from pathlib import Path

import pytest

from batch_tasks.errors import TaskFileError
from batch_tasks.plan.taskfile import load_plan, parse

AGENT = "---\nagent: claude\n---\n"


def plan_of(text: str, name: str = "task.md"):
    return parse(text, Path(name))


@pytest.mark.parametrize(
    "key, meant", [("paralel", "parallel"), ("retrys", "retries"), ("max_concurent", "max_concurrent"), ("modle", "model")]
)
def test_a_near_miss_of_a_setting_is_an_error_that_names_it(key, meant):
    with pytest.raises(TaskFileError) as error:
        plan_of(f"---\nagent: claude\n{key}: 2\n---\n# A\n- [ ] x: y\n")
    assert (error.value.line, error.value.message) == (3, f"unknown setting {key!r}: did you mean {meant!r}?")


def test_metadata_is_kept_and_ignored_with_a_note():
    plan = plan_of("---\ntitle: Export\nagent: claude\ntags: [csv, api]\nstatus: draft\ndate: 2026-11-30\n---\n# A\n- [ ] x: y\n")
    assert plan.metadata == {"title": "Export", "tags": ("csv", "api"), "status": "draft", "date": "2026-11-30"}
    assert [line for line, _ in plan.notes] == [2, 4, 5, 6]
    assert plan.notes[0][1] == "front matter 'title' is metadata, not a setting: kept and ignored"
    assert set(plan.settings) == {"agent"}


def test_a_comment_is_a_hint_only_when_its_key_is_a_setting_in_lower_case():
    plan = plan_of(AGENT + "# A\n<!-- ITO:START -->\n<!-- owner: ana -->\n- [ ] x: y\n<!-- ITO:END -->\n")
    assert plan.groups[0].limit is None and plan.warnings == ()


@pytest.mark.parametrize("key", ["paralel", "Parallel", "max-turns"])
def test_a_near_miss_of_a_setting_in_a_hint_is_an_error_as_in_the_front_matter(key):
    with pytest.raises(TaskFileError) as error:
        plan_of(AGENT + f"# A\n<!-- ITO:START -->\n<!-- {key}: 2 -->\n- [ ] x: y\n")
    meant = "max_turns" if key == "max-turns" else "parallel"
    assert (error.value.line, error.value.message) == (6, f"unknown hint {key!r}: did you mean {meant!r}?")


@pytest.mark.parametrize(
    "line, why",
    [
        ("- [ ]* optional", "\"- [ ]*\" marks an optional task only in Kiro's format (`format: kiro`)"),
        ("- [-] in progress", 'only "[ ]", "[x]" and "[X]" are checkboxes, not "[-]"'),
        ("- [~] half done", 'only "[ ]", "[x]" and "[X]" are checkboxes, not "[~]"'),
        ("- [] no space", 'a checkbox has a space between its brackets: "[ ]"'),
        ("-[ ] tight", 'a space must follow the list marker: "- [ ]"'),
        ("- [ ]done", 'a space must follow the checkbox, before "d"'),
        ("  - [-] nested, in progress", 'only "[ ]", "[x]" and "[X]" are checkboxes, not "[-]"'),
    ],
)
def test_lines_that_look_like_items_but_are_not_are_warned_at_their_line(line, why):
    plan = plan_of(AGENT + f"# A\n- [ ] x: y\n  and more\n{line}\n\n```\n{line}\n```\n")
    assert plan.warnings == ((7, f"looks like an item but is not one: {why}"),)


def test_kiro_optional_marker_is_an_item_there():
    plan = plan_of("---\nagent: claude\nformat: kiro\n---\n# A\n- [ ] 1. one\n- [ ]* 2. two\n")
    assert plan.warnings == () and [i.optional for i in plan.items()] == [False, True]


def test_an_item_that_loses_the_blocks_under_it_is_warned():
    text = AGENT + "# A\n- [ ] tests: **Step 1: Write the failing test**\n\n```python\ndef test_x(): ...\n```\n\n- [ ] docs: write them\n  Indented: part of it.\n"
    plan = plan_of(text)
    assert plan.warnings == ((5, "this item's instruction is its first line only: the block at line 7 is not indented "
                              "under it, so the agent will not see it (indent it, or use `format: checklist`)"),)


def test_a_plan_without_items_is_an_error_that_says_what_it_found(batch):
    tasks = "".join(f"### Task {n}: step {n}\n\n- **Status**: [ ]\n- **Files:** `a{n}.py`\n\n" for n in range(1, 6))
    batch.write("# Plan\n\n" + tasks)
    for command in (("run-batch",), ("run-batch", "--dry-run")):
        result = batch.run(*command)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().endswith(
            'task.md:7: found 5 "### Task" headings, 5 "[ ]" boxes inside lines (line 9) and no "- [ ]" items: nothing to run'
        )


def test_identical_heading_paths_stay_an_error():
    with pytest.raises(TaskFileError) as error:
        plan_of(AGENT + "# Spec\n## Tasks\n- [ ] x: a\n## Tasks\n- [ ] y: b\n")
    assert (error.value.line, error.value.message) == (7, "group 'spec/tasks' has the same name as the group at line 5")


def test_a_missing_agent_names_the_front_matter_and_spares_dry_runs(tmp_path):
    path = tmp_path / "task.md"
    path.write_text("# A\n- [ ] x: y\n")
    plan = load_plan(path, for_dry_run=True)
    assert [i.key for i in plan.items()] == ["a:x"]
    assert plan.agent_problem[0] == 1 and plan.agent_problem[1].startswith(
        "there is no front matter, so it names no agent, and the default, agent 'command', needs a `command:` setting"
    )
    with pytest.raises(TaskFileError) as error:
        load_plan(path)
    assert error.value.line == 1 and "front matter" in error.value.message
    path.write_text("---\nparallel: 2\n---\n# A\n- [ ] x: y\n")
    assert load_plan(path, for_dry_run=True).agent_problem[1].startswith("the front matter names no agent")
    path.write_text("---\nparallel: 2\nagent: command\n---\n# A\n- [ ] x: y\n")
    assert load_plan(path, for_dry_run=True).agent_problem == (
        3, 'agent \'command\' needs a `command:` setting, e.g. command: [python3, tool.py, "{module}"]'
    )


def test_superpowers_tasks_without_steps_and_boxes_outside_tasks_are_warned():
    text = (
        AGENT + "# Plan\n\n> Use superpowers:executing-plans.\n\n- [ ] read the plan\n\n"
        "### Task 1: One\n\n- [ ] **Step 1: Do it**\n\n### Task 2: Two\n\nJust prose.\n"
    )
    plan = plan_of(text)
    assert plan.dialect == "superpowers" and [i.key for i in plan.items()] == ["plan:task-1"]
    assert plan.warnings == (
        (8, 'this checkbox is in no "### Task" section: it is not an item'),
        (14, '"Task 2: Two" has no "- [ ]" step: it is not an item'),
    )
