"""Ticking: exactly the item's own byte, never losing a parallel tick or a user's edit (an editor's
save between ticks: test_tick_path.py)."""

from pathlib import Path

from conftest import wait_for

from batch_tasks.plan.taskfile import parse
from batch_tasks.state.checkbox import find_checkbox, set_checkbox

MANY = "# T\n\nSome prose that must stay.\n\n## G\n" + "".join(f"- [ ] m{i:02d}: item {i}\n" for i in range(30))


def test_parallel_ticks_change_only_the_marks(batch):
    batch.write(MANY)
    before = batch.taskfile.read_bytes()
    batch.behave(**{f"m{i:02d}": {"sleep": (i % 5) * 0.05} for i in range(30)})
    result = batch.run("run-batch", "-n", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.taskfile.read_bytes() == before.replace(b"- [ ] m", b"- [x] m")


def test_an_item_edited_mid_run_is_reported_not_ticked(batch):
    batch.write("# T\n## G\n- [ ] a: slow one\n- [ ] b: quick one\n")
    reworded = batch.path / "reworded"  # the agent ends once the user has reworded its line
    batch.behave(a={"until": str(reworded)})
    runner = batch.start("run-batch", "-n", "2")
    wait_for(lambda: batch.runs("start")["g:a"])
    batch.taskfile.write_text(batch.taskfile.read_text().replace("slow one", "slow one, reworded"))
    reworded.touch()
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
