"""Services a killed run left up: the next run stops them with `services_down:`, as they were
started (the same BATCH_PORT, BATCH_SLOT and BATCH_WORKTREE), on ports it holds meanwhile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for
from test_ports import served, serving_repo

from batch_tasks.processes.ports import Ports
from batch_tasks.run import recovery
from batch_tasks.tasks import batch as batch_mod

pytestmark = pytest.mark.xdist_group("ports")


def test_services_a_killed_run_left_up_are_stopped_by_the_next_run_then_started_again(tmp_path):
    repo, log, env = serving_repo(tmp_path, ["m0"])
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo,
                              env={**env, "PORTS_TOGETHER": "100"},  # its agent waits for others that never come
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any("pid" in line for line in served(log)), timeout=60)  # its services up, its agent serving
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    record = repo / ".batch/task/items/serve/m0/services.json"
    assert record.exists()
    result = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env={**env, "PORTS_TOGETHER": "1"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    said = [line for line in result.stdout.splitlines() if "services" in line]
    assert said == [line for line in said if line.startswith("recovered: stopped the services a killed run left up "
                                                             "for serve:m0")] and len(said) == 1
    lines = served(log)
    assert [line.get("service") for line in lines] == ["up", None, "down", "up", None, "down"], result.stdout  # None: its agent
    up, _, recovered = lines[:3]
    assert {k: recovered[k] for k in ("port", "slot", "worktree")} == {k: up[k] for k in ("port", "slot", "worktree")}
    assert up["worktree"].endswith(".batch/task/worktrees/serve/m0")
    assert not record.exists()
    output = (repo / ".batch/task/items/serve/m0/output.log").read_text()
    assert "its services, left up when its run was killed, are stopped" in output


SERVICE = ("import fcntl, json, os, sys\n"
           "names = ('BATCH_PORT', 'BATCH_SLOT', 'BATCH_WORKTREE', 'BATCH_ITEM')\n"
           "open(os.environ['SERVICES_LOG'], 'a').write(json.dumps([sys.argv[1], {n: os.environ.get(n) for n in names}]) + '\\n')\n"
           "lock = os.environ.get('PORT_LOCK')\n"
           "try:\n"
           "    lock and fcntl.flock(os.open(lock, os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
           "except BlockingIOError:\n"
           "    print('its ports are held')\n"
           "sys.exit(3 if sys.argv[1] == 'fails' else 0)\n")


def killed_with_services_up(tmp_path: Path, services_down: str | None, record: dict | None = None,
                            isolation: str = "none"):
    """A batch whose run was killed with m0's services up (its record as services.py writes it,
    or RECORD), task.md now saying `services_down: [python, -c, SERVICE, SERVICES_DOWN]`."""
    down = f"services_down: {json.dumps([sys.executable, '-c', SERVICE, services_down])}\n" if services_down else ""
    (tmp_path / "task.md").write_text(f"---\nagent: command\ncommand: [\"true\"]\nisolation: {isolation}\n"
                                      f"services: [\"true\"]\n{down}---\n# Serve\n- [x] m0: serve\n")
    folder = tmp_path / ".batch/task/items/serve/m0"
    folder.mkdir(parents=True)
    (folder / "services.json").write_text(json.dumps(record or {"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": 10}))
    return folder


def stopped(tmp_path: Path, monkeypatch, killed_before: bool = False) -> tuple[list[str], list]:
    """Recovery's lines, and what services_down was run with."""
    log = tmp_path / "services.log"
    monkeypatch.setenv("SERVICES_LOG", str(log))
    batch = batch_mod.load(tmp_path / "task.md")
    assert recovery.owed(batch, killed_before)
    notes = recovery.recover(batch, killed_before=killed_before, ports=Ports(tmp_path / "locks"))
    return notes, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_task_mds_services_down_as_it_is_now_is_run_with_the_recorded_port_and_slot(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, "edited since")
    monkeypatch.setenv("PORT_LOCK", str(tmp_path / "locks/20010.lock"))  # by this run while services_down runs
    notes, ran = stopped(tmp_path, monkeypatch)
    assert ran == [["edited since", {"BATCH_PORT": "20010", "BATCH_SLOT": "2", "BATCH_WORKTREE": None,
                                     "BATCH_ITEM": "serve:m0"}]]
    assert notes == ["stopped the services a killed run left up for serve:m0 (services_down on BATCH_PORT 20010, "
                     "BATCH_SLOT 2)"]
    assert not (folder / "services.json").exists()
    assert "=== services_down: " in (folder / "output.log").read_text()
    assert "its ports are held" in (folder / "output.log").read_text()


def test_no_services_down_now_drops_the_record_and_says_they_may_still_be_up(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, None)
    notes, ran = stopped(tmp_path, monkeypatch)
    assert ran == [] and not (folder / "services.json").exists()
    assert notes == ["the services a killed run started for serve:m0 may still be up: task.md has no services_down "
                     "for it now, to stop them"]


def test_a_failing_services_down_is_said_and_its_record_dropped(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, "fails")
    notes, ran = stopped(tmp_path, monkeypatch)
    assert len(ran) == 1 and not (folder / "services.json").exists()
    assert notes == ["services_down of serve:m0 failed (exit status 3) stopping what a killed run left up: they may "
                     "still be up; its output is in the item's log"]
    assert "=== services_down failed: exit status 3 ===" in (folder / "output.log").read_text()


def test_ports_another_run_holds_now_are_not_stopped_on_and_the_record_is_kept(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, "down", {"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": 15})
    held = Ports(tmp_path / "locks").hold(20020, 10, 1)  # the second unit of its block: another run's now
    try:
        notes, ran = stopped(tmp_path, monkeypatch)
    finally:
        held.release()
    assert ran == [] and (folder / "services.json").exists()
    assert len(notes) == 1 and notes[0].startswith(
        "did not stop the services a killed run left up for serve:m0: another run holds their ports 20010-20024 now; "
        "run again once it is over, or stop them yourself: BATCH_PORT=20010 BATCH_SLOT=2 ")
    assert notes[0].endswith(" down")
    assert f"=== {notes[0]} ===" in (folder / "output.log").read_text()


@pytest.mark.parametrize("record, why", [
    ({"BATCH_PORT": "20015", "BATCH_SLOT": "2", "ports": 10}, "not a block of the range"),
    ({"BATCH_PORT": "19990", "BATCH_SLOT": "2", "ports": 10}, "not a block of the range"),
    ({"BATCH_PORT": "29990", "BATCH_SLOT": "2", "ports": 20}, "not a block of the range"),
    ({"BATCH_PORT": "20010; rm -rf ~", "BATCH_SLOT": "2", "ports": 10}, "not a whole number"),
    ({"BATCH_PORT": "20010", "BATCH_SLOT": "0", "ports": 10}, "not a whole number"),
    ({"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": "10"}, "count of ports"),
    ({"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": 10, "BATCH_WORKTREE": "/home"}, "not the item's own worktree"),
    ({"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": 10, "PATH": "/tmp/evil"}, "holds more than"),
])
def test_a_planted_record_runs_nothing_and_is_removed(tmp_path, monkeypatch, record, why):
    folder = killed_with_services_up(tmp_path, "down", record)
    notes, ran = stopped(tmp_path, monkeypatch)
    assert ran == [] and not (folder / "services.json").exists()
    assert len(notes) == 1 and why in notes[0] and notes[0].endswith("nothing was run")


def test_a_link_for_a_record_is_not_followed(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, "down")
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": 10}))
    (folder / "services.json").unlink()
    (folder / "services.json").symlink_to(target)
    notes, ran = stopped(tmp_path, monkeypatch)
    assert ran == [] and not os.path.lexists(folder / "services.json") and target.exists()
    assert "not a record" in notes[0]


def test_a_folder_for_a_record_is_said_and_runs_nothing(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, None)
    (folder / "services.json").unlink()
    (folder / "services.json").mkdir()
    notes, ran = stopped(tmp_path, monkeypatch)
    assert ran == [] and notes == [f"{folder / 'services.json'} is not a record of its services (it is not a record "
                                   "(a JSON object in a regular file)), and cannot be removed: Is a directory"]


def test_after_a_kill_a_record_is_looked_for_even_where_task_md_lost_its_services(tmp_path, monkeypatch):
    folder = killed_with_services_up(tmp_path, None)
    (tmp_path / "task.md").write_text("---\nagent: command\ncommand: [\"true\"]\n---\n# Serve\n- [x] m0: serve\n")
    assert not recovery.owed(batch_mod.load(tmp_path / "task.md"))  # no kill said: not looked for
    notes, _ = stopped(tmp_path, monkeypatch, killed_before=True)
    assert "may still be up" in notes[0] and not (folder / "services.json").exists()


def item_services(tmp_path: Path, services_argv: list[str]):
    """An item's ItemServices in a run of its own, its services `services_argv` and `services_down` the same."""
    from types import SimpleNamespace

    from batch_tasks.redaction import Redactor
    from batch_tasks.run.services import ItemServices
    from batch_tasks.state.state import BatchState

    (tmp_path / "task.md").write_text("# Serve\n- [ ] m0: serve\n")
    state = BatchState(tmp_path / "task.md")
    state.ensure()
    folder = state.item("serve", "m0")
    folder.ensure()
    run = SimpleNamespace(ports=Ports(tmp_path / "locks"), environ=dict(os.environ), redactor=Redactor({}))
    settings = {"services": services_argv, "services_down": services_argv, "ports_per_item": 10, "isolation": "none"}
    return ItemServices(settings, tmp_path, run, folder, {"BATCH_ITEM": "serve:m0"}), Path(folder.services)


def test_the_record_is_written_before_services_start_and_removed_once_services_down_ran(tmp_path):
    services, record = item_services(tmp_path, [sys.executable, "-c", "import os; print(os.path.exists('.batch/task/"
                                                "items/serve/m0/services.json'))"])
    services.start(None)
    assert json.loads(record.read_text()) == {"BATCH_PORT": str(services.lease.port),
                                              "BATCH_SLOT": str(services.lease.slot), "ports": 10}
    services.release(None)
    assert not record.exists()
    assert (tmp_path / ".batch/task/items/serve/m0/output.log").read_text().count("True") == 2  # seen by both


def test_services_are_not_started_beside_those_a_killed_run_left_up(tmp_path):
    from batch_tasks.run.services import ServicesFailed

    services, record = item_services(tmp_path, [sys.executable, "-c", "open('started', 'w')"])
    record.write_text('{"BATCH_PORT": "20010", "BATCH_SLOT": "2", "ports": 10}')
    with pytest.raises(ServicesFailed, match="those a killed run started for this item may still be up"):
        services.start(None)
    services.release(None)
    assert not (tmp_path / "started").exists() and record.exists()


def test_a_failed_services_leaves_no_record(tmp_path):
    from batch_tasks.run.services import ServicesFailed

    services, record = item_services(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ServicesFailed, match="exit status 3"):
        services.start(None)
    assert not record.exists()
