"""The executor seam (executors/seam.py): an executor written against it alone, found as an
installed package's entry point, runs a real run-batch's attempts; what it needs of a run is
checked before anything is written; a name nothing provides is one clear error. An attempt's
worktree made where there is no Isolation (a Dask worker's) commits through its small protocol alone."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import FRONT_MATTER
from gitrepo import git, make_repo

from batch_tasks.isolation.bootstrap import Baseline
from batch_tasks.isolation.workspace import BatchNames, Worktree
from batch_tasks.repository.git import trailers
from batch_tasks.state.state import BatchState

EXECUTORS = Path(__file__).parent / "executors"


def installed(tmp_path: Path) -> dict[str, str]:
    """The environment of a run-batch in which a package providing the `threads` executor is installed."""
    site = tmp_path / "site"
    info = site / "thread_pool_executor-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thread-pool-executor\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[batch_tasks.executors]\nthreads = thread_pool:ThreadPool\n"
                                           "isolated-threads = thread_pool:IsolatedThreadPool\n")
    path = os.pathsep.join(filter(None, [str(site), str(EXECUTORS), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "THREAD_POOL_LOG": str(tmp_path / "pool.log")}


def test_a_third_executor_written_against_the_seam_alone_runs_a_batch(batch, tmp_path):
    batch.write("# T\n## G\n- [ ] a: first\n- [ ] b: second\n",
                FRONT_MATTER.replace("---\n", "---\nretries: 1\nretry_base: 0.1s\ntransient_exit_codes: [75]\n", 1))
    batch.behave(b={"attempts": {"1": {"exit": 75}}})  # its second attempt goes through the executor too
    env = installed(tmp_path)
    result = batch.run("run-batch", "--executor", "threads", "-n", "2", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = sorted(line.split() for line in Path(env["THREAD_POOL_LOG"]).read_text().splitlines())
    assert [(key, number) for key, number, _ in ran] == [("g:a", "1"), ("g:b", "1"), ("g:b", "2")]
    assert all(thread.startswith("thread-pool-executor") for _, _, thread in ran)
    assert batch.taskfile.read_text().count("- [x]") == 2
    output = Path(BatchState(batch.taskfile).item("g", "b").log).read_text()
    assert output.count("agent for g:b") == 2  # each attempt's output, in the item's own log


def test_what_an_executor_needs_is_checked_before_anything_is_written(batch, tmp_path):
    batch.write("# T\n## G\n- [ ] a: first\n")
    result = batch.run("run-batch", "--executor", "isolated-threads", env=installed(tmp_path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "group 'g': --executor isolated-threads runs items on other machines, so it needs isolation: worktree" \
        in result.stderr
    assert not (tmp_path / "pool.log").exists()
    assert "- [ ] a" in batch.taskfile.read_text()


def test_an_executor_nothing_provides_is_one_clear_error(batch, tmp_path):
    batch.write("# T\n## G\n- [ ] a: first\n")
    result = batch.run("run-batch", "--executor", "nonesuch", env=installed(tmp_path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "--executor must be one of dask, isolated-threads, local, threads, not 'nonesuch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worktree_made_without_an_isolation_commits_and_keeps_with_the_batchs_names(tmp_path):
    repo = make_repo(tmp_path / "clone")
    base = git("rev-parse", "HEAD", cwd=repo)
    git("checkout", "-q", "-b", "batch/t.items/g/a", cwd=repo)
    (repo / "setup.out").write_text("what setup made\n")
    worktree = Worktree(BatchNames(repo, "sub/task.md", "task"), "g", "a", "run-1", repo, "batch/t.items/g/a", base,
                        baseline=Baseline.of(repo))
    (repo / "work.py").write_text("print('the agent')\n")
    committed = worktree.commit_leftovers()
    assert committed.changed and committed.made_commit
    assert trailers(committed.commit, repo) == {"Batch-Task": "sub/task.md", "Batch-Item": "g:a",
                                                "Batch-Run": "run-1", "Batch-Result": "succeeded"}
    assert git("log", "-1", "--format=%s", cwd=repo) == "g:a: the work of batch task"
    assert git("show", "--name-only", "--format=", "HEAD", cwd=repo) == "work.py"  # setup's file is nobody's work

    (repo / "half.py").write_text("unfinished\n")
    kept = worktree.keep("check failed")
    assert kept.wip and kept.commit == git("rev-parse", "HEAD", cwd=repo)
    assert trailers(kept.commit, repo)["Batch-Result"] == "wip"
