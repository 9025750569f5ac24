"""Boxes ticked along with an item, byte-exact after a real run: nested sub-task boxes
in a batch item, a superpowers task's step boxes, and a Kiro parent task's box once its
last sub-task is done. (The ticking is checkbox.py's, from Item.also_ticks and
Item.parent_box; these fail until it ticks them.)"""


from test_dialect_runs import FIXTURES, KIRO_OPTIONAL, write


def test_nested_boxes_are_ticked_with_their_item(batch):
    text = "# A\n- [ ] auth: split it\n  - [ ] move the session code\n  - [x] keep the old names\n- [ ] billing: split it\n"
    before = write(batch, "", text)
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.taskfile.read_bytes() == before.replace(b"[ ]", b"[x]")


def test_a_superpowers_task_ticks_all_its_steps(batch):
    before = write(batch, "superpowers-plan.md")
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.taskfile.read_bytes() == before.replace(b"- [ ] **Step", b"- [x] **Step")
    again = batch.run("run-batch", "--dry-run")
    assert "0 would run" in again.stdout


def test_a_kiro_parent_is_ticked_with_its_last_sub_task(batch):
    before = write(batch, "kiro-tasks.md", (FIXTURES / "kiro-tasks.md").read_text().replace(KIRO_OPTIONAL, ""))
    result = batch.run("run-batch", "implementation-plan:1", "implementation-plan:2.1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"- [ ] 2. Write the CSV writer" in batch.taskfile.read_bytes()  # 2.2 is still open
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.taskfile.read_bytes() == before.replace(b"[ ]", b"[x]")


def test_ticks_along_with_an_item_do_not_make_it_stale(batch):
    write(batch, "", "# A\n- [ ] auth: split it\n  - [ ] move the session code\n")
    assert batch.run("run-batch").returncode == 0
    again = batch.run("run-batch", "--dry-run")
    assert "0 would run" in again.stdout, again.stdout
