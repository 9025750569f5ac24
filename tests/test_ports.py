"""BATCH_PORT and BATCH_SLOT: blocks of ports no two items of any run hold at once, freed
when the item is over, and by the kernel when its runner is killed."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import wait_for

from batch_tasks.processes.ports import UNIT, NoPortsLeft, Ports

# Each test leases ports from the machine's one range, but keeps its locks in a folder of its
# own (its TMPDIR): beside each other, two tests could be given the same port to bind.
pytestmark = pytest.mark.xdist_group("ports")

AGENTS = Path(__file__).parent / "agents"


def free(folder: Path, port: int) -> bool:
    """Nobody holds the lock of the unit starting at `port`, and nobody listens on it."""
    fd = os.open(folder / f"{port}.lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_leases_never_overlap_and_slots_are_the_smallest_free(tmp_path):
    ports = Ports(tmp_path, first=30000, last=30099)
    one, two, wide = ports.lease(10), ports.lease(5), ports.lease(25)
    assert (one.port, two.port, wide.port) == (30000, 30010, 30020)  # 25 ports: three units
    assert [one.slot, two.slot, wide.slot] == [1, 2, 3]
    assert ports.lease(10).port == 30050
    two.release()
    two.release()  # once is enough; again does nothing
    again = ports.lease(10)
    assert (again.port, again.slot) == (30010, 2)
    assert again.environment() == {"BATCH_PORT": "30010", "BATCH_SLOT": "2"}


def test_a_lease_tries_no_block_its_own_run_holds(tmp_path, monkeypatch):
    """Each item leases a block as it starts: at -n 8 it would open and try the eight lock files
    its run holds before finding a free one, for each of 10,000 items."""
    from batch_tasks.processes import ports as module

    ports = Ports(tmp_path, first=30000, last=30199)
    held = [ports.lease(10) for _ in range(8)]
    tried = []
    opened = module._open_lock
    monkeypatch.setattr(module, "_open_lock", lambda folder, port: tried.append(port) or opened(folder, port))
    ninth = ports.lease(20)
    assert (ninth.port, tried) == (30080, [30080, 30090])
    held[3].release()
    assert ports.lease(10).port == 30030  # given back, it is taken again
    assert tried[2:] == []  # still locked by its run: no lock file opened for it again


def test_a_block_given_back_stays_the_runs_until_it_closes_or_another_size_needs_room(tmp_path):
    """Items come and go by the thousand: the block an item gives back stays locked for the
    next item's lease; other runs get it once the run closes, or lets go of it for a lease
    of another size."""
    def taken_elsewhere(count: int) -> int:
        code = (f"from batch_tasks.processes.ports import Ports\n"
                f"print(Ports(__import__('pathlib').Path({str(tmp_path)!r}), 30000, 30099).lease({count}).port)")
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)

    ports = Ports(tmp_path, first=30000, last=30099)
    ports.lease(10).release()
    assert taken_elsewhere(10) == 30010  # kept by its run
    wide = ports.lease(20)  # another size: the kept block is let go, and reused
    assert wide.port == 30000
    wide.release()
    ports.close()
    assert taken_elsewhere(10) == 30000


def test_another_process_holding_a_block_is_skipped_and_its_death_frees_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom batch_tasks.processes.ports import Ports\n"
                               f"lease = Ports(__import__('pathlib').Path({str(tmp_path)!r}), 30000, 30099).lease(20)\n"
                               "print(lease.port, flush=True)\nsys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "30000"
        assert Ports(tmp_path, 30000, 30099).lease(10).port == 30020
        holder.kill()  # kill -9: the kernel lets go of its locks
        holder.wait()
        assert Ports(tmp_path, 30000, 30099).lease(10).port == 30000
    finally:
        holder.kill()


def test_a_full_range_is_one_clear_error_and_gives_its_slot_back(tmp_path):
    ports = Ports(tmp_path, first=30000, last=30019)
    held = ports.lease(20)
    with pytest.raises(NoPortsLeft, match="no block of 10 ports is free from 30000 to 30019"):
        ports.lease(10)
    held.release()
    assert ports.lease(10).slot == 1


def port_batch(tmp_path: Path, items: int, together: int) -> tuple[Path, Path, dict[str, str]]:
    """ITEMS whose agents serve on their ports in waves of TOGETHER: the log they write, the
    folder of the port locks, and the run's environment."""
    command = json.dumps([sys.executable, str(AGENTS / "port_holder.py")])
    body = "# Serve\n" + "".join(f"- [ ] m{n}: serve m{n}\n" for n in range(items))
    (tmp_path / "task.md").write_text(f"---\nagent: command\ncommand: {command}\n---\n{body}")
    log, locks = tmp_path / "ports.log", tmp_path / "temp"
    locks.mkdir()
    return log, locks, {**os.environ, "PORTS_LOG": str(log), "PORTS_TOGETHER": str(together), "TMPDIR": str(locks)}


def served(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_eight_items_at_four_at_once_each_serve_on_a_port_of_their_own(tmp_path):
    log, locks, env = port_batch(tmp_path, 8, together=4)
    result = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", "4"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr  # a port taken twice fails its agent's bind
    lines = served(log)
    assert len(lines) == 8
    for wave in (lines[:4], lines[4:]):  # each four listened at the same time
        assert len({line["port"] for line in wave}) == 4 and {line["slot"] for line in wave} == {1, 2, 3, 4}
    assert all(line["port"] % UNIT == 0 for line in lines)
    folder = locks / "batch-tasks-ports"
    assert all(free(folder, line["port"]) for line in lines)  # nothing left bound or locked


def test_a_runner_killed_with_9_leaves_no_port_bound_or_locked(tmp_path):
    log, locks, env = port_batch(tmp_path, 8, together=100)
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "-n", "4"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lines = wait_for(lambda: len(served(log)) == 4 and served(log), timeout=60)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    wait_for(lambda: not any(psutil.pid_exists(line["pid"]) and psutil.Process(line["pid"]).status() != "zombie"
                             for line in lines), timeout=30)  # the run's watchdog stops its agents
    folder = locks / "batch-tasks-ports"
    assert len({line["port"] for line in lines}) == 4
    assert all(free(folder, line["port"]) for line in lines)


def serving_repo(tmp_path: Path, modules: list[str], retry_base: str = "") -> tuple[Path, Path, dict[str, str]]:
    """A repository whose task.md's items (isolated) serve on their ports: tests/agents/service.py
    as their services (`up`) and services_down (`down`), port_holder.py as their agent. Its
    folder, the log both append to, and the environment they need."""
    from gitrepo import git, make_repo

    repo = make_repo(tmp_path / "repo")
    service = [sys.executable, str(AGENTS / "service.py")]
    settings = ["agent: command", f"command: {json.dumps([sys.executable, str(AGENTS / 'port_holder.py')])}",
                "isolation: worktree", *([f"retry_base: {retry_base}"] if retry_base else []),
                f"services: {json.dumps([*service, 'up'])}", f"services_down: {json.dumps([*service, 'down'])}"]
    (repo / "task.md").write_text("---\n" + "".join(f"{line}\n" for line in settings) + "---\n# Serve\n"
                                  + "".join(f"- [ ] {module}: serve\n" for module in modules))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    log = tmp_path / "ports.log"
    return repo, log, {**os.environ, "PORTS_LOG": str(log), "TMPDIR": str(tmp_path)}


def test_services_start_once_before_each_items_agent_and_stop_when_it_is_over(tmp_path):
    from gitrepo import git

    repo, log, env = serving_repo(tmp_path, ["m0", "m1"], retry_base="0.1s")
    env.update(PORTS_TOGETHER="1", SERVICE_FAILS="m1")
    result = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", "2"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0  # m1's services never started: it failed, its agent never ran
    lines = served(log)
    m0 = [line for line in lines if line["module"] == "m0"]
    assert [line.get("service") for line in m0] == ["up", None, "down"]  # None: the agent's own line
    assert len({line["port"] for line in m0}) == 1 and len({line["slot"] for line in m0}) == 1
    assert m0[0]["worktree"].endswith(".batch/task/worktrees/serve/m0")
    assert git("show", "batch/task:m0.txt", cwd=repo).startswith("m0 served on")
    m1 = [line.get("service") for line in lines if line["module"] == "m1"]
    assert m1 == ["up"]  # it fails the item, as a failed worktree_setup does: no agent, and nothing to stop
    output = (repo / ".batch/task/items/serve/m1/output.log").read_text()
    assert "the database would not start" in output and "=== services failed: exit status 3 ===" in output
    assert "services: exit status 3" in json.loads((repo / ".batch/task/items/serve/m1/failure.json").read_text())["reason"]
