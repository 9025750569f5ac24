"""A tick means checked and merged, after any stop and whatever the check leaves: real
`doit run-batch` processes in real git repositories, stopped (kill -9, Ctrl-C, SIGTERM) at
the steps between an agent's success and its tick, then run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import alive, wait_for
from gitrepo import git, make_repo

AGENTS = Path(__file__).parent / "agents"


def setup(tmp_path: Path, plan: dict, body: str = "# E\n## G\n- [ ] alpha: edit alpha\n", isolated: bool = True,
          command: list[str] | None = None, check: list[str] | None = None, **extra: str) -> tuple[Path, dict]:
    repo = make_repo(tmp_path / "repo")
    command = command or [sys.executable, str(AGENTS / "editor.py"), "{module}"]
    check = check or [sys.executable, str(AGENTS / "check_once.py"), "{module}"]
    lines = ["---", "agent: command", f"command: {json.dumps(command)}", f"check: {json.dumps(check)}",
             *(["isolation: worktree"] if isolated else []), *(f"{key}: {value}" for key, value in extra.items()), "---"]
    (repo / "task.md").write_text("\n".join(lines) + "\n" + body)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "checks").mkdir()
    env = {"EDITOR_PLAN": str(tmp_path / "plan.json"), "EDITOR_LOG": str(tmp_path / "agent.log"),
           "CHECK_STATE": str(tmp_path / "checks")}
    return repo, env


def run(repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **env})


def stop_when(repo: Path, env: dict, reached, signum: int = signal.SIGKILL) -> str:
    """Start a run; once `reached()`, send it `signum`; return what it printed."""
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: reached() or runner.poll() is not None, timeout=90)
    assert reached(), "the run never got to the step to stop"
    runner.send_signal(signum)
    out, _ = runner.communicate(timeout=60)
    return out


def agent_starts(tmp_path: Path, module: str = "alpha") -> int:
    log = tmp_path / "agent.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for line in lines if json.loads(line)["module"] == module)


def check_runs(tmp_path: Path, module: str = "alpha") -> int:
    runs = tmp_path / "checks" / f"{module}.runs"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def merges(repo: Path) -> list[str]:
    return git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()


EDIT = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'edited'"}}


def test_what_a_check_leaves_is_never_the_items_work_and_never_blocks_its_landing(tmp_path):
    repo, env = setup(tmp_path, EDIT)
    env["CHECK_LEAVES"] = "alpha"  # an untracked report, and shared.py rewritten, as a formatter would
    first = run(repo, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "- [x] alpha" in (repo / "task.md").read_text()
    landed = git("show", "batch/task:shared.py", cwd=repo)
    assert "alpha = 'edited'" in landed and "reformatted by the check" not in landed
    assert "check-report.txt" not in git("ls-tree", "-r", "--name-only", "batch/task", cwd=repo)
    again = run(repo, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert merges(repo) == ["Merge g:alpha into batch/task"]  # landed once, never merged again
    assert agent_starts(tmp_path) == 1


def test_kill_9_during_a_check_without_isolation_runs_the_check_again_before_any_tick(tmp_path):
    repo, env = setup(tmp_path, EDIT, isolated=False, check_retries="0")
    hung = tmp_path / "checks" / "alpha.hung"
    stop_when(repo, {**env, "CHECK_HANGS_ONCE": "alpha"}, hung.exists)
    resumed = run(repo, {**env, "CHECK_FAILS_ONCE": "alpha"})  # the check, run again, fails
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "- [ ] alpha" in (repo / "task.md").read_text()
    assert check_runs(tmp_path) == 2 and agent_starts(tmp_path) == 1


STOPS_ITS_RUNNER = """
import json, os, signal, sys, time
marker = os.environ["EDITOR_LOG"] + ".stopped"
with open(os.environ["EDITOR_LOG"], "a") as log:
    log.write(json.dumps({"module": sys.argv[1]}) + "\\n")
with open("shared.py", "a") as edited:
    edited.write("# the agent's edit\\n")
if not os.path.exists(marker):  # the first time: its runner is stopped just before it exits, with 0
    open(marker, "w").close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(30)
"""


@pytest.mark.parametrize("isolated", [False, True], ids=["in place", "isolated"])
def test_a_stop_between_the_agents_exit_and_its_check_is_interrupted_then_resumed_at_its_check(tmp_path, isolated):
    agent = tmp_path / "stops_its_runner.py"
    agent.write_text(STOPS_ITS_RUNNER)
    repo, env = setup(tmp_path, EDIT, isolated=isolated, command=[sys.executable, str(agent), "{module}"])
    stopped = run(repo, env)
    assert "internal error" not in stopped.stdout + stopped.stderr
    folder = repo / ".batch/task/items/g/alpha"
    failure = json.loads((folder / "failure.json").read_text())
    assert failure["interrupted"] and failure["resume"]["state"] == ("committed" if isolated else "agent done")
    assert not (folder / "running.json").exists()
    assert "- [ ] alpha" in (repo / "task.md").read_text()

    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_starts(tmp_path) == 1 and check_runs(tmp_path) == 1  # checked once, paid once
    assert "- [x] alpha" in (repo / "task.md").read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_during_a_check_does_not_pay_the_agent_again(tmp_path, signum):
    repo, env = setup(tmp_path, EDIT)
    hung = tmp_path / "checks" / "alpha.hung"
    stop_when(repo, {**env, "CHECK_HANGS_ONCE": "alpha"}, hung.exists, signum)
    assert "- [ ] alpha" in (repo / "task.md").read_text()
    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_starts(tmp_path) == 1 and check_runs(tmp_path) == 2
    assert merges(repo) == ["Merge g:alpha into batch/task"]
    assert "- [x] alpha" in (repo / "task.md").read_text()


HANGS_AFTER_A_HALF_EDIT = """
import json, os, sys, time
with open(os.environ["EDITOR_LOG"], "a") as log:
    log.write(json.dumps({"module": sys.argv[1]}) + "\\n")
if os.environ["BATCH_ATTEMPT"] == "1":
    with open("half-done.py", "w") as half:
        half.write("# a half-done edit\\n")
    time.sleep(60)  # then hangs, past its timeout
with open("shared.py", "a") as edited:
    edited.write("# the whole edit\\n")
"""


@pytest.fixture(scope="module")
def hung_run(tmp_path_factory) -> dict:
    """One run of an item whose first attempt hangs after a half-done edit, and whose retry
    succeeds; with what it left, read at once (a test of this run's batch-clean changes it)."""
    tmp_path = tmp_path_factory.mktemp("hung")
    agent = tmp_path / "hangs.py"
    agent.write_text(HANGS_AFTER_A_HALF_EDIT)
    repo, env = setup(tmp_path, EDIT, command=[sys.executable, str(agent), "{module}"], timeout="3", retry_base="0.1s")
    result = run(repo, env)
    assert result.returncode == 0, result.stdout + result.stderr
    [kept] = json.loads((repo / ".batch/task/items/g/alpha/result.json").read_text())["kept_attempts"]
    return {"repo": repo, "env": env, "result": result, "kept": kept, "agent_starts": agent_starts(tmp_path),
            "landed": git("ls-tree", "-r", "--name-only", "batch/task", cwd=repo).split(),
            "landed_shared": git("show", "batch/task:shared.py", cwd=repo),
            "kept_files": git("ls-tree", "-r", "--name-only", kept["branch"], cwd=repo).split()}


@pytest.mark.xdist_group("hung-attempt")  # one worker, so that the two share one run
def test_a_hung_attempts_half_edit_is_kept_aside_and_never_lands_through_its_retry(hung_run):
    assert hung_run["agent_starts"] == 2
    assert "half-done.py" not in hung_run["landed"]
    assert "# the whole edit" in hung_run["landed_shared"]
    # The hung attempt's work is kept aside, on a branch of its own, and named in the item's record.
    assert "half-done.py" in hung_run["kept_files"]


@pytest.mark.xdist_group("hung-attempt")
def test_kept_attempts_are_named_and_batch_clean_removes_only_what_is_on_another_branch(hung_run):
    repo, env, result, kept = hung_run["repo"], hung_run["env"], hung_run["result"], hung_run["kept"]
    assert kept["branch"] in result.stdout  # the summary names it
    assert "doit batch-clean" in result.stdout

    def clean() -> str:
        done = subprocess.run([sys.executable, "-m", "doit", "batch-clean"], cwd=repo, capture_output=True, text=True,
                              timeout=60, env={**os.environ, **env})
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    said = clean()  # its half edit is on no other branch: it stays, and why is said
    assert f"kept {kept['branch']}" in said and "1 commit(s) on no other branch" in said
    assert git("rev-parse", "--verify", "-q", kept["branch"], cwd=repo) == kept["commit"]
    assert Path(kept["worktree"]).is_dir()

    git("branch", "taken-by-hand", kept["branch"], cwd=repo)  # the user keeps that work elsewhere
    said = clean()
    assert f"removed {kept['branch']}" in said and "its work is on taken-by-hand" in said
    assert git("rev-parse", "--verify", "-q", kept["branch"], cwd=repo, check=False) == ""
    assert not Path(kept["worktree"]).exists()
    assert "nothing kept" in clean()


LEAVES_A_DAEMON = """
import os, sys, time
pid_file = sys.argv[1]
if not os.path.exists(pid_file):  # the first time: a daemon of its own (setsid, double fork), then it hangs
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for fd in (0, 1, 2):
                os.close(fd)
            open(pid_file + ".tmp", "w").write(str(os.getpid()))
            os.replace(pid_file + ".tmp", pid_file)
            time.sleep(120)
        os._exit(0)
    time.sleep(60)
"""


def killed_with_a_daemon_up(repo: Path, env: dict, pid_file: Path):
    """Kill the run with -9 once the daemon its check or setup started is up; that daemon."""
    import psutil

    stop_when(repo, env, pid_file.exists)
    return psutil.Process(int(pid_file.read_text()))


@pytest.mark.parametrize("isolated", [False, True], ids=["in place", "isolated"])
def test_what_a_check_started_dies_with_a_run_killed_with_9_which_then_resumes(tmp_path, isolated):
    script, pid_file = tmp_path / "daemon_check.py", tmp_path / "daemon.pid"
    script.write_text(LEAVES_A_DAEMON)
    repo, env = setup(tmp_path, EDIT, isolated=isolated, check=[sys.executable, str(script), str(pid_file)])
    daemon = killed_with_a_daemon_up(repo, env, pid_file)
    try:
        wait_for(lambda: not alive(daemon.pid), timeout=20)  # the run's watchdog: by its cgroup or marker
        resumed = run(repo, env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert agent_starts(tmp_path) == 1 and "- [x] alpha" in (repo / "task.md").read_text()
    finally:
        if daemon.is_running():
            daemon.kill()


def test_the_integration_branch_is_held_by_the_runner_so_no_checkout_can_move_under_it(tmp_path):
    repo, env = setup(tmp_path, EDIT)
    assert run(repo, env).returncode == 0
    refused = subprocess.run(["git", "checkout", "batch/task"], cwd=repo, capture_output=True, text=True)
    assert refused.returncode != 0 and "batch/task" in refused.stderr
    assert git("symbolic-ref", "HEAD", cwd=repo) == "refs/heads/main"


MOVES_MAIN = """
import json, os, subprocess, sys
with open(os.environ["EDITOR_LOG"], "a") as log:
    log.write(json.dumps({"module": sys.argv[1]}) + "\\n")
with open("shared.py", "a") as edited:
    edited.write("# an edit, committed onto the user's main too\\n")
subprocess.run(["git", "commit", "-qam", "sneaky"], check=True)
subprocess.run(["git", "update-ref", "refs/heads/main", "HEAD"], check=True)
"""


def test_an_attempt_that_moves_another_branch_fails_naming_it_and_lands_nothing(tmp_path):
    agent = tmp_path / "moves_main.py"
    agent.write_text(MOVES_MAIN)
    repo, env = setup(tmp_path, EDIT, command=[sys.executable, str(agent), "{module}"], retries="0")
    result = run(repo, env)
    assert result.returncode == 1, result.stdout + result.stderr
    failure = json.loads((repo / ".batch/task/items/g/alpha/failure.json").read_text())
    assert "refs/heads/main" in failure["reason"]
    assert merges(repo) == [] and agent_starts(tmp_path) == 1
    assert "- [ ] alpha" in (repo / "task.md").read_text()


HOLDS_THE_MERGED_STATE = """
import os, sys, time
state = os.environ["CHECK_STATE"]
with open(os.path.join(state, sys.argv[1] + ".runs"), "a") as runs:
    runs.write(os.environ["BATCH_WORKTREE"] + "\\n")
merged_state = os.path.basename(os.path.dirname(os.environ["BATCH_WORKTREE"])) == "checks"  # the queue's worktree
if merged_state and not os.path.exists(os.path.join(state, "held")):
    open(os.path.join(state, "held"), "w").close()
    while not os.path.exists(os.path.join(state, "go")):
        time.sleep(0.05)
"""


def user_commit_on(repo: Path, branch: str, name: str) -> str:
    """A commit of the user's onto `branch`, made without checking it out (the runner holds it)."""
    tip = git("rev-parse", branch, cwd=repo)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input="the user's\n", text=True,
                          capture_output=True, check=True).stdout.strip()
    index = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / "user-index")}
    subprocess.run(["git", "read-tree", tip], cwd=repo, env=index, check=True)
    subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}"], cwd=repo, env=index, check=True)
    tree = subprocess.run(["git", "write-tree"], cwd=repo, env=index, capture_output=True, text=True, check=True).stdout.strip()
    commit = git("commit-tree", tree, "-p", tip, "-m", "the user's own commit", cwd=repo)
    git("update-ref", f"refs/heads/{branch}", commit, tip, cwd=repo)
    return commit


def test_a_user_commit_on_the_integration_branch_during_a_merged_state_check_lands_again_without_the_agent(tmp_path):
    script = tmp_path / "holds.py"
    script.write_text(HOLDS_THE_MERGED_STATE)
    plan = {name: {"file": "shared.py", "line": line, "text": f"{name} = 'edited'", "await": ["alpha", "beta"]}
            for name, line in (("alpha", 2), ("beta", 11))}
    repo, env = setup(tmp_path, plan, body="# E\n## G\n- [ ] alpha: edit alpha\n- [ ] beta: edit beta\n",
                      check=[sys.executable, str(script), "{module}"], parallel="2")
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for((tmp_path / "checks" / "held").exists, timeout=90)
    users = user_commit_on(repo, "batch/task", "users-file.txt")
    (tmp_path / "checks" / "go").touch()
    out, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0, out
    assert agent_starts(tmp_path, "alpha") == 1 and agent_starts(tmp_path, "beta") == 1
    assert git("merge-base", "--is-ancestor", users, "batch/task", cwd=repo, check=False) == ""
    assert "users-file.txt" in git("ls-tree", "--name-only", "batch/task", cwd=repo).split()
    assert (repo / "task.md").read_text().count("- [x]") == 2


# git, its wait for another's lock on a ref cut to 0.1 s: a lock no git will remove is given up
# on as after the runner's 30 s, without the test waiting them out.
IMPATIENT_GIT = """#!/bin/sh
for arg; do
    shift
    case $arg in
        core.filesRefLockTimeout=*) arg=core.filesRefLockTimeout=100 ;;
        core.packedRefsTimeout=*) arg=core.packedRefsTimeout=100 ;;
    esac
    set -- "$@" "$arg"
done
exec {git} "$@"
"""


def impatient_git(tmp_path: Path) -> dict:
    """The environment that puts IMPATIENT_GIT first on PATH."""
    folder = tmp_path / "impatient"
    folder.mkdir()
    (folder / "git").write_text(IMPATIENT_GIT.format(git=shutil.which("git")))
    (folder / "git").chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_a_stale_lock_of_the_integration_branch_is_named_and_costs_no_agent_run(tmp_path):
    plan = {"alpha": {**EDIT["alpha"], "gate": "go"}}
    repo, env = setup(tmp_path, plan)
    env.update(GATES=str(tmp_path), **impatient_git(tmp_path))
    git("branch", "batch/task", cwd=repo)
    lock = repo / ".git/refs/heads/batch/task.lock"
    lock.write_text("")  # what a git that crashed leaves: before a run, nothing starts
    refused = run(repo, env)
    assert refused.returncode == 3 and "batch/task.lock" in refused.stderr and agent_starts(tmp_path) == 0
    lock.unlink()

    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: agent_starts(tmp_path) == 1)
    lock.write_text("")  # and while its agent works: its merge cannot land
    (tmp_path / "go").touch()
    out, _ = runner.communicate(timeout=120)
    assert runner.returncode == 1 and "batch/task.lock" in out, out
    assert "- [ ] alpha" in (repo / "task.md").read_text() and agent_starts(tmp_path) == 1
    lock.unlink()
    landed = run(repo, env)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert agent_starts(tmp_path) == 1 and merges(repo) == ["Merge g:alpha into batch/task"]


def test_what_a_worktree_setup_started_dies_with_a_run_killed_with_9_which_then_resumes(tmp_path):
    script, pid_file = tmp_path / "daemon_setup.py", tmp_path / "daemon.pid"
    script.write_text(LEAVES_A_DAEMON)
    repo, env = setup(tmp_path, EDIT, worktree_setup=json.dumps([sys.executable, str(script), str(pid_file)]))
    daemon = killed_with_a_daemon_up(repo, env, pid_file)
    try:
        wait_for(lambda: not alive(daemon.pid), timeout=20)  # the run's watchdog: by its cgroup or marker
        resumed = run(repo, env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "- [x] alpha" in (repo / "task.md").read_text()
    finally:
        if daemon.is_running():
            daemon.kill()


def test_an_item_reworded_after_a_stop_during_its_check_runs_its_agent_again(tmp_path):
    repo, env = setup(tmp_path, EDIT)
    hung = tmp_path / "checks" / "alpha.hung"
    stop_when(repo, {**env, "CHECK_HANGS_ONCE": "alpha"}, hung.exists, signal.SIGINT)
    task = repo / "task.md"
    task.write_text(task.read_text().replace("- [ ] alpha: edit alpha", "- [ ] alpha: edit alpha, reworded"))
    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_starts(tmp_path) == 2  # the stopped work was made from the old wording: not landed as this
    assert "- [x] alpha: edit alpha, reworded" in task.read_text()
