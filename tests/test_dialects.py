"""Each dialect read from a realistic file: its groups, keys, instructions and edges,
and why the file was read so."""

import hashlib
from pathlib import Path

import pytest

from batch_tasks.plan.taskfile import parse

FIXTURES = Path(__file__).parent / "fixtures" / "dialects"


def read(name: str, text: str | None = None, path: Path | None = None):
    source = FIXTURES / name
    return parse(text if text is not None else source.read_text(), path or source)


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def waits(plan) -> dict[str, list[str]]:
    return {item.key: plan.task_dep(item) for item in plan.items()}


def made(text: str) -> str:
    """A made module's hash: of the item's text."""
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def test_speckit_phases_ids_and_parallel_runs():
    text = (FIXTURES / "speckit-tasks.md").read_text()
    plan = read("speckit-tasks.md")
    assert plan.dialect == "speckit"
    assert plan.dialect_reason == f'read as a spec-kit task list: the "## Format: [ID] [P?] [Story]" line {line_of(text, "## Format")}'
    assert plan.notes == ((2, "front matter 'description' is metadata, not a setting: kept and ignored"),)
    assert plan.metadata == {"description": "Task list for the CSV export feature"} and "description" not in plan.settings
    assert plan.warnings == ()
    assert [g.slug for g in plan.groups] == ["phase-1-setup", "tests-for-user-story-1", "implementation-for-user-story-1"]
    assert plan.groups[0].body == "**Purpose**: Project initialization"
    setup = "phase-1-setup"
    tests = "tests-for-user-story-1"
    impl = "implementation-for-user-story-1"
    # A task without [P] waits for everything before it in its group; a run of [P] tasks runs together.
    assert waits(plan) == {
        f"{setup}:T001": [],
        f"{setup}:T002": [f"{setup}:T001"],
        f"{setup}:T003": [f"{setup}:T001"],
        f"{tests}:T004": [setup],
        f"{tests}:T005": [setup],
        f"{impl}:T006": [tests],
        f"{impl}:T007": [f"{impl}:T006"],
        f"{impl}:T008": [f"{impl}:T007"],
        f"{impl}:T009": [f"{impl}:T007"],
    }
    items = {item.module: item for item in plan.items()}
    assert items["T004"].instruction == "[US1] Contract test for `GET /reports/{id}.csv` in tests/contract/test_export.py"
    assert items["T007"].text == "[US1] Fill `columns` from the query in export/service.py (depends on T006)"
    assert items["T008"].done and not items["T009"].done
    # Items waiting for the same things share one tuple (staleness and the critical path group by it).
    assert plan.upstream(items["T002"]) is plan.upstream(items["T003"])
    assert plan.upstream(items["T004"]) is plan.upstream(items["T005"])


def test_kiro_subtasks_are_the_work_and_optional_tasks_wait_for_nothing_after_them():
    text = (FIXTURES / "kiro-tasks.md").read_text()
    plan = read("kiro-tasks.md", path=Path("/repo/.kiro/specs/export/tasks.md"))
    assert (plan.dialect, plan.dialect_reason) == ("kiro", "read as a Kiro task list: the file is in a .kiro folder")
    assert read("kiro-tasks.md").dialect_reason == (
        f'read as a Kiro task list: numbered tasks, and an optional one "- [ ]*" at line {line_of(text, "- [ ]*")}'
    )
    (group,) = plan.groups
    assert [i.key for i in group.items] == [f"implementation-plan:{n}" for n in ("1", "2.1", "2.2", "2.3", "3", "4", "5")]
    key = "implementation-plan:"
    assert waits(plan) == {
        key + "1": [],
        key + "2.1": [key + "1"],
        key + "2.2": [key + "2.1"],
        key + "2.3": [key + "2.2"],
        key + "3": [key + "2.2"],  # (P): 3 and 4 together; the optional 2.3 holds nothing up
        key + "4": [key + "2.2"],
        key + "5": [key + "3", key + "4"],
    }
    items = {item.module: item for item in plan.items()}
    assert items["2.1"].instruction == (
        "Write the header row from the report's columns\n- Quote names that contain commas\n- _Requirements: 2.1, 2.2_"
    )
    assert items["2.3"].optional and not items["2.2"].optional
    assert items["3"].text == "Add the download endpoint"
    parent = line_of(text, "- [ ] 2. Write")
    assert items["2.2"].parent_box == (parent, "- [ ] 2. Write the CSV writer")
    assert items["2.2"].parent_needs == ((parent + 1, "  - [ ] 2.1 Write the header row from the report's columns"),)
    assert items["2.1"].parent_box is None and items["2.3"].parent_box is None


def test_superpowers_tasks_are_items_with_their_whole_sections():
    text = (FIXTURES / "superpowers-plan.md").read_text()
    plan = read("superpowers-plan.md")
    assert plan.dialect == "superpowers"
    assert plan.dialect_reason == f'read as a superpowers plan: the "### Task 1: The CSV writer" heading, line {line_of(text, "### Task 1")}'
    (group,) = plan.groups
    assert group.slug == "csv-export-implementation-plan"
    assert "**Goal:** Let users download a report as CSV." in group.body
    first, second = group.items
    assert (first.key, second.key) == ("csv-export-implementation-plan:task-1", "csv-export-implementation-plan:task-2")
    assert waits(plan) == {first.key: [], second.key: [first.key]}
    section = text[text.index("### Task 1") : text.index("### Task 2")]
    assert first.text == "The CSV writer"
    assert first.body == section.split("\n", 1)[1].strip()
    assert 'assert write_rows([], ["a", "b"]) == "a,b\\r\\n"' in first.instruction
    assert "git commit -m \"Add the CSV writer\"" in first.instruction and "- Create: `export/writer.py`" in first.instruction
    steps = [n for n, line in enumerate(text.split("\n"), 1) if line.startswith("- [ ] **Step")]
    assert first.line == steps[0] and first.source_line == "- [ ] **Step 1: Write the failing test**"
    assert first.also_ticks == (
        (steps[1], "- [ ] **Step 2: Run the test to see it fail**"),
        (steps[2], "- [ ] **Step 3: Commit**"),
    )
    assert second.line == steps[3] and second.also_ticks == ((steps[4], "- [ ] **Step 2: Commit**"),)
    # Generic step titles are no modules: nothing links Task 2's Step 1 to Task 1's.
    assert plan.previous(second) is None


def test_checklist_items_own_what_follows_and_run_one_at_a_time():
    plan = read("fix_plan.md")
    assert (plan.dialect, plan.dialect_reason) == ("checklist", "read as a plain checklist: the file is named fix_plan.md")
    high, later = plan.groups
    keys = [item.key for item in plan.items()]
    assert keys == [
        f"high-priority:fix-the-off-by-one-in-pagination-{made('Fix the off-by-one in pagination')}",
        f"high-priority:run-pytest-tests-test-pages-py-{made('Run: pytest tests/test_pages.py')}",
        f"high-priority:run-pytest-tests-test-export-py-{made('Run: pytest tests/test_export.py')}",
        f"later:remove-the-unused-legacy-export-module-{made('Remove the unused `legacy_export` module')}",
        f"later:run-the-whole-test-suite-{made('Run the whole test suite')}",
        f"later:run-the-whole-test-suite-{made('Run the whole test suite')}-2",
    ]
    assert waits(plan) == {
        keys[0]: [], keys[1]: [keys[0]], keys[2]: [keys[1]],
        keys[3]: ["high-priority"], keys[4]: [keys[3]], keys[5]: [keys[4]],
    }
    # The un-indented code block after "Run: pytest tests/test_pages.py" is part of it.
    assert high.items[1].instruction == (
        "Run: pytest tests/test_pages.py\n```text\nFAILED tests/test_pages.py::test_last_page\n```"
    )
    assert high.items[0].body == "The last page repeats the first row of the next."
    assert all(plan.previous(item) is None for item in later.items)


def test_a_hand_written_todo_is_a_checklist_and_a_named_module_makes_a_batch():
    todo = read("x", "---\nagent: claude\n---\n# Todo\n- [ ] Fix the login bug\n- [ ] Note: ask about the logo\n", Path("t.md"))
    assert todo.dialect_reason == 'read as a plain checklist: no item names a module (the first, line 5: "Fix the login bug")'
    named = read("x", "---\nagent: claude\n---\n# Todo\n- [ ] Fix the login bug\n- [ ] auth: split it\n", Path("t.md"))
    assert named.dialect_reason == 'read as a batch task list: its items name their modules ("auth:" line 6)'
    chosen = read("x", "---\nagent: claude\nformat: kiro\n---\n# Todo\n- [ ] auth: split it\n", Path("t.md"))
    assert chosen.dialect_reason == "read as a Kiro task list: `format: kiro` in the front matter, line 3"


def test_group_order_sequential_makes_a_batch_group_run_in_order():
    text = "---\nagent: claude\ngroup_order: sequential\n---\n# A\n- [ ] x: one\n- [ ] y: two\n# B\n<!-- group_order: parallel -->\n- [ ] x: three\n- [ ] y: four\n"
    plan = read("x", text, Path("t.md"))
    assert waits(plan) == {"a:x": [], "a:y": ["a:x"], "b:x": ["a"], "b:y": ["a"]}
    plain = read("x", text.replace("group_order: sequential\n", ""), Path("t.md"))
    assert waits(plain) == {"a:x": [], "a:y": [], "b:x": ["a"], "b:y": ["a"]}


def test_pipeline_edges_only_between_modules_someone_named():
    text = (
        "---\nagent: claude\npipeline: true\n---\n# One\n- [ ] auth: list it\n- [ ] Write the summary\n"
        "# Two\n- [ ] auth: split it\n- [ ] Write the summary\n"
    )
    plan = read("x", text, Path("t.md"))
    assert plan.dialect == "batch"
    assert waits(plan) == {
        "one:auth": [], "one:write-the-summary": [], "two:auth": ["one:auth"], "two:write-the-summary": ["one"],
    }
    items = {item.key: item for item in plan.items()}
    assert plan.previous(items["two:auth"]) is items["one:auth"]
    assert plan.previous(items["two:write-the-summary"]) is None


def test_long_texts_get_a_hash_not_a_bare_cut():
    long = "Rewrite the pagination of every report so that the last page never repeats a row"
    text = f"---\nagent: claude\n---\n# A\n- [ ] x: short\n- [ ] {long}, first\n- [ ] {long}, second\n"
    plan = read("x", text, Path("t.md"))
    modules = [item.module for item in plan.items()][1:]
    assert modules == [f"rewrite-the-pagination-of-every-report-{made(long + ', first')}",
                       f"rewrite-the-pagination-of-every-report-{made(long + ', second')}"]


def test_same_heading_under_different_parents_gets_qualified_names():
    text = "---\nagent: claude\n---\n# spec-a.md\n## Tasks\n- [ ] x: a\n# spec-b.md\n## Tasks\n- [ ] x: b\n"
    plan = read("x", text, Path("t.md"))
    assert [g.slug for g in plan.groups] == ["spec-a-md/tasks", "spec-b-md/tasks"]
    assert [i.key for i in plan.items()] == ["spec-a-md/tasks:x", "spec-b-md/tasks:x"]


@pytest.mark.parametrize("dialect", ["batch", "speckit", "checklist"])
def test_nested_boxes_tick_along_with_their_item(dialect):
    text = f"---\nagent: claude\nformat: {dialect}\n---\n# A\n- [ ] x: the parent\n  - [ ] a nested step\n  - [x] another\n"
    (item,) = read("x", text, Path("t.md")).items()
    assert item.also_ticks == ((7, "  - [ ] a nested step"), (8, "  - [x] another"))


def test_a_capitalized_word_before_a_colon_is_prose_not_a_module():
    text = "---\nagent: claude\n---\n# A\n- [ ] auth: split it\n- [ ] Run: pnpm test\n- [ ] Run: pnpm lint\n- [ ] `Run`: it\n"
    plan = read("x", text, Path("t.md"))
    assert [(i.module, i.text) for i in plan.items()] == [
        ("auth", "split it"), ("run-pnpm-test", "Run: pnpm test"), ("run-pnpm-lint", "Run: pnpm lint"), ("Run", "it"),
    ]


def test_front_matter_another_tool_wrote_is_kept_as_metadata_but_a_batch_task_md_refuses_it():
    from batch_tasks.errors import TaskFileError

    front = "---\nplan_id: nav_refactor\ntotal_tasks: 12\ncompleted_tasks: 6\n---\n"
    execplan = front + (FIXTURES / "execplan.md").read_text()
    plan = read("execplan.md", execplan)
    assert plan.dialect == "execplan" and plan.metadata["total_tasks"] == 12
    assert (3, "front matter 'total_tasks' is no setting: kept and ignored, as metadata of a plan another tool "
            "wrote") in plan.notes
    with pytest.raises(TaskFileError) as raised:
        parse(front + "# Work\n## Do\n- [ ] alpha: edit alpha\n", Path("task.md"))
    assert raised.value.line == 3 and "unknown setting 'total_tasks' (known: " in str(raised.value)
    with pytest.raises(TaskFileError, match="unknown setting 'paralel': did you mean 'parallel'"):
        read("execplan.md", "---\nparalel: 2\n---\n" + (FIXTURES / "execplan.md").read_text())


CHECKPOINTS = """# Navigation refactor

### Checkpoint 1: Remove the nested stack

**Changes**:

- [ ] Remove the `NavigationStack` wrapper from `StartMatchScreen.swift`

**Acceptance Criteria**:

- [ ] Zero `NavigationStack` instances in `StartMatchScreen`
- [ ] Unit tests pass: `swift test --filter Navigation`

**Rollback**: revert to the callbacks.
"""


def test_a_list_led_in_by_acceptance_criteria_is_a_gate_of_its_section_not_work():
    plan = read("checkpoints.md", CHECKPOINTS, Path("plans/checkpoints.md"))
    assert [item.line for item in plan.items()] == [7]
    [group] = plan.groups
    assert group.settings["check"] == ("sh", "-ec", "swift test --filter Navigation")
    assert (11, "for a person to verify (not run, never ticked): Zero `NavigationStack` instances in "
            "`StartMatchScreen`") in plan.notes


def test_a_superpowers_plans_success_criteria_are_explained_once_not_warned_of():
    text = (FIXTURES / "superpowers-plan.md").read_text() + "\n## Success Criteria\n\n- [ ] `lib/writer.py` exists\n"
    plan = read("superpowers-plan.md", text)
    line = len(text.splitlines())
    assert [message for at, message in plan.warnings if at == line] == []
    assert (line, "for a person to verify (not run, never ticked): `lib/writer.py` exists") in plan.notes


PHASES_LED = """# Plan: Filename validation

## Implementation Phases

### Phase 1: Create the string extension

**File**: `Sources/String+Filename.swift`

**Verification:**
- [ ] Automated: `make build` succeeds
- [ ] Manual: the file appears in the project navigator

### Phase 2: Apply it when saving

**Verification:**
- [ ] Automated: `make test` passes

## Success Criteria

- [ ] Voice note "Q1/Q2 Planning" creates `Q1-Q2 Planning.md`
"""


def test_phases_whose_criteria_are_led_in_by_a_bold_line_are_one_item_each_checked_by_their_commands():
    plan = read("plan.md", PHASES_LED, Path("thoughts/shared/plans/filename-validation.md"))
    assert plan.dialect == "phases"
    assert [(item.key, item.line) for item in plan.items()] == [
        ("phase-1-create-the-string-extension:phase-1", 10), ("phase-2-apply-it-when-saving:phase-2", 16)]
    assert [group.settings["check"] for group in plan.groups] == [("sh", "-ec", "make build"), ("sh", "-ec", "make test")]
    assert (11, "for a person to verify (not run, never ticked): Manual: the file appears in the project navigator") \
        in plan.notes
    assert (20, 'for a person to verify (not run, never ticked): Voice note "Q1/Q2 Planning" creates `Q1-Q2 '
            'Planning.md`') in plan.notes  # a file name is no command


class _CountedLines(list):
    """The file's lines, counting how many times a line is read."""

    reads = 0

    def __getitem__(self, index):
        _CountedLines.reads += 1
        return super().__getitem__(index)


def test_the_lists_lead_ins_are_read_once_per_line_not_once_per_box():
    """Every box asks what leads its list; a 10,000-item list must not be read 10,000 times
    over (its first run spent most of its loading so), and each answer stays the line above the list."""
    from batch_tasks.plan import gates, outline

    lines = ["# Plan", "", "**Acceptance Criteria**:", *[f"- [ ] `make t{n}`" for n in range(2000)], "",
             "## Work", "", "Before implementing, verify:", "- [ ] the tree is clean", "", "- [ ] m: real work"]
    read = outline.read(lines, 0)
    counted = _CountedLines(lines)
    read.lines = counted
    _CountedLines.reads = 0
    leads = {box.line: gates.lead_in(read, box.line) for box in read.boxes}
    assert _CountedLines.reads <= 3 * len(lines)
    assert [leads[box.line] for box in read.boxes[:2000]] == [3] * 2000
    assert [leads[box.line] for box in read.boxes[2000:]] == [2007, 2007]  # through a blank line, not a heading
    assert gates.lead_in(read, 2006) is None and gates.lead_in(read, 1) is None  # a heading first; nothing above
