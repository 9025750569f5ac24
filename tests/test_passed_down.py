"""A run's state folder, supervisor and tick memory are objects the run hands down, not
found again from a path or kept in module globals; loading a batch has no side effects."""

from __future__ import annotations

from gitrepo import make_repo
from local_run import local_run

from batch_tasks.processes import process
from batch_tasks.run.lifecycle import ItemRun
from batch_tasks.state.state import BatchState
from batch_tasks.tasks import batch as batch_mod
from batch_tasks.tasks.doit_tasks import item_job


def test_an_items_run_keeps_its_records_in_the_state_folder_its_run_was_given(batch, local_run):
    batch.write("# T\n## G\n- [ ] a: x\n")
    loaded = batch_mod.load(batch.taskfile)
    group = loaded.plan.groups[0]
    runs = [local_run(loaded, state=BatchState(batch.taskfile)) for _ in range(2)]
    items = [ItemRun(item_job(loaded, 0, group, group.items[0]), run) for run in runs]
    assert [item.state for item in items] == [run.state for run in runs]
    assert items[0].state is not items[1].state  # two runs in one process share nothing
    assert runs[0].ticks is not runs[1].ticks


def test_loading_an_isolated_batch_removes_no_cgroup_and_a_run_removes_what_killed_runs_left(tmp_path, monkeypatch, local_run):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    removed = []
    monkeypatch.setattr(process, "remove_stale_cgroups", lambda: removed.append("cgroups"))
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text("---\nagent: command\ncommand: [\"true\"]\nisolation: worktree\n---\n# T\n## G\n- [ ] a: x\n")
    loaded = batch_mod.load(repo / "task.md")
    assert loaded.plan.groups[0].settings["isolation"] == "worktree"
    assert removed == []  # reading a plan touches nothing of the machine's
    local_run(loaded)  # its supervisor, made as run-batch makes it
    assert removed == ["cgroups"]
