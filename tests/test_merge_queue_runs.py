"""The merge queue at the speed of the agents, in real `doit run-batch` processes on real git
repositories: merged-state checks side by side (seen by the checks themselves, not by time), a
batch of four checked once and bisected down to its culprit while the others land without
their agents run again, a flaky check rerun and nobody blamed, a run killed in the queue whose
items all land once in the next, and an integration branch whose every merge commit passes the
check. The check is tests/agents/queue_check.py; the agents tests/agents/editor.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from conftest import wait_for
from gitrepo import git, make_repo

AGENTS = Path(__file__).parent / "agents"
CHECK = [sys.executable, str(AGENTS / "queue_check.py")]
LINES = {"z": 2, "h": 5, "c": 11, "d": 14, "e": 20, "f": 23}  # far enough apart to merge cleanly


def setup(tmp_path: Path, modules: str, gated: str = "", breaks: str = "", **settings) -> tuple[Path, dict]:
    """Items `modules`, each editing its own line of shared.py, the others from one tip; those in
    `gated` start their edit once the queue's first merged-state check is held, and all of them
    have started; `breaks` writes `breaks<attempt>`."""
    repo = make_repo(tmp_path / "repo")
    front = {"agent": "command", "isolation": "worktree", "parallel": len(modules),
             "command": json.dumps([sys.executable, str(AGENTS / "editor.py"), "{module}"]),
             "check": json.dumps(CHECK), **settings}
    body = "".join(f"- [ ] {module}: edit line {LINES[module]}\n" for module in modules)
    (repo / "task.md").write_text("---\n" + "".join(f"{k}: {v}\n" for k, v in front.items()) + "---\n# Q\n## G\n" + body)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    ungated = [m for m in modules if m not in gated]
    plan = {module: {"file": "shared.py", "line": LINES[module],
                     "text": f"{module} = 'breaks{{attempt}}'" if module == breaks else f"{module} = 'edited'",
                     **({"gate": "held", "await": list(gated)} if module in gated else {"await": ungated})}
            for module in modules}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "checks").mkdir()
    env = {**os.environ, "EDITOR_PLAN": str(tmp_path / "plan.json"), "EDITOR_LOG": str(tmp_path / "agent.log"),
           "CHECK_STATE": str(tmp_path / "checks"), "GATES": str(tmp_path / "checks")}
    return repo, env


def run(repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True, text=True,
                          timeout=180, env=env)


def agent_starts(tmp_path: Path) -> dict[str, int]:
    lines = (tmp_path / "agent.log").read_text().splitlines()
    starts: dict[str, int] = {}
    for line in lines:
        module = json.loads(line)["module"]
        starts[module] = starts.get(module, 0) + 1
    return starts


def prompts(tmp_path: Path, module: str) -> list[str]:
    return [entry["prompt"] for entry in map(json.loads, (tmp_path / "agent.log").read_text().splitlines())
            if entry["module"] == module]


def merged_runs(tmp_path: Path) -> list[dict]:
    path = tmp_path / "checks" / "runs.jsonl"
    return [run for run in map(json.loads, path.read_text().splitlines()) if run.get("merged")] if path.exists() else []


def merges(repo: Path) -> list[str]:
    return git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()


def record(repo: Path, module: str) -> dict:
    return json.loads((repo / f".batch/task/items/g/{module}/result.json").read_text())


def queued(repo: Path, modules: str) -> bool:
    """Each of `modules` has entered the merge queue (its events.jsonl says so)."""
    def entered(module: str) -> bool:
        path = repo / f".batch/task/items/g/{module}/events.jsonl"
        return path.exists() and '"state": "queued"' in path.read_text()
    return all(entered(module) for module in modules)


@contextmanager
def held_run(repo: Path, env: dict, **extra_env: str):
    """A `doit run-batch` whose merged-state checks wait (queue_check.py's CHECK_HOLD) until
    `let_go`; killed if the test leaves it running."""
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo,
                              env={**env, "CHECK_HOLD": "1", **extra_env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield runner
    finally:
        runner.kill()


def wait_queued(runner: subprocess.Popen, repo: Path, modules: str) -> None:
    wait_for(lambda: queued(repo, modules) or runner.poll() is not None, timeout=120)


def let_go(tmp_path: Path, runner: subprocess.Popen, timeout: float = 120) -> str:
    """The held checks go on; what the run printed, once it ended."""
    (tmp_path / "checks" / "go").touch()
    return runner.communicate(timeout=timeout)[0]


def every_merge_commit_passes_the_check(repo: Path, tmp_path: Path) -> int:
    """Check out each merge commit the run made on the integration branch and run the check there."""
    commits = git("rev-list", "--first-parent", "--merges", "batch/task", cwd=repo).split()
    checkout, state = tmp_path / "every-state", tmp_path / "every-state-runs"
    state.mkdir()
    git("worktree", "add", "-q", "--detach", str(checkout), "batch/task", cwd=repo)
    for commit in commits:
        git("checkout", "-q", "--detach", commit, cwd=checkout)
        done = subprocess.run(CHECK, cwd=checkout, capture_output=True, text=True,
                              env={**os.environ, "BATCH_WORKTREE": str(checkout), "CHECK_STATE": str(state)})
        assert done.returncode == 0, f"{commit} on batch/task fails the check: {done.stdout}"
    return len(commits)


def test_merged_state_checks_run_side_by_side_while_the_items_wait_without_their_slots(tmp_path):
    # The first to pass lands as it is; the two after it are checked at once: the second on the
    # tip with the first of them merged in. Each merged-state check waits to meet another.
    repo, env = setup(tmp_path, "zhc", check_parallel=2, merge_batch=1)
    done = run(repo, {**env, "CHECK_MEET": "2"})
    assert done.returncode == 0, done.stdout + done.stderr
    runs = merged_runs(tmp_path)
    assert len(runs) == 2 and all(run["running"] == 2 for run in runs), runs
    assert agent_starts(tmp_path) == {"z": 1, "h": 1, "c": 1}
    assert sorted(merges(repo)) == ["Merge g:c into batch/task", "Merge g:h into batch/task",
                                    "Merge g:z into batch/task"]
    behind = [record(repo, module)["merge"]["queue"]["checked_with"] for module in "zhc"]
    assert sorted(map(len, behind)) == [0, 1, 1]  # one check each for the two merged, none for the first


def test_an_item_waiting_in_the_merge_queue_gives_its_slot_to_another_agent(tmp_path):
    # -n 2: z and h run, and enter the queue; its first merged-state check (h's, or theirs
    # together) is held. c and d start only together: h's slot must have gone to one of them.
    repo, env = setup(tmp_path, "zhcd", gated="cd", parallel=2, check_parallel=1)
    with held_run(repo, env) as runner:
        wait_queued(runner, repo, "cd")
        assert (tmp_path / "checks" / "held").exists() and len(merges(repo)) <= 1  # h still held in the queue
        out = let_go(tmp_path, runner)
    assert runner.returncode == 0, out
    assert agent_starts(tmp_path) == {"z": 1, "h": 1, "c": 1, "d": 1}
    assert (repo / "task.md").read_text().count("- [x]") == 4


def test_a_failing_batch_of_four_is_bisected_its_culprit_told_and_the_others_land_without_their_agents(tmp_path):
    # z lands first; h's merged-state check holds the queue until c, d, e and f wait behind it:
    # they are checked together, and f's first work breaks the others'.
    repo, env = setup(tmp_path, "zhcdef", gated="cdef", breaks="f", check_parallel=1, merge_batch=4)
    with held_run(repo, env) as runner:
        wait_queued(runner, repo, "cdef")
        out = let_go(tmp_path, runner, timeout=180)
    assert runner.returncode == 0, out
    assert "bisected 1 time" in out and "items in a bisected batch" in out  # the done lines, the summary
    assert "waiting to merge: bisected: " in out  # the plain line as it happened
    assert agent_starts(tmp_path) == {"z": 1, "h": 1, "c": 1, "d": 1, "e": 1, "f": 2}
    runs = merged_runs(tmp_path)
    held, batch, again = runs[:3]
    assert len(held["edits"]) == 2 and len(batch["edits"]) == 6  # z and h; then the four on them, at once
    assert batch["edits"] == again["edits"] and not batch["passed"] and not again["passed"]  # not a flake
    assert all(record(repo, module)["merge"]["queue"]["bisected"] >= 1 for module in "cde")
    told = prompts(tmp_path, "f")[1]
    assert "FAILED tests/test_f.py" in told and "breaks1" in told  # the merged check's output
    assert (repo / "task.md").read_text().count("- [x]") == 6
    assert sorted(merges(repo)) == sorted(f"Merge g:{module} into batch/task" for module in "zhcdef")
    assert "f = 'breaks2'" in git("show", "batch/task:shared.py", cwd=repo)
    assert every_merge_commit_passes_the_check(repo, tmp_path) == 6


def test_a_merged_state_check_that_fails_once_is_rerun_on_the_same_state_and_nobody_is_blamed(tmp_path):
    # One item a state: the first to pass lands as it is, the other is checked merged.
    repo, env = setup(tmp_path, "zh", check_parallel=2, merge_batch=1)
    done = run(repo, {**env, "CHECK_FLAKY": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = merged_runs(tmp_path)
    assert not first["passed"] and second["passed"] and first["edits"] == second["edits"]  # the same state
    assert agent_starts(tmp_path) == {"z": 1, "h": 1}
    checked = [record(repo, module)["merge"]["queue"]["checks"] for module in "zh"]
    assert sorted(checked) == [0, 2]
    assert not list((repo / ".batch/task/items/g").glob("*/failure.json"))


def test_a_run_killed_in_the_queue_lands_every_item_that_had_passed_once_in_the_next_without_their_agents(tmp_path):
    repo, env = setup(tmp_path, "zhcd", gated="cd", check_parallel=1, merge_batch=4)
    with held_run(repo, env) as runner:
        wait_queued(runner, repo, "cd")
        assert runner.poll() is None
        tip = git("rev-parse", "batch/task", cwd=repo)
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=60)
    assert len(merges(repo)) <= 1  # the first landed, unless checked with h; what was held never did
    assert git("rev-parse", "batch/task", cwd=repo) == tip

    done = run(repo, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert agent_starts(tmp_path) == {"z": 1, "h": 1, "c": 1, "d": 1}
    assert sorted(merges(repo)) == sorted(f"Merge g:{module} into batch/task" for module in "zhcd")
    assert (repo / "task.md").read_text().count("- [x]") == 4
    assert not (repo / ".batch/task/checks").exists()  # the queue's worktrees go at the run's end


def test_without_its_own_check_an_item_is_checked_merged_and_one_that_fails_there_is_told_and_lands(tmp_path):
    # `own_check: false`: z's work goes to the queue from its agent and is checked there, alone
    # on the tip (held until h waits behind it); h's first work fails beside z's: h goes back to
    # its session with the merged check's output, counted as a failed check, and then lands.
    repo, env = setup(tmp_path, "zh", gated="h", breaks="h", own_check="false", check_parallel=1, merge_batch=4)
    with held_run(repo, env) as runner:
        wait_queued(runner, repo, "h")
        out = let_go(tmp_path, runner)
    assert runner.returncode == 0, out
    runs = [json.loads(line) for line in (tmp_path / "checks" / "runs.jsonl").read_text().splitlines()]
    assert all(run["merged"] for run in runs), runs  # no item's own check ran
    assert runs[0]["edits"] == ["z = 'edited'"] and runs[0]["passed"]  # z alone on the tip: checked all the same
    assert agent_starts(tmp_path) == {"z": 1, "h": 2}
    told = prompts(tmp_path, "h")[1]
    assert "FAILED tests/test_h.py" in told and "breaks1" in told
    failed = record(repo, "h")["attempts"][0]
    assert failed["failure_class"] == "check", failed
    assert record(repo, "z")["check"]["passed"]  # its verdict, beside its claim
    assert sorted(merges(repo)) == ["Merge g:h into batch/task", "Merge g:z into batch/task"]
    assert every_merge_commit_passes_the_check(repo, tmp_path) == 2


def test_a_speculative_state_given_up_has_its_check_stopped_before_anything_behind_it_is_checked(tmp_path):
    # own_check: false, one item a state, two at once. z's state is held until h and then c wait
    # behind it; h's first work fails beside z's, and c's state on h lingers. When h is blamed,
    # c's state is given up: its check must be stopped, not run to its end, before c is checked
    # again on what landed.
    repo, env = setup(tmp_path, "zhc", gated="hc", breaks="h", own_check="false", check_parallel=2, merge_batch=1)
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["h"].update(gate="held", **{"await": ["h"]})
    plan["c"].update(gate="c-go", **{"await": ["c"]})  # c enters the queue after h
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with held_run(repo, env, CHECK_LINGER="c") as runner:
        wait_queued(runner, repo, "h")
        (tmp_path / "checks" / "c-go").touch()
        wait_queued(runner, repo, "c")
        out = let_go(tmp_path, runner)
    assert runner.returncode == 0, out
    runs = [json.loads(line) for line in (tmp_path / "checks" / "runs.jsonl").read_text().splitlines()]
    stopped = [index for index, run in enumerate(runs) if "stopped" in run]
    assert len(stopped) == 1 and "h = 'breaks1'" in runs[stopped[0]]["stopped"], runs
    c_again = [index for index, run in enumerate(runs)
               if run.get("passed") and run["edits"] == ["z = 'edited'", "c = 'edited'"]]
    assert c_again and stopped[0] < c_again[0], runs  # gone before c's state on the tip was checked
    assert agent_starts(tmp_path) == {"z": 1, "h": 2, "c": 1}
    assert sorted(merges(repo)) == sorted(f"Merge g:{module} into batch/task" for module in "zhc")


def test_items_whose_check_names_them_are_checked_together_each_check_once_on_the_one_merged_state(tmp_path):
    # The check names the item ({module}). z's state is held (own_check: false) until h, c and d
    # wait behind it: they are checked as one batch, their three checks run on the same state.
    repo, env = setup(tmp_path, "zhcd", gated="hcd", own_check="false", check_parallel=1, merge_batch=4,
                      check=json.dumps([*CHECK, "{module}"]))
    with held_run(repo, env) as runner:
        wait_queued(runner, repo, "hcd")
        out = let_go(tmp_path, runner)
    assert runner.returncode == 0, out
    first, *batch = merged_runs(tmp_path)
    assert first["module"] == "z" and len(first["edits"]) == 1
    assert sorted(run["module"] for run in batch) == ["c", "d", "h"], batch  # each its own check, once
    assert all(len(run["edits"]) == 4 and run["edits"] == batch[0]["edits"] for run in batch)  # on one state
    assert sorted(record(repo, "c")["merge"]["queue"]["checked_with"][0]) == ["g:c", "g:d", "g:h"]
    assert sorted(merges(repo)) == sorted(f"Merge g:{module} into batch/task" for module in "zhcd")
