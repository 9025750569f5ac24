"""Ticking: exactly the item's own byte, never losing a parallel tick or a user's edit."""

import os
import time
from pathlib import Path

from batch_tasks.checkbox import find_checkbox, set_checkbox
from batch_tasks.taskfile import parse

MANY = "# T\n\nSome prose that must stay.\n\n## G\n" + "".join(f"- [ ] m{i:02d}: item {i}\n" for i in range(30))


def test_parallel_ticks_change_only_the_marks(batch):
    batch.write(MANY)
    before = batch.taskfile.read_bytes()
    batch.behave(**{f"m{i:02d}": {"sleep": (i % 5) * 0.05} for i in range(30)})
    result = batch.run("run-batch", "-n", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.taskfile.read_bytes() == before.replace(b"- [ ] m", b"- [x] m")


def test_user_edits_during_the_run_are_kept(batch):
    batch.write(MANY)
    batch.behave(**{"*": {"sleep": 0.4}})
    runner = batch.start("run-batch", "-n", "4")
    deadline = time.monotonic() + 20
    while batch.runs("start")["g:m05"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # An in-place edit (an editor that writes the file over)...
    text = batch.taskfile.read_text()
    batch.taskfile.write_text(text.replace("Some prose that must stay.", "Edited prose.\nAnd a new line."))
    time.sleep(0.5)
    # ...and one that writes a new file and renames it over task.md.
    text = batch.taskfile.read_text() + "\n## Later\nA note added while the batch ran.\n"
    replacement = batch.path / ".task.md.swp"
    replacement.write_text(text)
    os.replace(replacement, batch.taskfile)
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, output
    final = batch.taskfile.read_text()
    assert "Edited prose.\nAnd a new line." in final
    assert "A note added while the batch ran." in final
    assert final.count("- [x] m") == 30


def test_an_item_edited_mid_run_is_reported_not_ticked(batch):
    batch.write("# T\n## G\n- [ ] a: slow one\n- [ ] b: quick one\n")
    batch.behave(a={"sleep": 1.5})
    runner = batch.start("run-batch", "-n", "2")
    deadline = time.monotonic() + 20
    while batch.runs("start")["g:a"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    batch.taskfile.write_text(batch.taskfile.read_text().replace("slow one", "slow one, reworded"))
    output, _ = runner.communicate(timeout=30)
    assert runner.returncode != 0
    assert "g:a succeeded, but its line in task.md changed while it ran, so it was not ticked" in output
    assert "- [ ] a: slow one, reworded" in batch.taskfile.read_text()
    assert "g:a  changed: instruction" in batch.run("run-batch", "--dry-run").stdout


def test_the_same_line_under_two_headings_ticks_the_right_one(tmp_path):
    text = "---\ncommand: [x]\n---\n# One\n- [ ] a: same words\n# Two\n- [ ] a: same words\n"
    taskfile = Path(tmp_path / "task.md")
    taskfile.write_text(text)
    plan = parse(text, taskfile)
    one, two = plan.groups
    assert set_checkbox(taskfile, two, two.items[0], True, tmp_path / "lock")
    assert taskfile.read_text() == text.replace("# Two\n- [ ]", "# Two\n- [x]")
    # Lines inserted above move the item; it is found all the same.
    moved = "Inserted.\n\n" + taskfile.read_text()
    taskfile.write_text(moved)
    assert set_checkbox(taskfile, one, one.items[0], True, tmp_path / "lock")
    assert taskfile.read_text() == moved.replace("# One\n- [ ]", "# One\n- [x]")


def test_crlf_and_bom_files_keep_their_bytes(tmp_path):
    raw = "\ufeff---\r\ncommand: [x]\r\n---\r\n# One\r\n- [ ] a: one\r\n".encode()
    taskfile = tmp_path / "task.md"
    taskfile.write_bytes(raw)
    plan = parse(raw.decode().removeprefix("\ufeff"), taskfile)
    (group,) = plan.groups
    assert find_checkbox(raw, group, group.items[0]) == raw.index(b"[ ]") + 1
    assert set_checkbox(taskfile, group, group.items[0], True, tmp_path / "lock")
    assert taskfile.read_bytes() == raw.replace(b"[ ]", b"[x]")
