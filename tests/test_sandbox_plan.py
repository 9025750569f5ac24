"""The sandbox's bwrap command line, from plain facts: what is writable, what stays read-only."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from batch_tasks.processes.agent_sandbox import Refusals, SandboxUnavailable, plan, preflight, why_refused

REPO = "/home/u/repo"
ADMIN = f"{REPO}/.git/worktrees/alpha"
BRANCH = "batch/task.items/edits/alpha"


def facts(**changed):
    given = dict(bwrap="/usr/bin/bwrap", worktree=f"{REPO}/.batch/task/worktrees/edits/alpha", admin=ADMIN,
                 branch=BRANCH, ref_siblings=["alpha", "beta", "alpha.20260101T000000"], agent="claude",
                 home="/home/u", outside_temp=[REPO, "/home/u"])
    return {**given, **changed}


def mounts(argv: list[str], kind: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == kind]


def test_the_worktree_its_git_folder_objects_and_its_own_ref_are_writable_and_nothing_else():
    argv = plan(**facts()).argv(["claude", "-p"], "/w")
    assert mounts(argv, "--bind") == [f"{REPO}/.batch/task/worktrees/edits/alpha", ADMIN, f"{REPO}/.git/objects",
                                      f"{REPO}/.git/refs/heads/batch/task.items/edits",
                                      f"{REPO}/.git/logs/refs/heads/{BRANCH}"]
    assert argv[:8] == ["/usr/bin/bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
                        "--ro-bind", "/", "/"]
    assert argv[-4:] == ["/w", "--", "claude", "-p"]
    # The agent CLI's own state, where it is.
    assert mounts(argv, "--bind-try") == ["/home/u/.claude", "/home/u/.claude.json"]


def test_every_other_ref_beside_its_own_and_what_steers_git_stay_read_only_on_top():
    argv = plan(**facts()).argv(["true"], "/")
    protected = mounts(argv, "--ro-bind-try")
    refs = f"{REPO}/.git/refs/heads/batch/task.items/edits"
    assert f"{refs}/beta" in protected and f"{refs}/alpha.20260101T000000" in protected
    assert f"{refs}/alpha" not in protected
    assert {f"{ADMIN}/commondir", f"{ADMIN}/gitdir", f"{REPO}/.git/objects/info"} <= set(protected)
    # Read-only again only after the writable folders they are in are bound.
    assert argv.index("--ro-bind-try") > max(i for i, word in enumerate(argv) if word == "--bind")


def test_the_repository_and_home_are_shown_over_the_private_tmp_only_when_they_are_in_it():
    assert mounts(plan(**facts()).argv(["true"], "/"), "--ro-bind") == ["/"]
    inside = plan(**facts(outside_temp=["/tmp/t/repo", "/home/u"])).argv(["true"], "/")
    assert mounts(inside, "--ro-bind") == ["/", "/tmp/t/repo"]
    assert inside.index("/tmp/t/repo") > inside.index("--tmpfs")  # bound after /tmp is made private


def test_a_command_kept_in_tmp_is_shown_its_folder_there():
    with tempfile.TemporaryDirectory(dir="/tmp") as home:
        script = Path(home, "tests", "agent.py")
        script.parent.mkdir()
        script.write_text("")
        argv = plan(**facts()).argv(["/usr/bin/python3", str(script), "/tmp/not-there/x", "--flag"], "/")
        assert mounts(argv, "--ro-bind") == ["/", home]  # the folder right under /tmp that holds it
        shown = plan(**facts(outside_temp=[home])).argv(["python3", str(script)], "/")
        assert mounts(shown, "--ro-bind") == ["/", home]  # once


def test_the_network_is_cut_only_when_asked_and_the_key_is_hidden_read_only():
    kept = plan(**facts(), hidden=["/home/u/.cache/batch-tasks"]).argv(["true"], "/")
    assert "--unshare-net" not in kept
    at = kept.index("/home/u/.cache/batch-tasks")
    assert kept[at - 1:at + 3] == ["--tmpfs", "/home/u/.cache/batch-tasks", "--remount-ro", "/home/u/.cache/batch-tasks"]
    assert "--unshare-net" in plan(**facts(), network=False).argv(["true"], "/")


def test_sandbox_write_and_each_agents_own_state_are_writable():
    argv = plan(**facts(agent="codex"), extra_writable=["/var/cache/build"]).argv(["codex"], "/")
    assert mounts(argv, "--bind-try") == ["/home/u/.codex", "/var/cache/build"]
    assert mounts(plan(**facts(agent="command")).argv(["x"], "/"), "--bind-try") == []


def test_what_the_sandbox_refused_is_picked_from_the_output_at_most_twenty_lines():
    refused = Refusals()
    for line in ["fine", "touch: cannot touch '/x': Read-only file system", "open: Permission denied"] + ["EROFS"] * 30:
        refused.hear(line)
    assert refused.lines[:2] == ["touch: cannot touch '/x': Read-only file system", "open: Permission denied"]
    assert len(refused.lines) == 20
    event = Refusals()
    event.hear('{"type":"user","content":"' + "x" * 5000 + "EROFS: read-only file system, open '/home/u/x'" + "y" * 5000)
    assert len(event.lines[0]) == 240 and "EROFS: read-only file system, open '/home/u/x'" in event.lines[0]


def test_a_refused_user_namespace_says_what_the_system_lacks():
    said = why_refused("bwrap: No permissions to create new namespace, likely because the kernel does not allow "
                       "non-privileged user namespaces.\n")
    assert "needs unprivileged user namespaces" in said and "user.max_user_namespaces" in said
    assert "bwrap cannot make a sandbox here: bwrap: Can't mount proc" in why_refused("bwrap: Can't mount proc")


def test_a_sandbox_without_a_worktree_of_its_own_is_refused_before_anything_runs():
    group = SimpleNamespace(slug="edits", settings={"sandbox": True, "isolation": "none", "executor": "local"})
    with pytest.raises(SandboxUnavailable, match="group 'edits': sandbox: true needs isolation: worktree"):
        preflight([group])
    remote = SimpleNamespace(slug="edits", settings={"sandbox": True, "isolation": "worktree",
                                                     "executor": {"dask": "tcp://h:8786"}})
    with pytest.raises(SandboxUnavailable, match="executor: local"):
        preflight([remote])


def test_on_the_merged_state_only_the_runners_worktree_is_writable_and_no_ref():
    argv = plan(**facts(worktree=f"{REPO}/.batch/task/integration", branch=None, ref_siblings=[])).argv(["true"], "/")
    assert mounts(argv, "--bind") == [f"{REPO}/.batch/task/integration"]
    assert mounts(argv, "--ro-bind-try") == []
