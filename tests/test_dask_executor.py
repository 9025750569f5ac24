"""`--executor dask` end to end: real `doit run-batch` processes, a real Dask scheduler and two
`dask worker` processes on loopback (one cluster for the module), each worker in a temporary
folder of its own, reaching the coordinator's repository only through a bare git remote.

Counting: the scripted agent appends `start`/`done` lines to $SCRIPTED_RUNS_LOG (shipped to the
workers by `pass_env`), so a test sees every agent start on every worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("dask-cluster")  # one process, one cluster for the module

from conftest import SCRIPTED_AGENT, wait_for  # noqa: E402
from dask_cluster import Cluster, bare_remote  # noqa: E402
from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, text, tool_use  # noqa: E402
from gitrepo import git, make_repo  # noqa: E402
from test_isolated_batch import AGENTS, user_tree  # noqa: E402

CLAUDE = find_claude()
AGENT_SLOTS = 2  # each worker's `agent` resource


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    for name in ("w1", "w2"):
        cluster.start_worker(name, AGENT_SLOTS, env=worker_env())
    cluster.wait_for_workers(2)
    yield cluster
    cluster.close()


def worker_env() -> dict:
    """What a worker's own machine has: the agent CLIs on PATH, and their quiet settings."""
    env = {"PATH": claude_path_env(CLAUDE) if CLAUDE else os.environ["PATH"]}
    quiet = cli_env("unused", "/nonexistent")
    env.update({name: value for name, value in quiet.items() if name.startswith(("DISABLE_", "CLAUDE_CODE_", "NO_"))})
    return env


def remote_batch(tmp_path: Path, modules: list[str], behaviour: dict, settings: str = "", agent: str = "") -> tuple[Path, dict]:
    """A repository whose task.md runs one item per module on the cluster, with `origin` a bare
    repository; behaviour.json, untracked, goes to the workers as a worktree_copy file."""
    repo = make_repo(tmp_path / "repo")
    command = json.dumps([sys.executable, str(SCRIPTED_AGENT), "{module}", "{group}"])
    front = agent or f"agent: command\ncommand: {command}\n"
    settings = settings if "pass_env" in settings else settings + "pass_env: [SCRIPTED_RUNS_LOG]\n"
    (repo / "task.md").write_text(
        f"---\n{front}isolation: worktree\nworktree_copy: [behaviour.json]\nretry_base: 0.2s\n{settings}---\n"
        "# Remote\n## Work\n" + "".join(f"- [ ] {module}: write {module}\n" for module in modules))
    (repo / ".gitignore").write_text("*.ignored\nbehaviour.json\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (repo / "behaviour.json").write_text(json.dumps(behaviour))
    bare_remote(repo, tmp_path)
    return repo, {"SCRIPTED_RUNS_LOG": str(tmp_path / "runs.log")}


def run_batch(repo: Path, cluster: Cluster, env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                           cluster.address, *args], cwd=repo, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def runs(tmp_path: Path, event: str = "start") -> list[list[str]]:
    """The agents' `start` (or `done`) lines: event, item, pid, time."""
    try:
        lines = (tmp_path / "runs.log").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [line.split() for line in lines if line.split()[0] == event]


def events(repo: Path, module: str) -> list[dict]:
    lines = (repo / f".batch/task/items/work/{module}/events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def workers_of(repo: Path, module: str) -> list[str]:
    return [e["data"]["worker"] for e in events(repo, module) if e["kind"] == "worker"]


def merges(repo: Path) -> list[str]:
    return git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()


def test_eight_items_over_two_workers_land_here_within_max_concurrent(tmp_path, cluster):
    modules = [f"m{n}" for n in range(8)]
    behaviour = {module: {"write": f"{module}.txt", "sleep": 0.6} for module in modules}
    behaviour["m3"]["attempts"] = {"2": {"write": "m3-again.txt"}}
    check = json.dumps([sys.executable, str(AGENTS / "check_once.py"), "{module}"])
    repo, env = remote_batch(tmp_path, modules, behaviour, f"max_concurrent: {{command: 3}}\ncheck: {check}\n")
    (tmp_path / "checks").mkdir()
    env.update(CHECK_STATE=str(tmp_path / "checks"), CHECK_FAILS_ONCE="m3")  # checks run here, on the coordinator
    before = user_tree(repo)

    result = run_batch(repo, cluster, env, "-n", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "task.md").read_text().count("- [x]") == 8
    assert sorted(merges(repo)) == sorted(f"Merge work:{m} into batch/task" for m in modules)
    for module in modules:
        assert git("show", f"batch/task:{module}.txt", cwd=repo).startswith("You are doing one item")
    assert user_tree(repo) == before  # the user's checkout: only its ticks changed

    # m3's check failed once: its second attempt, on whichever worker, went on from its first one's work.
    assert "FAILED tests/m3: expected a docstring" in git("show", "batch/task:m3-again.txt", cwd=repo)
    record = json.loads((repo / ".batch/task/items/work/m3/result.json").read_text())
    assert [a["failure_class"] for a in record["attempts"]] == ["check", None] and record["check"]["passed"]
    assert git("for-each-ref", "refs/heads/batch/task.items/", cwd=repo) == ""  # nothing kept aside
    assert git("ls-remote", "origin", "refs/heads/batch/*", cwd=repo) == ""  # merged branches left the remote too

    starts, dones = runs(tmp_path), runs(tmp_path, "done")
    assert sorted(line[1] for line in starts) == sorted([f"work:{m}" for m in modules] + ["work:m3"])
    spans = {pid: [float(t)] for _, _, pid, t in starts}
    for _, _, pid, t in dones:
        spans[pid].append(float(t))

    def peak(pids) -> int:
        return max(sum(1 for pid in pids if spans[pid][0] <= spans[at][0] < spans[pid][1]) for at in pids)

    assert peak(list(spans)) <= 3  # max_concurrent, held by the one dispatcher, across both workers
    on = {}  # worker → the pids of the agents it ran, attempt by attempt
    for module in modules:
        pids = [pid for _, item, pid, _ in starts if item == f"work:{module}"]
        for pid, worker in zip(pids, workers_of(repo, module), strict=True):
            on.setdefault(worker, []).append(pid)
    assert len(on) == 2 and all(peak(pids) <= AGENT_SLOTS for pids in on.values())  # each worker's `agent` resource
    # The agents ran in the workers' own folders, never in the coordinator's checkout.
    output = (repo / ".batch/task/items/work/m0/output.log").read_text()
    assert "agent for work:m0" in output
    assert not list((repo / ".batch/task/worktrees").glob("*/*/runs.log"))
    record = json.loads((repo / ".batch/task/items/work/m5/result.json").read_text())
    assert record["merge"]["status"] == "merged" and record["merge"]["files"] == [
        {"path": "m5.txt", "added": len(git("show", "batch/task:m5.txt", cwd=repo).splitlines()), "removed": 0}]


def test_a_plan_deep_in_the_repository_runs_its_agent_at_the_worktrees_top_on_its_worker(tmp_path, cluster):
    repo = make_repo(tmp_path / "repo")
    recorder = Path(__file__).parent / "agents" / "recorder.py"
    command = json.dumps([sys.executable, str(recorder), str(tmp_path / "recorded.jsonl")])
    plan = repo / "plans" / "fix_plan.md"  # a checklist: its paths start at the repository's top
    plan.parent.mkdir()
    plan.write_text(f"---\nagent: command\ncommand: {command}\nisolation: worktree\nallow_empty: true\n---\n"
                    "# Fix plan\n## High Priority\n- [ ] Fix the crash in shared.py\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    bare_remote(repo, tmp_path)
    result = run_batch(repo, cluster, {}, "-T", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    [entry] = [json.loads(line) for line in (tmp_path / "recorded.jsonl").read_text().splitlines()]
    assert {"shared.py", "plans", "task.md"} <= set(entry["files"]), entry  # the worktree's top, not plans/
    assert not entry["cwd"].startswith(str(repo)), entry  # on its worker, in its own folder


def test_a_secret_reaches_the_agent_on_its_worker_and_no_log(tmp_path, cluster):
    secret, plain = "sk-remote-0123456789abcdef", "shipped-word-42"
    behaviour = {"leaky": {"write": "leaky.txt", "leak": ["DEPLOY_TOKEN", "SHIPPED_WORD"]},
                 "nosy": {"write": "nosy.txt", "leak": ["COORDINATOR_ONLY"]},
                 "broken": {"write": "half.txt", "exit": 3}}
    repo, env = remote_batch(tmp_path, ["leaky", "nosy", "broken"], behaviour,
                             "pass_env: [SCRIPTED_RUNS_LOG, DEPLOY_TOKEN, SHIPPED_WORD]\nretries: 0\n")
    env.update(DEPLOY_TOKEN=secret, SHIPPED_WORD=plain, COORDINATOR_ONLY="not-for-workers-xyz")

    result = run_batch(repo, cluster, env, "-n", "3", "-k")
    assert result.returncode == 1, result.stdout + result.stderr  # nosy found no COORDINATOR_ONLY there
    leaky = (repo / ".batch/task/items/work/leaky/output.log").read_text()
    assert leaky.count("the value is ***") == 2  # both reached the agent, and were masked
    assert "KeyError: 'COORDINATOR_ONLY'" in (repo / ".batch/task/items/work/nosy/output.log").read_text()
    # A failed attempt's work is not lost: its worker pushed it aside, and its failure record names it.
    kept = json.loads((repo / ".batch/task/items/work/broken/failure.json").read_text())["kept"]
    assert kept["branch"].startswith("batch/task.items/work/broken.") and kept["wip"]
    git("fetch", "-q", "origin", kept["branch"], cwd=repo)
    assert git("show", f"{kept['commit']}:half.txt", cwd=repo).startswith("You are doing one item")
    everything = [result.stdout, result.stderr]
    for folder in (repo / ".batch", cluster.folder, tmp_path / "remote.git"):
        everything += [path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*")
                       if path.is_file() and not path.is_symlink()]
    assert not any(secret in text or plain in text or "not-for-workers-xyz" in text for text in everything)


def test_remote_events_are_live_then_a_killed_coordinator_loses_nothing(tmp_path, own_cluster):
    # Four agents that wait and one that lands beside them: five at once, more than the module's
    # cluster has room for (a quick one left waiting behind the four would never start).
    cluster = own_cluster
    for name in ("w1", "w2"):
        cluster.start_worker(name, 3, env=worker_env())
    cluster.wait_for_workers(2)
    modules = ["a", "b", "c", "d"]
    go = tmp_path / "go"  # they end once the coordinator is killed
    behaviour = {m: {"write": f"{m}.txt", "print": f"working on {m}", "until": str(go)} for m in modules}
    behaviour["quick"] = {"write": "quick.txt"}  # lands before the kill
    repo, env = remote_batch(tmp_path, ["quick", *modules], behaviour)
    coordinator = subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                                    cluster.address, "-n", "5"], cwd=repo, env={**os.environ, **env},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    items = repo / ".batch/task/items/work"
    wait_for(lambda: all((items / m / "running.json").exists() for m in modules) and len(runs(tmp_path)) == 5)
    # While they run remotely: what they do, and where, as batch-status reads it from the state folder.
    def status_showing_a() -> str | None:
        shown = subprocess.run([sys.executable, "-m", "doit", "batch-status"], cwd=repo, capture_output=True,
                               text=True, env={**os.environ, "COLUMNS": "200"}).stdout
        return shown if "working on a" in shown else None

    status = wait_for(status_showing_a, timeout=30)
    assert "127.0.0.1:" in status and "running" in status
    assert {w for m in modules for w in workers_of(repo, m)} == set(
        json.loads((items / m / "running.json").read_text())["worker"] for m in modules)
    wait_for(lambda: "- [x] quick" in (repo / "task.md").read_text())
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait(timeout=10)
    assert (repo / "task.md").read_text().count("- [x]") == 1

    # The remote attempts go on: the next run waits for them, saying so, and lands what they pushed
    # without running their agents again.
    resumed = subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                                cluster.address, "-n", "4"], cwd=repo, env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(resumed.stdout), daemon=True)
    reader.start()
    wait_for(lambda: any("still runs: waiting for it to end" in line for line in lines), timeout=60)
    go.touch()
    assert resumed.wait(timeout=120) == 0, "".join(lines)
    reader.join(timeout=10)
    output = "".join(lines)
    assert output.count("recovered: resuming work:") == 4, output
    assert output.count("it ended after its run was killed") == 4, output
    assert sorted(line[1] for line in runs(tmp_path)) == [f"work:{m}" for m in [*modules, "quick"]]  # no agent twice
    assert (repo / "task.md").read_text().count("- [x]") == 5
    assert sorted(merges(repo)) == [f"Merge work:{m} into batch/task" for m in [*modules, "quick"]]
    assert git("ls-remote", "origin", "refs/heads/batch/*", cwd=repo) == ""  # the killed run's merged one too


def test_the_live_panel_shows_each_remote_item_at_its_worker(tmp_path, cluster, monkeypatch):
    from test_live_view import run_on_a_terminal

    behaviour = {m: {"write": f"{m}.txt", "print": "thinking remotely", "sleep": 1.5} for m in ("p", "q")}
    repo, env = remote_batch(tmp_path, ["p", "q"], behaviour)
    monkeypatch.setenv("SCRIPTED_RUNS_LOG", env["SCRIPTED_RUNS_LOG"])

    class Terminal:
        path = repo

        def command(self, *args):
            return [sys.executable, "-m", "doit", *args]

    drawn = run_on_a_terminal(Terminal(), "run-batch", "--scheduler", cluster.address, "-n", "2", size=(24, 160))
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    assert "2 done, 0 failed" in screen, screen
    rows = [line for line in screen.splitlines() if "thinking remotely" in line]
    workers = {w.split("://")[1] for m in ("p", "q") for w in workers_of(repo, m)}
    assert rows and all(any(worker in row for worker in workers) for row in rows)  # its worker, beside its activity


def test_a_worker_killed_mid_attempt_is_retried_on_the_other(tmp_path, cluster):
    behaviour = {"doomed": {"write": "doomed.txt", "attempts": {"1": {"sleep": 60}}}}
    repo, env = remote_batch(tmp_path, ["doomed"], behaviour)
    coordinator = subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                                    cluster.address], cwd=repo, env={**os.environ, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: runs(tmp_path) and workers_of(repo, "doomed"))
    [first] = workers_of(repo, "doomed")
    name = next(n for n, w in cluster.names().items() if w == first)
    agent_pid = int(runs(tmp_path)[0][2])
    cluster.kill_worker(name)
    try:
        output, _ = coordinator.communicate(timeout=90)
        assert coordinator.returncode == 0, output
        assert "- [x] doomed" in (repo / "task.md").read_text()
        assert git("show", "batch/task:doomed.txt", cwd=repo)
        record = json.loads((repo / ".batch/task/items/work/doomed/result.json").read_text())
        assert [a["failure_class"] for a in record["attempts"]] == ["transient", None]
        assert "lost" in record["attempts"][0]["reason"]
        second = workers_of(repo, "doomed")[1]
        assert second != first and len(runs(tmp_path)) == 2 and len(runs(tmp_path, "done")) == 1
        wait_for(lambda: not psutil.pid_exists(agent_pid), timeout=20)  # its agent died with its worker
    finally:
        cluster.start_worker(name, AGENT_SLOTS, env=worker_env())
        cluster.wait_for_workers(2)


def test_a_run_stopped_here_stops_the_agent_on_its_worker(tmp_path, cluster):
    repo, env = remote_batch(tmp_path, ["stuck"], {"stuck": {"child": True, "sleep": 60}})
    coordinator = subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                                    cluster.address], cwd=repo, env={**os.environ, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children = wait_for(lambda: list(cluster.folder.glob("w*/cache/worktrees/*/child-stuck.pid")))
    child = int(wait_for(lambda: children[0].read_text()))
    agent = int(runs(tmp_path)[0][2])
    coordinator.send_signal(signal.SIGTERM)
    output, _ = coordinator.communicate(timeout=60)
    assert coordinator.returncode == 143, output
    wait_for(lambda: not psutil.pid_exists(agent) and not psutil.pid_exists(child), timeout=30)
    failure = json.loads((repo / ".batch/task/items/work/stuck/failure.json").read_text())
    assert failure["interrupted"]


@pytest.mark.skipif(CLAUDE is None and not os.environ.get("CI"), reason="the claude CLI is not installed: "
                    "bash .ci/run installs the pinned version")
def test_claude_code_items_over_two_workers(tmp_path, cluster):
    modules = [f"c{n}" for n in range(8)]
    routes = {f"Module: {m}": [tool_use("Write", {"file_path": f"{{cwd}}/notes/{m}.md", "content": f"# {m}\n"}),
                               text(f"Wrote {m}.")] for m in modules}
    agent = "agent: claude\npermission_mode: acceptEdits\nallowed_tools: [Write, Read]\n"
    settings = "pass_env: [ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY, CLAUDE_CODE_MAX_RETRIES]\n"
    repo, env = remote_batch(tmp_path, modules, {}, settings, agent=agent)
    with FakeAnthropic(by_prompt=routes) as api:
        env.update(ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-fake-key-remote", CLAUDE_CODE_MAX_RETRIES="0")
        env["PATH"] = claude_path_env(CLAUDE)
        result = run_batch(repo, cluster, env, "-n", "4", timeout=240)
        requests = api.main_requests
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "task.md").read_text().count("- [x]") == 8
    for module in modules:
        assert git("show", f"batch/task:notes/{module}.md", cwd=repo) == f"# {module}"
    used = {w for m in modules for w in workers_of(repo, m)}
    assert len(used) == 2
    # Each session ran in a worktree on its worker, not in the coordinator's repository.
    folders = {json.dumps(r.body).split("Primary working directory: ")[1].split("\\n")[0] for r in requests}
    assert len(folders) == 8 and all(str(cluster.folder) in folder for folder in folders)
    record = json.loads((repo / ".batch/task/items/work/c0/result.json").read_text())
    assert record["cost_usd"] > 0 and record["merge"]["status"] == "merged"


def test_each_mistake_of_a_dask_run_is_one_clear_error(tmp_path):
    repo, env = remote_batch(tmp_path, ["x"], {})
    unset = subprocess.run([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                            "tcp://127.0.0.1:1"], cwd=repo, capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "SCRIPTED_RUNS_LOG"})
    assert unset.returncode == 3 and unset.stderr == "ERROR: task.md: pass_env: SCRIPTED_RUNS_LOG not set in this environment\n"
    task = (repo / "task.md").read_text()
    (repo / "task.md").write_text(task.replace("isolation: worktree\n", "isolation: worktree\nexecutor: {dask: nowhere}\n"))
    wrong = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True, text=True)
    assert wrong.returncode == 3 and wrong.stderr.startswith("ERROR: task.md:5: setting 'executor' must be a Dask "
                                                             "scheduler's address such as tcp://HOST:8786")
    (repo / "task.md").write_text(task)
    hide = tmp_path / "hide"
    (hide / "distributed").mkdir(parents=True)
    (hide / "distributed" / "__init__.py").write_text("raise ImportError('distributed is not installed')\n")
    missing = subprocess.run([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                              "tcp://127.0.0.1:1"], cwd=repo, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(hide)})
    assert missing.returncode == 3
    assert missing.stderr.strip() == "ERROR: --executor dask needs the distributed package: pip install 'batch-tasks[dask]'"
    (repo / "task.md").write_text((repo / "task.md").read_text().replace("isolation: worktree\n", ""))
    shared = subprocess.run([sys.executable, "-m", "doit", "run-batch", "--executor", "dask"], cwd=repo,
                            capture_output=True, text=True)
    assert shared.returncode == 3 and "needs --scheduler" in shared.stderr
    unisolated = subprocess.run([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                                 "tcp://127.0.0.1:1"], cwd=repo, capture_output=True, text=True)
    assert unisolated.returncode == 3 and "needs isolation: worktree" in unisolated.stderr
    state = repo / ".batch/task"
    assert not (state / "run.lock").exists() and not (state / "items").exists()  # nothing ran, no lock was taken


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of the test's own, for the faults that would break the module's (no worker yet)."""
    cluster = Cluster(tmp_path / "cluster")
    yield cluster
    cluster.close()


def test_workers_broken_by_their_own_fault_are_set_aside_and_every_item_lands_elsewhere(tmp_path, own_cluster):
    # The agent is a program on the PATH of the coordinator and of the healthy worker only.
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "batch-agent").write_text(f"#!/bin/sh\nexec {sys.executable} {SCRIPTED_AGENT} \"$@\"\n")
    (bin_folder / "batch-agent").chmod(0o755)
    with_agent = {"PATH": f"{bin_folder}:{worker_env()['PATH']}"}
    own_cluster.start_worker("healthy", AGENT_SLOTS, env={**worker_env(), **with_agent})
    # Its git may not use the file transport: the remote (a folder) is out of its reach.
    own_cluster.start_worker("unreachable", AGENT_SLOTS, env={**worker_env(), **with_agent, "GIT_ALLOW_PROTOCOL": "ssh"})
    own_cluster.start_worker("no-agent", AGENT_SLOTS, env=worker_env())
    own_cluster.wait_for_workers(3)
    modules = [f"b{n}" for n in range(6)]
    agent = 'agent: command\ncommand: ["batch-agent", "{module}", "{group}"]\n'
    repo, env = remote_batch(tmp_path, modules, {m: {"write": f"{m}.txt", "sleep": 0.5} for m in modules},
                             "retries: 0\n", agent=agent)  # one attempt each: the workers' failures are not the items'
    env.update(with_agent)

    result = run_batch(repo, own_cluster, env, "-n", "6")  # as many as the three workers' slots: each gets some
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "task.md").read_text().count("- [x]") == 6
    workers = own_cluster.names()
    assert {w for m in modules for w in workers_of(repo, m)} == {workers["healthy"]}
    assert len(runs(tmp_path)) == 6  # each agent once, all on the healthy worker
    said = [line for line in result.stdout.splitlines() if "set aside" in line]
    assert len(said) == 2, result.stdout  # each named once, with its whole error
    [unreachable] = [line for line in said if workers["unreachable"] in line]
    assert "cannot fetch" in unreachable and "transport 'file' not allowed" in unreachable, said
    [no_agent] = [line for line in said if workers["no-agent"] in line]
    assert "cannot start the agent" in no_agent and "batch-agent" in no_agent, said


def test_a_lost_scheduler_is_waited_for_and_the_work_in_flight_lands(tmp_path, own_cluster):
    own_cluster.start_worker("first", 3, env=worker_env())
    own_cluster.wait_for_workers(1)
    modules = ["s1", "s2", "stuck"]
    go = tmp_path / "go"  # they end once their scheduler is gone; stuck's first agent never does
    behaviour = {m: {"write": f"{m}.txt", "until": str(go)} for m in modules}
    behaviour["stuck"]["attempts"] = {"1": {"until": str(tmp_path / "never")}}
    repo, env = remote_batch(tmp_path, modules, behaviour)
    coordinator = subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "--executor", "dask", "--scheduler",
                                    own_cluster.address, "-n", "3"], cwd=repo, env={**os.environ, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(coordinator.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(runs(tmp_path)) == 3)
        [stuck] = [int(pid) for _, item, pid, _ in runs(tmp_path) if item == "work:stuck"]
        own_cluster.kill_scheduler()  # its workers go too, once their running agents ended (and pushed)
        go.touch()
        wait_for(lambda: any("lost the Dask scheduler" in line for line in lines), timeout=60)
        own_cluster.restart_scheduler()
        wait_for(lambda: any("waiting for a Dask worker" in line for line in lines), timeout=60)
        own_cluster.start_worker("second", AGENT_SLOTS, env=worker_env())
        assert coordinator.wait(timeout=120) == 0, "".join(lines)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
    reader.join(timeout=10)
    output = "".join(lines)
    assert "going on" in output, output
    assert (repo / "task.md").read_text().count("- [x]") == 3
    assert sorted(merges(repo)) == [f"Merge work:{m} into batch/task" for m in modules]
    # No agent that ended was paid twice; the one that could not end was stopped as its worker closed
    # (none is left running there), and its item ran again, on the new worker.
    assert sorted(line[1] for line in runs(tmp_path)) == ["work:s1", "work:s2", "work:stuck", "work:stuck"]
    wait_for(lambda: not psutil.pid_exists(stuck), timeout=20)
    record = json.loads((repo / ".batch/task/items/work/stuck/result.json").read_text())
    assert [a["failure_class"] for a in record["attempts"]] == ["transient", None]
    assert "scheduler was lost" in record["attempts"][0]["reason"]


class FakeClient:
    """What cluster.Cluster asks of a Dask client: its status, and the workers its scheduler has."""

    def __init__(self, workers: list[str]):
        self.status, self.workers = "running", workers

    def nthreads(self) -> dict[str, int]:
        return {worker: 1 for worker in self.workers}

    def close(self) -> None:
        self.status = "closed"


def test_the_wait_for_a_worker_is_said_once_and_gives_up_after_its_time(monkeypatch):
    from batch_tasks.executors import cluster as cluster_module
    from batch_tasks.processes.process import StoppedError

    monkeypatch.setattr(cluster_module, "WAIT_SECONDS", 0.3)
    monkeypatch.setattr(cluster_module, "POLL_SECONDS", 0.05)
    said: list[str] = []
    client = FakeClient([])
    waiting = cluster_module.Cluster(client, "tcp://h:8786", said.append)
    with pytest.raises(StoppedError):
        waiting.ready(threading.Event())
    assert said == ["waiting for a Dask worker at tcp://h:8786",
                    "gave up on the Dask cluster at tcp://h:8786 after 0.3 s of waiting: its items are kept as "
                    "interrupted"]
    client.workers = ["tcp://w:1"]  # too late: the run gave up on its cluster
    with pytest.raises(StoppedError):
        waiting.ready(threading.Event())


def test_every_worker_set_aside_is_an_attempt_that_cannot_start():
    from batch_tasks.executors.cluster import Cluster

    said: list[str] = []
    client = FakeClient(["tcp://w:1", "tcp://w:2"])
    cluster = Cluster(client, "tcp://h:8786", said.append)
    cluster.set_worker_aside("tcp://w:1", "cannot fetch: fatal: no such remote", "g:a")
    cluster.set_worker_aside("tcp://w:1", "cannot fetch: fatal: no such remote", "g:b")  # said once
    assert cluster.ready(threading.Event()) is client and cluster.allowed() == ["tcp://w:2"]
    cluster.set_worker_aside("tcp://w:2", "cannot start the agent: [Errno 2] No such file: 'claude'", "g:c")
    with pytest.raises(OSError, match="every Dask worker is set aside for this run: tcp://w:1: cannot fetch"):
        cluster.ready(threading.Event())
    assert said == ["set aside the Dask worker tcp://w:1 for this run (g:a goes to another): cannot fetch: fatal: "
                    "no such remote",
                    "set aside the Dask worker tcp://w:2 for this run (g:c goes to another): cannot start the agent: "
                    "[Errno 2] No such file: 'claude'"]
