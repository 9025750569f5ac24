"""A Cursor plan's todo is ticked by its status in the front matter, written as Cursor writes
it, whatever the indentation, quoting and line ends; nothing else changes."""

from __future__ import annotations

from batch_tasks.plan.taskfile import parse
from batch_tasks.state.status_field import set_status

PLAN = """---
name: Frontend API Doc
overview: Write a frontend-facing API document.
todos:
    - id: write-api-md
      content: Create backend/API.md with every live route
      status: 'pending'
    - content: "Link it from the README"
      id: link-readme
      status: pending
isProject: false
---

# API doc

status: pending (prose, not a todo)
"""


def test_a_cursor_todo_is_ticked_in_the_front_matter_only(tmp_path):
    path = tmp_path / ".cursor" / "plans" / "api-doc_1a2b3c4d.plan.md"
    path.parent.mkdir(parents=True)
    text = PLAN.replace("\n", "\r\n")
    path.write_bytes(text.encode())
    first, second = parse(PLAN, path).items()
    assert set_status(path, second, True, tmp_path / "lock")
    assert set_status(path, first, True, tmp_path / "lock")
    assert path.read_bytes() == text.replace("'pending'", "'completed'").replace(
        "id: link-readme\r\n      status: pending", "id: link-readme\r\n      status: completed").encode()
    assert [item.done for item in parse(path.read_text(), path).items()] == [True, True]
    assert set_status(path, first, False, tmp_path / "lock")
    assert b"status: 'pending'" in path.read_bytes()


def test_a_todo_no_longer_in_the_file_is_not_ticked_and_the_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "api-doc.plan.md"
    path.write_text(PLAN)
    first, _ = parse(PLAN, path).items()
    edited = PLAN.replace("id: write-api-md", "id: write-the-doc")
    path.write_text(edited)
    assert not set_status(path, first, True, tmp_path / "lock")
    assert path.read_text() == edited
