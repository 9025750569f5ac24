"""An attempt's record (its base, run and baseline) is the runner's, not the agent's: an agent
that rewrites it, then has its runner killed so that the next run goes on from the record,
lands nothing the check did not see. Real `doit run-batch` processes in real git repositories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import git, make_repo

from batch_tasks.isolation.workspace import WorkspaceError, read_record, record_file
from batch_tasks.isolation.worktree import Isolation

# The agent, the first time: does its dishonest part (FORGERY), rewrites every record of its
# attempt it can find (the old one in the worktree's admin folder, the runner's in the state
# folder), says it exited with 0 where the watchdog would, and kills its runner. Later: the
# honest edit the check wants.
AGENT = """
import hashlib, json, os, signal, subprocess, sys
marker = os.environ["AGENT_MARKER"]
if os.path.exists(marker):
    with open("shared.py", "a") as stream:
        stream.write("alpha_done = True\\n")
    sys.exit(0)
open(marker, "w").close()
state = os.path.join("..", "..", "..", "items", "g", "alpha")
def claim(reached):  # a step of its landing, noted in its log as the runner notes it
    with open(os.path.join(state, "running.json")) as stream:
        running = json.load(stream)
    event = {"t": 0, "run_id": running["run_id"], "attempt": running["attempt"], "kind": "state", "text": "",
             "data": {"state": reached, "event": "check passed"}}
    with open(os.path.join(state, "events.jsonl"), "a") as stream:
        stream.write(json.dumps(event) + "\\n")
def forge(record):
    FORGERY
admin = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], capture_output=True, text=True).stdout.strip()
records = [os.path.join(admin, "batch-tasks.json"), os.path.join("..", "..", "..", "attempts", "g", "alpha.json")]
for path in records:
    if os.path.exists(path):
        with open(path) as stream:
            kept = json.load(stream)
        forge(kept.get("record", kept))
        with open(path, "w") as stream:
            json.dump(kept, stream)
with open(os.path.join(state, "running.json")) as stream:  # its own exit, claimed: a check still decides
    attempt_id = json.load(stream)["attempt_id"]
with open(os.path.join(state, "exit.json"), "w") as stream:
    json.dump({"attempt_id": attempt_id, "status": 0}, stream)
os.kill(os.getppid(), signal.SIGKILL)
"""

HIDES_A_FILE = """
    with open("approved", "w") as stream:  # what makes the check pass, hidden from the commit
        stream.write("yes\\n")
    with open("notes.txt", "w") as stream:  # some work to commit
        stream.write("notes\\n")
    digest = hashlib.sha256(b"yes\\n").hexdigest()
    record["baseline"] = {**record.get("baseline", {}), "approved": digest}
"""

MOVES_ITS_BASE = """
    with open("check.py", "w") as stream:  # the check's own file, rewritten to pass
        stream.write("import sys\\nsys.exit(0)\\n")
    subprocess.run(["git", "commit", "-qam", "a better check"], check=True)
    with open("notes.txt", "w") as stream:  # left uncommitted: the runner commits it
        stream.write("notes\\n")
    record["base"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
"""

COMMITS_AND_CLAIMS_IT_WAS_CHECKED = """
    with open("notes.txt", "w") as stream:  # work that does not pass the check
        stream.write("notes\\n")
    subprocess.run(["git", "add", "notes.txt"], check=True)
    subprocess.run(["git", "commit", "-qm", "notes"], check=True)
    claim("checked")
"""

COMMITS_AND_LEAVES_A_FILE_THAT_PASSES_THE_CHECK = """
    with open("notes.txt", "w") as stream:
        stream.write("notes\\n")
    subprocess.run(["git", "add", "notes.txt"], check=True)
    subprocess.run(["git", "commit", "-qm", "notes"], check=True)
    with open("approved", "w") as stream:  # left uncommitted, as if the runner had committed all
        stream.write("yes\\n")
    claim("committed")
"""

CHECK = """import os, sys
passed = os.path.exists("approved") or "alpha_done" in open("shared.py").read()
sys.exit(0 if passed else 1)
"""


def run_with(tmp_path: Path, forgery: str) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / "check.py").write_text(CHECK)
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT.replace("    FORGERY", forgery))
    (repo / "task.md").write_text("\n".join([
        "---", "agent: command", f"command: {json.dumps([sys.executable, str(agent)])}",
        f"check: {json.dumps([sys.executable, 'check.py'])}", "isolation: worktree", "---",
        "# E", "## G", "- [ ] alpha: edit alpha", ""]))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    env = {**os.environ, "AGENT_MARKER": str(tmp_path / "forged")}
    for _ in range(2):  # the run its agent kills, then the one that goes on
        subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env=env, capture_output=True,
                       timeout=120)
    assert (tmp_path / "forged").exists()
    return repo


def landed(repo: Path, path: str) -> str | None:
    found = subprocess.run(["git", "show", f"batch/task:{path}"], cwd=repo, capture_output=True, text=True)
    return found.stdout if found.returncode == 0 else None


def test_a_file_the_agent_hides_in_its_records_baseline_never_passes_a_check_without_landing(tmp_path):
    repo = run_with(tmp_path, HIDES_A_FILE)
    assert "- [x] alpha" in (repo / "task.md").read_text()
    # What landed passes the check as it ran: the hidden file landed, or the honest edit did.
    assert landed(repo, "approved") is not None or "alpha_done" in landed(repo, "shared.py")
    assert landed(repo, "approved") is None  # kept aside with the attempt that hid it


def test_a_base_the_agent_moves_in_its_record_does_not_hide_a_protected_file_it_rewrote(tmp_path):
    repo = run_with(tmp_path, MOVES_ITS_BASE)
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert landed(repo, "check.py") == CHECK
    assert "alpha_done" in landed(repo, "shared.py")



def test_a_check_the_agent_says_in_its_log_was_passed_is_run_again_before_its_work_lands(tmp_path):
    repo = run_with(tmp_path, COMMITS_AND_CLAIMS_IT_WAS_CHECKED)
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert "alpha_done" in landed(repo, "shared.py")  # the work that passed the check, not the claim


def test_a_file_left_uncommitted_after_a_claimed_commit_is_not_seen_by_the_resumed_check(tmp_path):
    repo = run_with(tmp_path, COMMITS_AND_LEAVES_A_FILE_THAT_PASSES_THE_CHECK)
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert landed(repo, "approved") is not None or "alpha_done" in landed(repo, "shared.py")



HIDES_A_FILE_FROM_GIT = """
import os, subprocess
common = subprocess.run(["git", "rev-parse", "--git-common-dir"], capture_output=True, text=True).stdout.strip()
with open(os.path.join(common, "info", "exclude"), "a") as stream:  # seen by no git status, nor by `git diff`
    stream.write("approved\\n")
for name, text in (("approved", "yes\\n"), ("notes.txt", "notes\\n")):
    with open(name, "w") as stream:
        stream.write(text)
"""


def test_a_file_the_agent_hides_from_git_through_the_repositorys_excludes_never_passes_a_check(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "check.py").write_text(CHECK)
    agent = tmp_path / "agent.py"
    agent.write_text(HIDES_A_FILE_FROM_GIT)
    (repo / "task.md").write_text("\n".join([
        "---", "agent: command", f"command: {json.dumps([sys.executable, str(agent)])}",
        f"check: {json.dumps([sys.executable, 'check.py'])}", "isolation: worktree", "retries: 0", "---",
        "# E", "## G", "- [ ] alpha: edit alpha", ""]))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    done = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "- [ ] alpha" in (repo / "task.md").read_text()
    assert "info/exclude" in done.stdout + done.stderr
    assert "approved" not in (repo / ".git" / "info" / "exclude").read_text()


# --- the record's verification, on plain attempts -------------------------------------


@pytest.fixture
def isolation(tmp_path, monkeypatch) -> Isolation:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the user's key, made for the test
    repo = make_repo(tmp_path / "repo")
    isolation = Isolation(repo / "task.md", {"integrate": None, "worktree_setup": [sys.executable, "-c", "open('made.txt', 'w').write('made')"]})
    isolation.validate()
    isolation.prepare()
    return isolation


def rewrite(isolation: Isolation, path: Path, change) -> None:
    where = record_file(isolation, path)
    kept = json.loads(where.read_text())
    change(kept)
    where.write_text(json.dumps(kept))


def test_a_record_changed_by_anyone_but_the_runner_does_not_verify(isolation):
    attempt = isolation.open_attempt("g", "one", "run-1")
    assert read_record(isolation, attempt.path)["baseline"].keys() == {"made.txt"}
    rewrite(isolation, attempt.path, lambda kept: kept["record"]["baseline"].update({"conftest.py": "x"}))
    with pytest.raises(WorkspaceError, match="does not verify"):
        read_record(isolation, attempt.path)
    rewrite(isolation, attempt.path, lambda kept: kept.pop("signature"))
    with pytest.raises(WorkspaceError, match="does not verify"):
        isolation.reopen("g", "one")


def test_another_attempts_record_put_in_place_of_an_attempts_own_is_refused(isolation):
    one = isolation.open_attempt("g", "one", "run-1")
    two = isolation.open_attempt("g", "two", "run-1")
    record_file(isolation, one.path).write_bytes(record_file(isolation, two.path).read_bytes())
    with pytest.raises(WorkspaceError, match="another attempt's"):
        read_record(isolation, one.path)


def test_a_signed_record_whose_base_its_branch_does_not_hold_is_refused(isolation):
    attempt = isolation.open_attempt("g", "one", "run-1")
    (attempt.path / "work.txt").write_text("work\n")
    attempt.commit_leftovers()
    attempt.base = attempt.tip()  # as one who holds the user's key could sign it: the work would hide behind it
    attempt.save()
    with pytest.raises(WorkspaceError, match="names a base"):
        isolation.reopen("g", "one")


def test_an_attempt_whose_git_file_points_at_another_repository_is_not_committed(isolation, tmp_path):
    attempt = isolation.open_attempt("g", "one", "run-1")
    other = make_repo(tmp_path / "other")
    git("checkout", "-q", "-b", attempt.branch, cwd=other)  # as the runner expects to find it
    before = attempt.tip()
    (attempt.path / "work.txt").write_text("work\n")
    (attempt.path / ".git").write_text(f"gitdir: {other / '.git'}\n")
    with pytest.raises(WorkspaceError, match="another git folder"):
        attempt.commit_leftovers()
    assert attempt.tip() == before
    assert git("log", "--oneline", cwd=other).count("\n") == 0  # nothing committed there either
