"""`sandbox: true` end to end: real `doit run-batch` processes on real git repositories, each
item's agent under bubblewrap. What it may not write is refused, its own work lands."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from gitrepo import git, make_repo

AGENTS = Path(__file__).parent / "agents"


def sandboxed_repo(tmp_path: Path, body: str, **extra: str) -> Path:
    command = json.dumps([sys.executable, str(AGENTS / "intruder.py")])
    lines = ["---", "agent: command", f"command: {command}", "isolation: worktree", "sandbox: true",
             *(f"{key}: {value}" for key, value in extra.items()), "---"]
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text("\n".join(lines) + "\n" + body)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    return repo


def run(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "run-batch", *args], cwd=repo, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def output_log(repo: Path, module: str) -> str:
    return (repo / ".batch" / "task" / "items" / "edits" / module / "output.log").read_text()


def test_an_agent_in_the_sandbox_is_refused_everything_but_its_own_work(tmp_path):
    # Its worktree_setup and its check run in the same sandbox.
    outside = {"worktree_setup": json.dumps(["sh", "-c", "touch \"$HOME/from-setup\"; touch setup-was-here"]),
               "check": json.dumps(["sh", "-c", "touch \"$HOME/from-check\"; test -f setup-was-here"])}
    repo = sandboxed_repo(tmp_path, "# Edits\n- [ ] alpha: do alpha\n- [ ] beta: do beta\n", **outside)
    home = tmp_path / "home"
    cache = home / ".cache"  # where the key is by default: in the home folder, which the sandbox shows
    home.mkdir()
    worktrees, state = repo / ".batch" / "task" / "worktrees" / "edits", repo / ".batch" / "task"
    targets = [str(home / "intruded"), str(repo / "shared.py"), str(worktrees / "{other}" / "shared.py"),
               str(repo / ".git" / "config"), str(cache / "batch-tasks" / "plan-cache.key"),
               str(state / "items" / "edits" / "{module}" / "running.json"), str(state / "intruded")]
    key = cache / "batch-tasks" / "plan-cache.key"
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(cache), "INTRUDER_TARGETS": json.dumps(targets),
           "INTRUDER_READS": json.dumps([str(key), str(repo / "shared.py")]),
           "INTRUDER_WAIT_FOR": str(worktrees / "{other}" / ".git")}
    main = git("rev-parse", "main", cwd=repo)
    # A process of the same user outside (the runner is one too): it can neither see nor signal it.
    bystander = subprocess.Popen(["sleep", "300"])
    env["INTRUDER_SIGNAL"] = str(bystander.pid)
    try:
        result = run(repo, env, "-n", "2")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (cache / "batch-tasks" / "plan-cache.key").exists()  # made by the run, before the agents

    for module in ("alpha", "beta"):
        said = output_log(repo, module)
        for target in targets:
            target = target.replace("{module}", module).replace("{other}", {"alpha": "beta", "beta": "alpha"}[module])
            assert f"refused {target}: [Errno 30] Read-only file system" in said, said  # there, and refused
        assert "WROTE" not in said
        assert f"cannot signal {bystander.pid}: [Errno 3] No such process" in said and "SIGNALLED" not in said
        assert f"unreadable {key}" in said and f"READ {repo / 'shared.py'}" in said  # hidden, not just read-only
        assert "update-ref: exit 128" in said and "git config: exit 255" in said, said
        assert f"committed {module}" in said
        assert "=== the sandbox refused: refused" in said  # noted after the agent's exit
        assert f"=== the sandbox refused: touch: cannot touch '{home}/from-setup': Read-only file system ===" in said
        assert f"=== the sandbox refused: touch: cannot touch '{home}/from-check': Read-only file system ===" in said
        # Its own commit is on its branch, and landed.
        assert f"{module}: its work" in git("log", "--format=%s", "batch/task", cwd=repo)
        assert git("show", f"batch/task:{module}.txt", cwd=repo) == f"the work of {module}"
    assert "intruded" not in (repo / "shared.py").read_text() + (repo / ".git" / "config").read_text()
    assert not (home / "intruded").exists() and not (state / "intruded").exists()
    assert not (home / "from-setup").exists() and not (home / "from-check").exists()
    assert "intruded" not in (cache / "batch-tasks" / "plan-cache.key").read_bytes().decode("latin-1")
    assert git("rev-parse", "main", cwd=repo) == main
    assert "intruder" not in git("config", "--local", "--list", cwd=repo)
    assert (repo / "task.md").read_text().count("- [x]") == 2


def test_without_the_network_a_sandboxed_agent_cannot_reach_the_loopback(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    body = ("# Edits\n<!-- sandbox_network: false -->\n- [ ] alpha: do alpha\n"
            "# Online\n- [ ] beta: do beta\n")
    repo = sandboxed_repo(tmp_path, body)
    try:
        result = run(repo, {"INTRUDER_CONNECT": str(server.getsockname()[1])})
    finally:
        server.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot connect: [Errno 111] Connection refused" in output_log(repo, "alpha")  # a loopback of its own
    online = (repo / ".batch" / "task" / "items" / "online" / "beta" / "output.log").read_text()
    assert "connected" in online.splitlines()  # the same server, reached with the network kept
    assert len(accepted) == 1


def test_a_missing_bwrap_is_one_message_naming_the_package_before_any_agent(tmp_path):
    repo = sandboxed_repo(tmp_path, "# Edits\n- [ ] alpha: do alpha\n")
    bin_without_bwrap = tmp_path / "bin"
    bin_without_bwrap.mkdir()
    (bin_without_bwrap / "git").symlink_to("/usr/bin/git")
    result = run(repo, {"PATH": str(bin_without_bwrap)})
    assert result.returncode != 0
    assert "install the bubblewrap package" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (repo / ".batch" / "task" / "items" / "edits" / "alpha" / "output.log").exists()


def test_the_sandbox_holds_for_a_user_without_privileges():
    """Run as root, bwrap needs no user namespace: the sandbox asks for one all the same, and so
    it is the same for a user without privileges, which this runs it as."""
    from batch_tasks.processes.agent_sandbox import Sandbox

    with tempfile.TemporaryDirectory() as folder:  # pytest's own is its user's alone
        top, own = Path(folder), Path(folder) / "own"
        own.mkdir()
        os.chmod(top, 0o755)
        os.chmod(own, 0o777)
        sandbox = Sandbox("/usr/bin/bwrap", writable=(str(own),), shown=(str(top),))
        argv = sandbox.argv(["sh", "-c", f"touch {own}/mine; touch {top}/not-mine"], own)
        unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.getuid() == 0 else []
        done = subprocess.run([*unprivileged, *argv], capture_output=True, text=True)
        assert (own / "mine").exists(), done.stderr
        assert "Read-only file system" in done.stderr
        assert not (top / "not-mine").exists()


def test_the_real_claude_cli_works_inside_the_sandbox(tmp_path):
    from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, text, tool_use

    claude = find_claude()
    if claude is None and not os.environ.get("CI"):  # in CI a missing CLI must fail, not skip
        pytest.skip("the claude CLI is not installed: bash .ci/run installs the pinned version")
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text("---\nagent: claude\npermission_mode: acceptEdits\nallowed_tools: [Write]\n"
                                  "isolation: worktree\nsandbox: true\n---\n# Notes\n- [ ] auth: write notes/auth.md\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude.json").write_text("{}")
    own = repo / ".batch/task/worktrees/notes/auth/notes/auth.md"
    session = [tool_use("Write", {"file_path": str(own), "content": "# auth\n"}),
               tool_use("Write", {"file_path": str(home / "intruded.md"), "content": "x\n"}), text("Wrote auth.")]
    with FakeAnthropic(by_prompt={"Module: auth": session}) as api:  # on the loopback: the sandbox keeps the network
        env = cli_env(api.url, home, CLAUDE_CODE_MAX_RETRIES="0")
        del env["CLAUDE_CONFIG_DIR"]  # its state where a user's is: ~/.claude and ~/.claude.json
        env["PATH"] = claude_path_env(claude)
        result = run(repo, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert git("show", "batch/task:notes/auth.md", cwd=repo) == "# auth"
    assert not (home / "intruded.md").exists()
    log = (repo / ".batch/task/items/notes/auth/output.log").read_text()
    assert "=== the sandbox refused:" in log and "intruded.md" in log.split("=== the sandbox refused:")[1]


def test_a_branch_beside_its_own_stays_put_even_for_a_git_told_to_keep_no_reflog(tmp_path):
    """The folder of refs holding the item's branch is writable (git replaces a ref by a rename
    beside it): the other branches in it are read-only files on top, the reflogs aside."""
    from types import SimpleNamespace

    from batch_tasks.processes.agent_sandbox import for_workspace

    repo = make_repo(tmp_path / "repo")
    git("config", "core.logAllRefUpdates", "false", cwd=repo)  # no reflog to refuse an append to
    git("branch", "batch/task.items/edits/beta", cwd=repo)
    assert not (repo / ".git/logs/refs/heads/batch/task.items/edits/beta").exists()
    path = repo / ".batch" / "task" / "worktrees" / "edits" / "alpha"
    git("worktree", "add", "-q", "-b", "batch/task.items/edits/alpha", str(path), cwd=repo)
    workspace = SimpleNamespace(path=path, branch="batch/task.items/edits/alpha", isolation=SimpleNamespace(top=repo))
    sandbox = for_workspace(workspace, {"sandbox": True, "agent": "command"})
    before = git("rev-parse", "batch/task.items/edits/beta", "main", cwd=repo)
    tries = ("git commit -q --allow-empty -m mine && echo committed; "
             "for ref in refs/heads/batch/task.items/edits/beta refs/heads/main; do "
             "git -c core.logAllRefUpdates=false update-ref $ref HEAD || echo refused $ref; done")
    done = subprocess.run(sandbox.argv(["sh", "-c", tries], path), capture_output=True, text=True)
    assert done.stdout.split("\n")[:3] == ["committed", "refused refs/heads/batch/task.items/edits/beta",
                                           "refused refs/heads/main"], done.stdout + done.stderr
    assert git("rev-parse", "batch/task.items/edits/beta", "main", cwd=repo) == before
    assert git("log", "-1", "--format=%s", "batch/task.items/edits/alpha", cwd=repo) == "mine"
