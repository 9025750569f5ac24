"""An item's records replace no file of theirs: the tick flips the success record's leading
flag where it is, and the attempt's running.json stays beside the result until the item
runs again. (On ext4 without a journal, each file deleted makes every new file slower to
make for minutes; a run of 10,000 items deleted 20,000.)"""

import json
import os

from batch_tasks.plan.taskfile import load_plan
from batch_tasks.run.lifecycle import finish_success
from batch_tasks.state import records
from batch_tasks.state.item_status import ABSENT, DONE, FORGOTTEN_NOW, read_status
from batch_tasks.state.state import BatchState, rewrite_in_place


def test_the_tick_flips_the_success_record_where_it_is(batch, monkeypatch):
    batch.write("# T\n## G\n- [ ] a: x\n- [ ] b: y\n")
    written = {}
    tick = records.tick

    def noting(taskfile, group, item, state, record, moves=None):  # the record as written, before its tick
        path = state.item(item.group, item.module).result
        written[item.key] = (os.stat(path).st_ino, open(path, "rb").read())
        return tick(taskfile, group, item, state, record, moves)

    monkeypatch.setattr(records, "tick", noting)
    plan = load_plan(batch.taskfile)
    state = BatchState(batch.taskfile)
    state.ensure()
    for group in plan.groups:
        for item in group.items:
            state.item(item.group, item.module).ensure()
            finish_success(None, batch.taskfile, group, item, state, {"item": item.key, "note": '"ticked": false'})
    assert batch.taskfile.read_text().count("- [x]") == 2
    for key, (inode, before) in written.items():
        path = batch.state(*key.split(":")) / "result.json"
        after = path.read_bytes()
        assert before.startswith(b'{"ticked": false, ')
        assert os.stat(path).st_ino == inode  # the same file: none made, none deleted
        assert after == before.replace(b'{"ticked": false', b'{"ticked": true ', 1)
        assert json.loads(after) == {"ticked": True, "item": key, "note": '"ticked": false'}


def test_a_real_run_leaves_each_result_ticked_beside_its_running_record(batch):
    batch.write("# T\n## G\n- [ ] a: x\n- [ ] b: y\n")
    result = batch.run("run-batch", "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    for module in "ab":
        folder = batch.state("g", module)
        assert batch.record("g", module)["ticked"] is True
        assert (folder / "running.json").exists()  # kept: beside a result it says nothing
        assert read_status(BatchState(batch.taskfile).item("g", module)).kind == DONE
    assert "recovered" not in batch.run("run-batch").stdout


def test_a_result_set_aside_takes_its_running_record_with_it(batch):
    """Else an item about to run again, killed then, would read as an attempt killed mid-run
    and be finished from its old attempt's log."""
    batch.write("# T\n## G\n- [ ] a: x\n- [ ] b: y\n")
    assert batch.run("run-batch").returncode == 0
    state = BatchState(batch.taskfile)
    rerun = state.item("g", "a")
    rerun.set_result_aside()
    assert not os.path.exists(rerun.running) and os.path.exists(f"{rerun.folder}/result.previous.json")
    assert read_status(rerun).kind == ABSENT
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    assert batch.run("forget", "g:b").returncode == 0
    forgotten = state.item("g", "b")
    assert not os.path.exists(forgotten.running)
    assert read_status(forgotten).kind == FORGOTTEN_NOW


def test_an_older_record_whose_flag_does_not_lead_is_rewritten_whole(batch):
    batch.write("# T\n## G\n- [ ] a: x\n")
    assert batch.run("run-batch").returncode == 0
    result = batch.state("g", "a") / "result.json"
    old = {**json.loads(result.read_text()), "ticked": False}
    result.write_text(json.dumps(old, sort_keys=True) + "\n")  # as records were written before
    batch.write("# T\n## G\n- [ ] a: x\n")  # the tick a killed run never wrote
    fixed = batch.run("run-batch")
    assert "recovered: ticked g:a" in fixed.stdout, fixed.stdout + fixed.stderr
    assert batch.taskfile.read_text().count("- [x] a: x") == 1
    assert json.loads(result.read_text()) == {**old, "ticked": True}


def test_rewrite_in_place_writes_only_over_what_it_expects(tmp_path):
    record = tmp_path / "result.json"
    record.write_bytes(b'{"ticked": true , "item": "g:a"}\n')
    assert not rewrite_in_place(str(record), records.UNTICKED, records.TICKED)
    assert record.read_bytes() == b'{"ticked": true , "item": "g:a"}\n'
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b'{"ticked": false, "item": "g:a"}\n')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert not rewrite_in_place(str(link), records.UNTICKED, records.TICKED)  # never through a link
    assert target.read_bytes() == b'{"ticked": false, "item": "g:a"}\n'
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert not rewrite_in_place(str(fifo), records.UNTICKED, records.TICKED)  # not waited on
