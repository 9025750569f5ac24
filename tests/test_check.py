"""An item's check: real processes, their exit status, their last lines, their timeout;
and the isolation settings as task.md gives them."""

from __future__ import annotations

import io
import sys
import time

import psutil
import pytest
from gitrepo import git, make_repo

from batch_tasks.errors import SettingError
from batch_tasks.isolation.worktree import Isolation
from batch_tasks.plan.settings import FIELDS, fingerprinted, parse_setting, resolve
from batch_tasks.plan.taskfile import load_plan
from batch_tasks.processes.check import TAIL_BYTES, TAIL_LINES, Check


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_a_passing_check(tmp_path):
    result = Check(python("print('all good')"), 60, "g", "m").run(tmp_path, tmp_path)
    assert result.passed and result.exit_status == 0 and not result.timed_out
    assert result.tail == "all good" and result.duration_s >= 0
    assert result.record()["passed"] is True


def test_a_failing_check_keeps_the_end_of_its_output_and_logs_all(tmp_path):
    log = io.BytesIO()
    code = "import sys\nfor n in range(100): print(f'line {n}')\nsys.exit(2)"
    result = Check(python(code), 60, "g", "m").run(tmp_path, tmp_path, log=log)
    assert not result.passed and result.exit_status == 2
    lines = result.tail.splitlines()
    assert len(lines) == TAIL_LINES and lines[-1] == "line 99" and lines[0] == f"line {100 - TAIL_LINES}"
    assert b"line 0\n" in log.getvalue() and b"line 99\n" in log.getvalue()
    assert result.reason == "check failed with exit status 2"


def test_a_long_tail_is_clipped_to_its_last_bytes(tmp_path):
    result = Check(python("print('x' * 5000); print('y' * 5000); print('end')"), 60, "g", "m").run(tmp_path, tmp_path)
    assert len(result.tail.encode()) <= TAIL_BYTES and result.tail.endswith("end")


def test_placeholders_are_replaced_in_each_argument(tmp_path):
    code = "import os, sys; print(sys.argv[1:]); print(os.getcwd()); print(os.environ['BATCH_WORKTREE'])"
    worktree = tmp_path / "tree"
    worktree.mkdir()
    check = Check(python(code) + ("tests/{module}", "{group}-{module}", "{worktree}", "{other}"), 60, "grp", "a b")
    result = check.run(worktree, tmp_path)
    args, cwd, env_worktree = result.tail.splitlines()
    assert args == repr(["tests/a b", "grp-a b", str(worktree), "{other}"])
    assert cwd == str(tmp_path) and env_worktree == str(worktree)


def test_a_check_that_hangs_is_stopped_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('waiting', flush=True)\n"
        "time.sleep(300)\n"
    )
    started = time.monotonic()
    result = Check(python(code), 2, "g", "m").run(tmp_path, tmp_path)
    assert result.timed_out and not result.passed and "timed out" in result.reason
    assert result.tail == "waiting"
    assert time.monotonic() - started < 120
    child = int(pid_file.read_text())
    try:
        psutil.Process(child).wait(timeout=30)
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_check_that_cannot_start(tmp_path):
    result = Check(("no-such-program-anywhere",), 60, "g", "m").run(tmp_path, tmp_path)
    assert result.exit_status is None and not result.passed and "cannot start" in result.tail


def test_from_settings():
    assert Check.from_settings(resolve({}, {}), "g", "m") is None
    check = Check.from_settings(resolve({"check": ("pytest", "-q")}, {}), "g", "m")
    assert check.argv == ("pytest", "-q") and check.timeout == 600.0


def test_isolation_settings_parse_and_say_what_is_wrong():
    assert parse_setting("isolation", "worktree", in_group=True) == "worktree"
    assert parse_setting("check", ["pytest", "-q", "tests/{module}"], in_group=True) == ("pytest", "-q", "tests/{module}")
    assert parse_setting("check_timeout", "90s", in_group=True) == 90.0
    assert parse_setting("check_retries", 0, in_group=True) == 0
    assert parse_setting("worktree_setup", ["make", "deps"], in_group=False) == ("make", "deps")
    assert parse_setting("worktree_copy", [".env", "config/*.local"], in_group=False) == (".env", "config/*.local")
    assert parse_setting("integrate", "batch/refactor", in_group=False) == "batch/refactor"
    assert parse_setting("allow_empty", True, in_group=True) is True
    for name, value, message in [
        ("isolation", "docker", "none or worktree"),
        ("check", "pytest -q", "list of arguments"),
        ("check_timeout", "soon", "duration"),
        ("check_retries", -1, "whole number"),
        ("worktree_copy", ["/etc/passwd"], "relative"),
        ("worktree_copy", "~/.env", "list"),
        ("integrate", " spaced ", "branch name"),
        ("allow_empty", "yes", "true or false"),
    ]:
        with pytest.raises(SettingError, match=message):
            parse_setting(name, value, in_group=False)
    with pytest.raises(SettingError, match="unknown hint 'integrate'"):
        parse_setting("integrate", "x", in_group=True)


def test_what_makes_an_item_stale():
    assert {name for name in ("isolation", "check", "integrate") if FIELDS[name].fingerprinted} == {
        "isolation", "check", "integrate"}
    assert not any(FIELDS[name].fingerprinted for name in (
        "check_timeout", "check_retries", "worktree_setup", "worktree_copy", "allow_empty"))
    # Defaults change no fingerprint: a batch written before these settings stays current.
    assert fingerprinted(resolve({}, {})) == {}
    assert fingerprinted(resolve({"isolation": "worktree"}, {})) == {"isolation": "worktree"}


def test_integrate_names_a_branch_as_git_spells_it_too(tmp_path):
    """`integrate: refs/heads/main` is the branch main, not refs/heads/refs/heads/main."""
    assert parse_setting("integrate", "refs/heads/work/batch", in_group=False) == "work/batch"
    with pytest.raises(SettingError, match="must be a branch, not the ref 'refs/tags/v1'"):
        parse_setting("integrate", "refs/tags/v1", in_group=False)
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text("---\nagent: command\ncommand: [\"true\"]\nisolation: worktree\n"
                                  "integrate: refs/heads/landing\n---\n# B\n## G\n- [ ] a: do\n")
    isolation = Isolation(repo / "task.md", load_plan(repo / "task.md").settings)
    isolation.validate()
    isolation.prepare()
    assert git("for-each-ref", "--format=%(refname)", cwd=repo).split() == ["refs/heads/landing", "refs/heads/main"]
