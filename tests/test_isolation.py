"""Isolation and the merge queue on real git repositories: worktrees per attempt, one
merge at a time, checks on merged states, and nothing of anyone's work ever lost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
from gitrepo import SECTIONS, edit_section, git, make_repo, snapshot
from gitrepo import no_global_git_config  # noqa: F401 - a fixture: imported here, it is autouse here

from batch_tasks.isolation.bootstrap import SetupFailed
from batch_tasks.isolation.workspace import WorkspaceError
from batch_tasks.isolation.worktree import Isolation, IsolationError
from batch_tasks.errors import BatchError
from batch_tasks.landing.merge_queue import MergeQueue
from batch_tasks.landing.merge_result import CONFLICT, MERGED
from batch_tasks.processes.check import Check

PASSING = (sys.executable, "-c", "import sys; sys.exit(0)")


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


def isolation_for(repo: Path, **settings) -> Isolation:
    isolation = Isolation(repo / "task.md", {"integrate": None, **settings})
    isolation.validate()
    isolation.prepare()
    return isolation


def commits_on(repo: Path, branch: str, since: str) -> list[str]:
    return git("rev-list", f"{since}..{branch}", cwd=repo).split()


def test_four_items_editing_different_parts_of_one_file_all_merge(repo):
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    base = isolation.tip()
    check = Check(PASSING, 60, "edit", "x")
    results, workspaces = {}, {}
    all_open = threading.Barrier(len(SECTIONS), timeout=120)

    def item(section: str) -> None:
        workspace = isolation.open_attempt("edit", section, f"run-{section}")
        workspaces[section] = workspace
        all_open.wait()  # all four from one base, as a group's items are
        edit_section(workspace.folder, section, f"edited by {section}")
        assert workspace.commit_leftovers().changed
        results[section] = queue.merge(workspace, check)
        workspace.remove()

    threads = [threading.Thread(target=item, args=(section,)) for section in SECTIONS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(result.status == MERGED for result in results.values()), results
    assert all(workspace.base == base for workspace in workspaces.values())
    # One commit per item, and one merge each, on the integration branch.
    assert len(commits_on(repo, "batch/task", base)) == 8
    merges = git("rev-list", "--merges", "--first-parent", f"{base}..batch/task", cwd=repo).split()
    assert len(merges) == 4
    final = git("show", "batch/task:shared.py", cwd=repo)
    assert all(f"{section} = 'edited by {section}'" in final for section in SECTIONS)
    # The first to merge found the tip where it started; the three after it were checked merged.
    assert sorted(result.check is None for result in results.values()) == [False, False, False, True]
    for result in results.values():
        assert result.files[0].path == "shared.py" and (result.files[0].added, result.files[0].removed) == (1, 1)
        assert result.base == base and result.merge_commit in merges
    # Merged worktrees and branches are gone; the branch list holds only main and the integration branch.
    assert not any(workspace.path.exists() for workspace in workspaces.values())
    queue.close()  # the worktrees its checks ran in go with it
    assert isolation.remove_spares() == 4  # the merged items' worktrees, kept clean for the next run
    assert git("worktree", "list", "--porcelain", cwd=repo).count("worktree ") == 2  # the user's and the runner's
    assert git("branch", "--format=%(refname:short)", cwd=repo).split() == ["batch/task", "main"]


def test_two_items_on_the_same_lines_the_second_conflicts_then_lands_from_the_new_tip(repo):
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    first = isolation.open_attempt("edit", "one", "run-1")
    second = isolation.open_attempt("edit", "two", "run-2")
    edit_section(first.folder, "alpha", "one's alpha")
    edit_section(second.folder, "alpha", "two's alpha")
    first.commit_leftovers()
    second_commit = second.commit_leftovers().commit

    assert queue.merge(first, Check(PASSING, 60, "edit", "one")).merged
    first.remove()
    tip = isolation.tip()
    conflict = queue.merge(second, Check(PASSING, 60, "edit", "two"))
    assert conflict.status == CONFLICT and conflict.conflicts == ("shared.py",)
    assert "shared.py" in conflict.reason
    assert isolation.tip() == tip  # the integration branch is unchanged...
    assert git("status", "--porcelain", cwd=isolation.integration_path) == ""  # ...and so is the runner's worktree
    kept = second.keep("merge conflict")
    assert kept.wip is False and kept.commit == second_commit

    retry = isolation.open_attempt("edit", "two", "run-2")
    assert retry.base == tip
    assert retry.replaced is not None and retry.replaced.commit == second_commit
    assert git("rev-parse", retry.replaced.branch, cwd=repo) == second_commit  # the old attempt, kept aside
    assert retry.replaced.branch.startswith("batch/task.items/edit/two.")
    assert (retry.replaced.path / "shared.py").read_text().count("two's alpha") == 1
    edit_section(retry.folder, "alpha", "two's alpha, after one's")
    retry.commit_leftovers()
    landed = queue.merge(retry, Check(PASSING, 60, "edit", "two"))
    assert landed.merged and landed.check is None  # it started from the tip: its own check was enough
    assert "alpha = \"two's alpha, after one's\"" in git("show", "batch/task:shared.py", cwd=repo)


def test_a_bug_in_the_queues_decisions_reaches_the_waiting_item_as_a_bug_with_its_traceback(repo, monkeypatch):
    """Not as a BatchError, which an item fails with quietly: as an error the runner records
    as internal, the bug and where it was met attached."""
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    workspace = isolation.open_attempt("edit", "one", "run-1")
    edit_section(workspace.folder, "alpha", "one's alpha")
    workspace.commit_leftovers()

    def broken():
        raise KeyError("a bug in deciding")

    monkeypatch.setattr(queue._plan, "decide", broken)
    with pytest.raises(Exception) as raised:
        queue.merge(workspace, Check(PASSING, 60, "edit", "one"))
    assert not isinstance(raised.value, BatchError)
    assert isinstance(raised.value.__cause__, KeyError) and raised.value.__cause__.__traceback__ is not None
    assert "in broken" in "".join(traceback.format_exception(raised.value))


def test_a_check_failing_on_the_merged_state_is_undone(repo):
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    # Each alone passes; together they do not.
    both_fail = (sys.executable, "-c",
                 "import os, sys; print('checking {module}'); "
                 "sys.exit(3 if os.path.exists('x.txt') and os.path.exists('y.txt') else 0)")
    makes_x = isolation.open_attempt("edit", "x", "run-x")
    makes_y = isolation.open_attempt("edit", "y", "run-y")
    (makes_x.folder / "x.txt").write_text("x\n")
    (makes_y.folder / "y.txt").write_text("y\n")
    makes_x.commit_leftovers()
    makes_y.commit_leftovers()
    for workspace in (makes_x, makes_y):
        assert Check(both_fail, 60, "edit", workspace.module).run(workspace.path, workspace.folder).passed

    assert queue.merge(makes_x, Check(both_fail, 60, "edit", "x")).merged
    tip = isolation.tip()
    undone = queue.merge(makes_y, Check(both_fail, 60, "edit", "y"))
    assert undone.status == CONFLICT and undone.merge_commit is None
    assert undone.check.exit_status == 3 and "checking y" in undone.check.tail
    assert "on the merged state" in undone.reason
    assert isolation.tip() == tip
    assert not (isolation.integration_path / "y.txt").exists()
    assert git("status", "--porcelain", cwd=isolation.integration_path) == ""
    assert undone.record()["merged_state_check"]["exit_status"] == 3


def test_nothing_a_check_left_in_the_queues_worktree_reaches_the_check_of_another_state(repo):
    """A check runs the items' code: whatever it writes in the queue's worktree, untracked or
    ignored, is gone before that worktree is lent to the next check (an item that failed its
    check could otherwise leave a file that makes the next state's check pass). What the setup
    made stays, as in an item's own worktree: it runs once per worktree."""
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)  # one check at a time: one worktree, lent again
    runs = repo.parent / "setup-runs"
    settings = {**isolation.settings, "worktree_setup": [
        sys.executable, "-c", f"open('deps.ignored', 'w').close(); open('tool.txt', 'w').close(); "
                              f"open({str(runs)!r}, 'a').write('ran\\n')"]}
    plants = (sys.executable, "-c",
              "import os, sys\n"
              "if not (os.path.exists('deps.ignored') and os.path.exists('tool.txt')): sys.exit(5)\n"
              "if os.path.exists('planted.txt') or os.path.exists('planted.ignored'): sys.exit(4)\n"
              "if os.path.exists('x.txt'):\n"
              "    open('planted.txt', 'w').close(); open('planted.ignored', 'w').close(); sys.exit(3)\n")
    with (repo.parent / "setup.log").open("wb") as log:
        workspaces = {module: isolation.open_attempt("edit", module, f"run-{module}", settings, log)
                      for module in ("first", "x", "y")}
        runs.unlink()  # the items' own setups
        for module, workspace in workspaces.items():
            (workspace.folder / f"{module}.txt").write_text(f"{module}\n")
            workspace.commit_leftovers()

        def merge(module: str):
            return queue.merge(workspaces[module], Check(plants, 60, "edit", module), log, settings)

        assert merge("first").merged  # the tip moves on
        failed = merge("x")
        assert failed.status == CONFLICT and failed.check.exit_status == 3  # checked merged, and planted
        assert merge("y").merged
    assert runs.read_text() == "ran\n"
    queue.close()


def test_an_attempt_that_changed_nothing(repo):
    isolation = isolation_for(repo)
    workspace = isolation.open_attempt("edit", "idle", "run-idle")
    (workspace.folder / "build.ignored").write_text("an ignored build output\n")
    committed = workspace.commit_leftovers()
    assert committed.changed is False and committed.made_commit is False
    assert committed.commit == workspace.base
    workspace.remove()  # nothing to keep: the branch is at its base
    assert git("branch", "--list", workspace.branch, cwd=repo) == ""

    # allow_empty: an empty commit carries the run's trailers, and the merge records it.
    empty = isolation.open_attempt("edit", "idle", "run-idle-2")
    assert empty.path == workspace.path and not (empty.folder / "build.ignored").exists()  # a clean spare
    committed = empty.commit_leftovers(allow_empty=True)
    assert committed.made_commit and not committed.changed
    result = MergeQueue(isolation).merge(empty)
    assert result.merged and result.files == ()
    assert isolation.merged_commit("edit", "idle", "run-idle-2") == result.merge_commit


def test_the_users_working_tree_is_untouched(repo):
    (repo / "shared.py").write_text((repo / "shared.py").read_text() + "# the user's own edit\n")
    (repo / "notes.txt").write_text("the user's untracked notes\n")
    before = snapshot(repo)
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    one = isolation.open_attempt("edit", "one", "run-1")
    two = isolation.open_attempt("edit", "two", "run-2")
    edit_section(one.folder, "beta", "one")
    edit_section(two.folder, "beta", "two")
    one.commit_leftovers()
    two.commit_leftovers()
    queue.merge(one)
    one.remove()
    assert queue.merge(two).status == CONFLICT
    two.keep("conflict")
    assert isolation.remove_spares() == 1  # the merged items' worktrees, kept clean for the next run
    assert snapshot(repo) == before
    assert isolation.how_to_take() == ("the work is on batch/task: git log --oneline main..batch/task, "
                                       "then git merge batch/task")
    # The integration branch is checked out in the runner's own worktree only: nowhere else can it be.
    holders = [block for block in git("worktree", "list", "--porcelain", cwd=repo).split("\n\n")
               if "branch refs/heads/batch/task\n" in block + "\n"]
    assert len(holders) == 1 and holders[0].startswith(f"worktree {repo / '.batch/task/integration'}")
    git("stash", "-q", "-u", cwd=repo)
    git("merge", "-q", "--no-edit", "batch/task", cwd=repo)  # the user takes it into their branch
    assert "beta = 'one'" in git("show", "HEAD:shared.py", cwd=repo)


def test_a_failed_attempt_is_kept_with_a_wip_commit(repo):
    isolation = isolation_for(repo)
    workspace = isolation.open_attempt("edit", "gamma", "run-g")
    edit_section(workspace.folder, "gamma", "half done")
    (workspace.folder / "new_module.py").write_text("x = 1\n")
    kept = workspace.keep("check failed")
    assert kept.wip and kept.path == workspace.path and kept.path.exists()
    assert git("status", "--porcelain", cwd=kept.path) == ""
    message = git("log", "-1", "--format=%B", kept.branch, cwd=repo)
    assert message.startswith("WIP edit:gamma: check failed")
    assert "Batch-Result: wip" in message and "Batch-Run: run-g" in message
    assert git("show", f"{kept.branch}:new_module.py", cwd=repo) == "x = 1"
    with pytest.raises(WorkspaceError, match="not on batch/task"):
        workspace.remove()
    assert kept.path.exists() and git("rev-parse", kept.branch, cwd=repo) == kept.commit


def test_nothing_with_unmerged_commits_is_ever_deleted(repo):
    isolation = isolation_for(repo)
    workspace = isolation.open_attempt("edit", "delta", "run-d")
    edit_section(workspace.folder, "delta", "the agent's own commit")
    git("commit", "-q", "-am", "the agent commits by itself", cwd=workspace.folder)
    agents_commit = git("rev-parse", "HEAD", cwd=workspace.folder)
    (workspace.folder / "uncommitted.txt").write_text("left over\n")
    with pytest.raises(WorkspaceError, match="uncommitted"):
        workspace.remove()
    assert (workspace.folder / "uncommitted.txt").exists()

    # A re-run (after `doit forget`, or after a kill) starts from the tip; the old branch stays, renamed.
    rerun = isolation.open_attempt("edit", "delta", "run-d2")
    old = rerun.replaced
    assert old.wip and git("merge-base", "--is-ancestor", agents_commit, old.branch, cwd=repo) == ""
    assert git("show", f"{old.branch}:uncommitted.txt", cwd=repo) == "left over"
    assert (old.path / "uncommitted.txt").exists() and old.path != rerun.path
    assert rerun.base == isolation.tip() and git("status", "--porcelain", cwd=rerun.path) == ""
    # A third attempt keeps the second aside too, under a name of its own.
    edit_section(rerun.folder, "delta", "second try")
    third = isolation.open_attempt("edit", "delta", "run-d3")
    assert third.replaced.branch != old.branch
    assert {git("rev-parse", b, cwd=repo) for b in (old.branch, third.replaced.branch)} == {old.commit, third.replaced.commit}
    # The agent's own commit is kept when it succeeds, with an empty commit for the trailers.
    edit_section(third.folder, "delta", "third try")
    git("commit", "-q", "-am", "the agent commits again", cwd=third.folder)
    committed = third.commit_leftovers()
    assert committed.made_commit and committed.changed
    assert git("log", "-1", "--format=%s", f"{committed.commit}~1", cwd=repo) == "the agent commits again"


def test_recovery_aborts_a_half_done_merge(repo):
    isolation = isolation_for(repo)
    workspace = isolation.open_attempt("edit", "alpha", "run-a")
    edit_section(workspace.folder, "alpha", "merging")
    workspace.commit_leftovers()
    tip = isolation.tip()
    # Where a run killed between `git merge --no-commit` and its commit leaves the runner's worktree.
    git("merge", "--no-ff", "--no-commit", workspace.branch, cwd=isolation.integration_path)
    (Path(git("rev-parse", "--absolute-git-dir", cwd=isolation.integration_path)) / "index.lock").write_text("")

    again = isolation_for(repo)
    assert git("rev-parse", "-q", "--verify", "MERGE_HEAD", cwd=again.integration_path, check=False) == ""
    assert git("status", "--porcelain", cwd=again.integration_path) == ""
    assert again.tip() == tip
    pending = again.pending_success("edit", "alpha", "run-a")
    assert pending is not None and MergeQueue(again).merge(pending).merged


def test_recovery_recognises_merged_and_committed_items(repo):
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    merged = isolation.open_attempt("edit", "alpha", "run-a")
    waiting = isolation.open_attempt("edit", "beta", "run-b")
    failed = isolation.open_attempt("edit", "gamma", "run-c")
    edit_section(merged.folder, "alpha", "merged")
    edit_section(waiting.folder, "beta", "waiting")
    edit_section(failed.folder, "gamma", "failed")
    merged.commit_leftovers()
    committed = waiting.commit_leftovers()
    failed.keep("agent failed")
    landed = queue.merge(merged)

    later = Isolation(repo / "task.md", {"integrate": None})  # what the next run sees
    assert later.merged_commit("edit", "alpha", "run-a") == landed.merge_commit
    assert later.merged_commit("edit", "alpha", "another-run") is None
    assert later.merged_commit("edit", "beta", "run-b") is None
    assert later.pending_success("edit", "alpha", "run-a") is None  # merged: nothing pending
    assert later.pending_success("edit", "gamma", "run-c") is None  # its agent never succeeded
    assert later.pending_success("edit", "beta", "other-run") is None
    pending = later.pending_success("edit", "beta", "run-b")
    assert pending.tip() == committed.commit and pending.base == waiting.base
    assert MergeQueue(later).merge(pending).merged
    assert later.pending_success("edit", "beta", "run-b") is None


def test_copy_and_setup_prepare_the_worktree_and_are_never_committed(repo):
    (repo / ".env").write_text("TOKEN=secret\n")  # untracked in the user's checkout
    (repo / "local.ignored").write_text("ignored\n")
    setup = [sys.executable, "-c", "open('setup-made.txt', 'w').write('made by setup')"]
    isolation = isolation_for(repo, worktree_copy=(".env", "*.ignored"))
    workspace = isolation.open_attempt("edit", "alpha", "run-a", {**isolation.settings,
                                       "worktree_copy": (".env", "*.ignored"), "worktree_setup": setup})
    assert (workspace.folder / ".env").read_text() == "TOKEN=secret\n"
    assert (workspace.folder / "local.ignored").exists() and (workspace.folder / "setup-made.txt").exists()
    assert workspace.commit_leftovers().changed is False  # what copy and setup did is no work
    edit_section(workspace.folder, "alpha", "work")
    committed = workspace.commit_leftovers()
    files = git("show", "--name-only", "--format=", committed.commit, cwd=repo).split()
    assert files == ["shared.py"]
    assert MergeQueue(isolation).merge(workspace).merged
    workspace.remove()


def test_a_failing_setup_fails_the_attempt_with_its_output(repo):
    isolation = isolation_for(repo)
    # What it made before it failed (half a build) is nobody's work: it goes with the worktree.
    setup = [sys.executable, "-c", "import sys; open('half.o', 'w'); print('no compiler here'); sys.exit(4)"]
    log = (repo.parent / "setup.log").open("wb")
    with pytest.raises(SetupFailed, match="exit status 4") as failure:
        isolation.open_attempt("edit", "alpha", "run-a", {**isolation.settings, "worktree_setup": setup}, log)
    log.close()
    assert "no compiler here" in failure.value.tail
    assert "no compiler here" in (repo.parent / "setup.log").read_text()
    assert not isolation.item_path("edit", "alpha").exists()
    assert git("branch", "--list", isolation.item_branch("edit", "alpha"), cwd=repo) == ""


def test_copy_never_reaches_outside_the_repository(repo, tmp_path):
    (tmp_path / "outside.txt").write_text("not yours\n")
    os.symlink(tmp_path, repo / "linked")
    isolation = isolation_for(repo)
    workspace = isolation.open_attempt("edit", "alpha", "run-a",
                                       {**isolation.settings, "worktree_copy": ("linked/outside.txt",)})
    assert not (workspace.folder / "linked" / "outside.txt").exists()
    with pytest.raises(IsolationError, match="outside the repository"):
        Isolation(repo / "task.md", {"worktree_copy": ("../outside.txt",)}).validate()


def test_load_time_checks(repo, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "task.md").write_text("# x\n")
    with pytest.raises(IsolationError, match="inside a git repository"):
        Isolation(plain / "task.md", {}).validate()
    with pytest.raises(IsolationError, match="is checked out in") as refused:
        Isolation(repo / "task.md", {"integrate": "main"}).validate()
    assert refused.value.setting == "integrate"
    with pytest.raises(IsolationError, match="not a valid git branch name"):
        Isolation(repo / "task.md", {"integrate": "bad..name"}).validate()
    empty = tmp_path / "empty"
    empty.mkdir()
    git("init", "-q", cwd=empty)
    (empty / "task.md").write_text("# x\n")
    with pytest.raises(IsolationError, match="a commit to start from"):
        Isolation(empty / "task.md", {}).validate()
    no_git = {"PATH": str(tmp_path / "nowhere")}
    old_path = os.environ["PATH"]
    try:
        os.environ.update(no_git)
        with pytest.raises(IsolationError, match="git on PATH"):
            Isolation(repo / "task.md", {}).validate()
    finally:
        os.environ["PATH"] = old_path


def test_task_md_in_a_subfolder(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "docs").mkdir()
    (repo / "docs" / "plan.md").write_text("# plan\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "a plan", cwd=repo)
    isolation = Isolation(repo / "docs" / "plan.md", {"integrate": None})
    isolation.validate()
    isolation.prepare()
    assert isolation.branch == "batch/plan"
    workspace = isolation.open_attempt("g", "m", "run")
    assert workspace.folder == workspace.path / "docs" and (workspace.folder / "plan.md").exists()
    (workspace.folder / "out.txt").write_text("made in docs\n")
    workspace.commit_leftovers()
    assert MergeQueue(isolation).merge(workspace).merged
    assert git("show", "batch/plan:docs/out.txt", cwd=repo) == "made in docs"
    assert isolation.merged_commit("g", "m", "run") is not None
    assert git("status", "--porcelain", cwd=repo) == ""


KILLED_MID_MERGE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from batch_tasks.processes.check import Check
from batch_tasks.landing.merge_queue import MergeQueue
from batch_tasks.isolation.worktree import Isolation
from gitrepo import edit_section

isolation = Isolation(Path(sys.argv[1]), {"integrate": None})
isolation.validate()
isolation.prepare()
queue = MergeQueue(isolation)
first = isolation.open_attempt("edit", "alpha", "run-a")
second = isolation.open_attempt("edit", "beta", "run-b")
edit_section(first.folder, "alpha", "first")
edit_section(second.folder, "beta", "second")
first.commit_leftovers()
second.commit_leftovers()
queue.merge(first)
hangs = "import os, time; open(os.environ['MARKER'], 'w').write(str(os.getpid())); time.sleep(300)"
queue.merge(second, Check((sys.executable, "-c", hangs), 600, "edit", "beta"))
"""


def test_a_run_killed_during_the_check_on_the_merged_state_loses_nothing(repo, tmp_path):
    import signal
    import subprocess
    import time

    import psutil

    marker = tmp_path / "check-started"
    script = tmp_path / "runner.py"
    script.write_text(KILLED_MID_MERGE)
    runner = subprocess.Popen([sys.executable, str(script), str(repo / "task.md"), str(Path(__file__).parent)],
                              env={**os.environ, "MARKER": str(marker)})
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        assert runner.poll() is None and time.monotonic() < deadline, "the runner never reached the check"
        time.sleep(0.1)
    check_pid = int(marker.read_text())
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    try:
        psutil.Process(check_pid).wait(timeout=30)  # the check dies with its runner
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(check_pid) or psutil.Process(check_pid).status() == psutil.STATUS_ZOMBIE
    integration = Isolation(repo / "task.md", {"integrate": None})
    # The state being checked was made in the queue's own worktree: the branch never held it.
    assert "beta = 'second'" in (repo / ".batch/task/checks/1/shared.py").read_text()

    integration.prepare()  # the next run
    assert integration.merged_commit("edit", "alpha", "run-a") is not None
    assert integration.merged_commit("edit", "beta", "run-b") is None
    assert "beta = 'original'" in git("show", "batch/task:shared.py", cwd=repo)
    pending = integration.pending_success("edit", "beta", "run-b")
    assert pending is not None
    assert MergeQueue(integration).merge(pending, Check(PASSING, 60, "edit", "beta")).merged
    assert "beta = 'second'" in git("show", "batch/task:shared.py", cwd=repo)


def test_a_branch_moved_by_hand_during_a_merge_is_not_overwritten(repo):
    isolation = isolation_for(repo)
    queue = MergeQueue(isolation)
    first = isolation.open_attempt("edit", "alpha", "run-a")
    second = isolation.open_attempt("edit", "beta", "run-b")
    edit_section(first.folder, "alpha", "first")
    edit_section(second.folder, "beta", "second")
    first.commit_leftovers()
    second.commit_leftovers()
    assert queue.merge(first).merged
    by_hand = git("rev-parse", "main", cwd=repo)
    # Someone moves the integration branch while the merged state is being checked.
    moves_it = ("git", "-C", str(repo), "update-ref", "refs/heads/batch/task", by_hand)
    result = queue.merge(second, Check(moves_it, 60, "edit", "beta"))
    # Not a conflict: merged again on the tip it was moved to, which it keeps as its first parent.
    assert result.merged and isolation.tip() == result.merge_commit
    assert git("rev-parse", f"{result.merge_commit}^1", cwd=repo) == by_hand
    assert git("status", "--porcelain", cwd=isolation.integration_path) == ""


def test_a_damaged_attempt_record_is_said_not_read_as_no_baseline_and_its_worktree_is_kept_whole(repo):
    from batch_tasks.isolation.workspace import read_record, record_file

    isolation = isolation_for(repo)
    first = isolation.open_attempt("g", "one", "run-1")
    assert read_record(isolation, first.path)["run_id"] == "run-1"
    (first.path / "made.txt").write_text("the agent's\n")
    kept = record_file(isolation, first.path)
    kept.write_text('{"record": {"baseline": {"made.txt"')  # cut short
    with pytest.raises(WorkspaceError, match="cannot be read"):
        read_record(isolation, first.path)
    kept.unlink()
    assert read_record(isolation, first.path) == {}  # killed before it was written: nothing to read
    kept.write_text("[]")
    with pytest.raises(WorkspaceError, match="not an object"):
        read_record(isolation, first.path)
    second = isolation.open_attempt("g", "one", "run-2")
    kept = second.replaced
    said = git("log", "-1", "--format=%s", kept.branch, cwd=repo)
    assert "kept aside whole" in said and "record" in said, said
    assert git("show", f"{kept.branch}:made.txt", cwd=repo).strip() == "the agent's"


def test_an_attempt_opened_while_another_runs_worktree_is_half_made_is_opened_all_the_same(repo, monkeypatch):
    """Another task file's run in the repository making a worktree fails, for a moment, every git
    that reads them all: `worktree add -b` so failed had made its branch already, and the try
    after it found the branch there and failed the item."""
    from batch_tasks.repository import git as git_module

    isolation = isolation_for(repo)
    real_run, failed = git_module.subprocess.run, []

    def half_made_once(argv, **kwargs):
        if "worktree" in argv and "add" in argv and not failed:
            failed.append(argv)
            if "-b" in argv:  # what git does first for -b, before it reads the worktrees
                at = argv.index("-b")
                real_run(["git", "branch", argv[at + 1], argv[-1]], cwd=kwargs["cwd"], check=True)
            return subprocess.CompletedProcess(argv, 128, b"",
                                               b"fatal: failed to read .git/worktrees/other/commondir: Success\n")
        return real_run(argv, **kwargs)

    monkeypatch.setattr(git_module.subprocess, "run", half_made_once)
    workspace = isolation.open_attempt("edit", "alpha", "run-a")
    assert failed and workspace.path.is_dir()
    assert git("symbolic-ref", "HEAD", cwd=workspace.path) == f"refs/heads/{isolation.item_branch('edit', 'alpha')}"
