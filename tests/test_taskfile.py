"""The task.md format: what is an item, what belongs to it, and one clear error for each mistake."""

from pathlib import Path

import pytest

from batch_tasks.errors import TaskFileError
from batch_tasks.plan.taskfile import parse

FULL = """\
---
agent: command
command: [python3, tools/summarize.py, "{module}"]
parallel: 4
---
# Split the monolith

Some prose, and a plain list:
- not an item

## Inventory
- [ ] auth: list the public functions of `src/auth/`
* [ ] billing: list the public functions of `src/billing/`
  Also note any global state.

  ```sh
  - [ ] not an item: inside a code block
  ```
  - a sub-list line
+ [X] `src/core`: already done
1. [ ] Write the summary in plain words

> - [ ] quoted: not an item

<div>
- [ ] html: not an item
</div>

```
- [ ] fenced: not an item
```

## Extract interfaces
<!-- parallel: false -->
- [ ] auth: extract an `AuthService` protocol
- [x] billing: extract a `Billing` protocol

## Notes
Just a section: no items.
"""


def plan_of(text: str):
    return parse(text, Path("task.md"))


def test_groups_items_modules_and_bodies():
    plan = plan_of(FULL)
    assert plan.title == "Split the monolith"
    assert plan.settings == {"agent": "command", "command": ("python3", "tools/summarize.py", "{module}"), "parallel": 4}
    assert [g.slug for g in plan.groups] == ["inventory", "extract-interfaces"]
    inventory, extract = plan.groups
    assert [i.key for i in inventory.items] == [
        "inventory:auth",
        "inventory:billing",
        "inventory:src/core",
        "inventory:write-the-summary-in-plain-words",
    ]
    auth, billing, core, summary = inventory.items
    assert (auth.line, auth.done, auth.text) == (12, False, "list the public functions of `src/auth/`")
    assert billing.body == (
        "Also note any global state.\n\n```sh\n- [ ] not an item: inside a code block\n```\n- a sub-list line"
    )
    assert core.done and core.line == 20
    assert summary.text == "Write the summary in plain words"
    assert extract.limit == 1 and inventory.limit is None
    assert [i.done for i in extract.items] == [False, True]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("---\nfoo: 1\n---\n# a\n", 2, "unknown setting 'foo'"),
        ("---\nparallel: 0\n---\n", 2, "setting 'parallel' must be false or a whole number"),
        ("---\ncommand: python3 x.py\n---\n", 2, "setting 'command' must be a non-empty list"),
        ("---\nagent: robot\n---\n", 2, "setting 'agent' must be one of"),
        ("---\nparallel: 2\nparallel: 3\n---\n", 3, "setting 'parallel' is given twice"),
        ("---\nparallel: [\n---\n", 2, "front matter is not valid YAML"),
        ("---\n- a\n- b\n---\n", 2, "front matter must be settings"),
        ("---\nparallel: 2\n# never closed\n", 1, "front matter opened here is never closed"),
        ("---\ncommand: [x]\n---\n# a\n<!-- parallel: maybe -->\n- [ ] x: y\n", 5, "hint 'parallel' must be"),
        ("---\ncommand: [x]\n---\n# a\n<!-- budget_usd: 3 -->\n- [ ] x: y\n", 5, "unknown hint 'budget_usd'"),
        ("---\ncommand: [x]\n---\n# a\n<!-- parallel: 2 -->\n<!-- parallel: 3 -->\n", 6, "given twice"),
        ("<!-- parallel: 2 -->\n# a\n", 1, "a hint must be inside a group"),
        ("---\ncommand: [x]\n---\n# a\n- [ ] x: y\n- [ ] x: z\n", 6, "module 'x' appears twice in group 'a' (also at line 5)"),
        ("---\ncommand: [x]\n---\n# A b\n- [ ] x\n# a-b\n- [ ] y\n", 6, "same name as the group at line 4"),
        ("- [ ] x: y\n# a\n", 1, "outside of any group"),
        ("# a\n- [ ] \n", 2, "this item has no text"),
    ],
)
def test_each_mistake_is_one_error_at_its_line(text, line, message):
    with pytest.raises(TaskFileError) as error:
        plan_of(text)
    assert error.value.line == line
    assert message in error.value.message
    assert str(error.value).startswith(f"task.md:{line}: ")


def test_hints_may_set_agent_settings_per_group():
    plan = plan_of("---\ncommand: [x]\n---\n# a\n<!-- command: [y, \"{module}\"] -->\n- [ ] m: t\n# b\n- [ ] m: t\n")
    assert plan.groups[0].settings["command"] == ("y", "{module}")
    assert plan.groups[1].settings["command"] == ("x",)


def test_ordinary_comments_are_not_hints():
    plan = plan_of("---\ncommand: [x]\n---\n# a\n<!-- remember to check this later -->\n- [ ] m: t\n")
    assert [i.key for i in plan.items()] == ["a:m"]


def test_crlf_bom_and_tabs():
    text = "\ufeff---\r\ncommand: [x]\r\n---\r\n# a\r\n-\t[ ] m: t\r\n\tmore\r\n"
    plan = plan_of(text.removeprefix("\ufeff"))
    (item,) = plan.items()
    assert (item.key, item.line, item.body) == ("a:m", 5, "more")


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b"# a\n- [ ] x: y\x00\n", 2, "contains a NUL byte"),
        (b"# a\n\n- [ ] \xff\xfe: y\n", 3, "is not valid UTF-8"),
    ],
)
def test_broken_files_are_one_error_from_run_batch_and_nothing_is_written(batch, content, line, message):
    batch.taskfile.write_bytes(content)
    result = batch.run("run-batch")
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert f"task.md:{line}: " in result.stderr and message in result.stderr
    assert batch.taskfile.read_bytes() == content
    assert not (batch.path / ".batch" / "task" / "items").exists()


def test_deep_nesting_parses_and_the_items_after_it_run(batch):
    batch.write("# a\n" + ">" * 5000 + " - [ ] deep: quoted, not an item\n\n# b\n- [ ] after: z\n")
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.runs() == {"b:after": 1}


def test_an_error_in_task_md_runs_nothing(batch):
    batch.write("# a\n- [ ] x: y\n<!-- parallel: zero -->\n")
    before = batch.taskfile.read_bytes()
    for command in (("run-batch",), ("run-batch", "--dry-run")):
        result = batch.run(*command)
        assert result.returncode != 0
        assert result.stderr.strip().endswith("task.md:7: hint 'parallel' must be false or a whole number from 1 up, not 'zero'")
    assert batch.runs("start") == {}
    assert batch.taskfile.read_bytes() == before


def test_missing_task_file_and_template_errors(batch):
    result = batch.run("run-batch")
    assert result.returncode != 0 and "task.md:0: no such file" in result.stderr
    batch.write("# a\n- [ ] x: y\n", front_matter=batch_front_matter_with("template: missing.j2"))
    result = batch.run("run-batch")
    assert result.returncode != 0 and "template 'missing.j2' cannot be read" in result.stderr
    (batch.path / "bad.j2").write_text("line one\n{% if %}\n")
    batch.write("# a\n- [ ] x: y\n", front_matter=batch_front_matter_with("template: bad.j2"))
    result = batch.run("run-batch")
    assert result.returncode != 0 and "bad.j2:2: template error" in result.stderr
    assert "Traceback" not in result.stderr


def batch_front_matter_with(line: str) -> str:
    from conftest import FRONT_MATTER

    return FRONT_MATTER.replace("agent: command\n", f"agent: command\n{line}\n")


def test_a_hint_of_null_unsets_a_batch_setting_for_its_group():
    plan = plan_of("---\nagent: claude\nmodel: big\n---\n# a\n<!-- model: null -->\n- [ ] m: t\n# b\n- [ ] m: t\n")
    assert plan.groups[0].settings["model"] is None
    assert plan.groups[1].settings["model"] == "big"
