"""`review: human` end to end: real `doit run-batch` processes on a real git repository, the
decisions given with `doit batch-review` from a second process, while the run waits and
between runs. Nothing lands unreviewed, after any stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import wait_for
from gitrepo import git
from test_isolated_batch import run, setup, starts
from test_notify import notify_argv
from test_notify import told as notify_log

BODY = "# Edits\n## Sections\n- [ ] alpha: edit alpha\n"
PLAN = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'attempt {attempt}'"}}


def doit(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", *args], cwd=repo, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def start(repo: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doit", "run-batch", *args], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})


def ended(runner: subprocess.Popen, timeout: float = 90) -> str:
    """What a run printed, once it ended; all of it, in the failure, if it does not end in time."""
    try:
        return runner.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        runner.kill()
        raise AssertionError(f"the run did not end:\n{runner.communicate()[0]}") from None


def stop_if_left(runner: subprocess.Popen) -> None:
    """A run the test leaves running (it failed): killed, and what it said shown with the failure."""
    if runner.poll() is None:
        runner.kill()
        print(runner.communicate()[0])


def awaiting(repo: Path) -> dict | None:
    try:
        failure = json.loads((repo / ".batch/task/items/sections/alpha/failure.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return failure.get("awaiting_review")


def landed(repo: Path) -> str:
    return git("show", "batch/task:shared.py", cwd=repo)


def test_a_run_waits_for_its_review_given_from_another_terminal_reject_then_approve(tmp_path):
    notices = tmp_path / "notices.log"
    repo, env = setup(tmp_path, BODY, PLAN, review="human", notify=json.dumps(notify_argv(notices)))
    runner = start(repo, env)
    try:
        first = wait_for(lambda: awaiting(repo))
        assert "alpha = 'attempt 1'" not in landed(repo)  # checked, not landed: it waits
        listing = doit(repo, env, "batch-review")
        assert listing.returncode == 0 and "sections:alpha: edit alpha" in listing.stdout
        assert "1 file changed" in listing.stdout and "check passed" in listing.stdout
        shown = doit(repo, env, "batch-review", "sections:alpha")
        assert "+alpha = 'attempt 1'" in shown.stdout
        rejected = doit(repo, env, "batch-review", "sections:alpha", "--reject", "say it is the second try")
        assert rejected.returncode == 0, rejected.stderr
        # Back to its session, told why; then back for review, with its new work.
        second = wait_for(lambda: (said := awaiting(repo)) and said["commit"] != first["commit"] and said)
        told = starts(tmp_path)
        assert [s["attempt"] for s in told] == [1, 2]
        assert "rejected in review: say it is the second try" in told[1]["prompt"]
        assert "attempt 2" not in landed(repo)
        approved = doit(repo, env, "batch-review", "sections:alpha", "--approve")
        assert approved.returncode == 0, approved.stderr
        out = ended(runner)
    finally:
        stop_if_left(runner)
    assert runner.returncode == 0, out
    assert "awaiting review" in out and "batch-review sections:alpha" in out  # who waits, and the command
    assert "approved by a person" in out
    assert "alpha = 'attempt 2'" in landed(repo)
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert second["commit"] == git("rev-parse", "batch/task^2", cwd=repo)  # the very commit approved
    notified = [message for _, message in notify_log(notices)]
    assert [m["event"] for m in notified] == ["awaiting_review", "awaiting_review", "run_ended"]
    assert notified[0]["command"] == "doit batch-review sections:alpha" and notified[-1]["exit_status"] == 0


def test_nothing_lands_unreviewed_after_a_kill_a_forged_approval_or_a_run_that_does_not_wait(tmp_path):
    repo, env = setup(tmp_path, BODY, PLAN, review="human")
    ended = run(repo, env, "--no-wait-review")
    assert ended.returncode == 5, ended.stdout + ended.stderr
    assert awaiting(repo) and "attempt 1" not in landed(repo)
    assert "awaiting review" in ended.stdout
    report = doit(repo, env, "batch-report")
    assert report.returncode == 0, report.stderr
    assert "awaiting review" in (repo / "report.html").read_text()  # the report says who waits

    before = _waits(repo)
    runner = start(repo, env)  # waits for the review; Ctrl-C while it does keeps it awaiting review
    wait_for(lambda: _waits(repo) > before)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 130, out
    assert awaiting(repo) and not json.loads((repo / ".batch/task/items/sections/alpha/failure.json").read_text())[
        "interrupted"]

    before = _waits(repo)
    runner = start(repo, env)  # waits for the review; killed while it does
    wait_for(lambda: _waits(repo) > before)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=30)

    # An approval written by what cannot sign with the user's key is no approval.
    folder = repo / ".batch/task/items/sections/alpha"
    body = json.dumps({"item": "sections:alpha", "verdict": "approve", "commit": awaiting(repo)["commit"], "why": "",
                       "at": 0}, sort_keys=True)
    (folder / "review.json").write_text(json.dumps({"body": body, "signature": "0" * 64}))
    # Nor is a record that says it was approved (the agent can write the state folder).
    failure = json.loads((folder / "failure.json").read_text())
    failure["resume"]["state"] = "approved"
    (folder / "failure.json").write_text(json.dumps(failure))
    again = run(repo, env, "--no-wait-review")
    assert again.returncode == 5, again.stdout + again.stderr
    assert "attempt 1" not in landed(repo)
    assert "- [ ] alpha" in (repo / "task.md").read_text()

    status = doit(repo, env, "batch-status")
    assert "awaiting review" in status.stdout and "batch-review sections:alpha" in status.stdout
    approved = doit(repo, env, "batch-review", "sections:alpha", "--approve")
    assert approved.returncode == 0, approved.stderr
    last = run(repo, env, "--no-wait-review")
    assert last.returncode == 0, last.stdout + last.stderr
    assert "alpha = 'attempt 1'" in landed(repo)
    assert [s["attempt"] for s in starts(tmp_path)] == [1]  # its agent ran once, in the first run


def _waits(repo: Path) -> int:
    """How often the item was said to wait for its review, in its events.jsonl."""
    lines = (repo / ".batch/task/items/sections/alpha/events.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]
    return sum(step.get("data", {}).get("step") == "awaiting review" for step in steps)


def test_the_readmes_review_example_runs_as_shown_and_its_webhook_gets_each_event(tmp_path):
    """The README's "Review before it lands": its task.md (the editor agent in Claude's place), its
    commands in order, each succeeding, and its curl notify posting to a loopback webhook."""
    import re
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Review before it lands\n", 1)[1]  # its blocks are the first ones after it
    task = re.search(r"^```markdown\n(.*?)^```$", section, re.M | re.S).group(1)
    commands = re.search(r"^```sh\n(.*?)^```$", section, re.M | re.S).group(1).splitlines()
    curl = re.search(r"^```yaml\nnotify: (.*?)\n```$", section, re.M | re.S).group(1)
    front, body = task.split("---\n")[1], task.split("---\n", 2)[2]
    assert "review: human" in front and body.startswith("# Exporters")
    posted = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        notify = curl.replace("https://hooks.example.com/batch", f"http://127.0.0.1:{server.server_port}/batch")
        plan = {"csv": {"file": "shared.py", "line": 2, "text": "alpha = 'csv {attempt}'"}}
        repo, env = setup(tmp_path, body, plan, review="human", notify=notify)
        first = run(repo, env, "--no-wait-review")
        assert first.returncode == 5, first.stdout + first.stderr
        for command in commands:
            path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # where `doit` is
            ran = subprocess.run(["bash", "-c", command], cwd=repo, capture_output=True, text=True, timeout=120,
                                 env={**os.environ, **env, "PATH": path})
            assert ran.returncode == 0, f"$ {command}\n{ran.stdout}{ran.stderr}"
    finally:
        server.shutdown()
    assert "alpha = 'csv 2'" in git("show", "batch/task:shared.py", cwd=repo)  # rejected once, then approved
    assert "register it in alphabetical order" in starts(tmp_path)[1]["prompt"]
    assert [m["event"] for m in posted].count("awaiting_review") == 2 and posted[-1]["event"] == "run_ended"


def test_the_views_show_an_item_awaiting_review_and_who_it_waits_for():
    from batch_tasks.views.board import Board, landing_of
    from batch_tasks.views.live_view import landing_line, progress_line
    from batch_tasks.views.run_summary import summary

    board = Board([("g:a", "g"), ("g:b", "g")], begun=1000.0)
    board.started("g:a", 1, "")
    board.awaiting_review("g:a", "doit batch-review g:a")
    board.started("g:b", 1, "")
    assert [view.key for view in board.flying()] == ["g:b"]  # it holds no row of the panel: it runs nothing
    assert "1 awaiting review" in progress_line(board.totals())
    board.awaiting_review("g:b", "pull request #12 https://github.example/acme/widgets/pull/12")
    lines = summary(board)
    assert lines[0].startswith("0 done, 0 failed, 2 awaiting review")
    assert any("g:a awaiting review" in line and "review it: doit batch-review g:a" in line for line in lines)
    assert any("review it: pull request #12" in line for line in lines)
    assert lines[-1] == "next: review 2 items (as above), then `doit run-batch` reruns only the 2 items left"
    board.started("g:a", 2, "")  # its decision came: it runs again, in a row of the panel
    assert {view.key for view in board.flying()} == {"g:a"}
    view = board.snapshot()[0]
    view.landing = landing_of({"attempts": [{"review": {"verdict": "reject", "by": "claude", "cost_usd": 0.01}},
                                            {"review": {"verdict": "approve", "by": "claude", "cost_usd": 0.02}}]})
    assert "approved by claude (review $0.0300)" in landing_line(view)


def test_a_decision_holds_only_signed_with_the_key_for_its_item_and_commit(tmp_path, monkeypatch):
    from batch_tasks.landing import review
    from batch_tasks.state.state import BatchState

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "task.md").write_text("# T\n")
    state = BatchState(tmp_path / "task.md")
    state.ensure()
    folder = state.item("g", "a")
    folder.ensure()
    review.write_decision(folder, "g:a", review.Decision(review.APPROVE, "c0ffee"))
    assert review.read_decision(folder, "g:a", "c0ffee") == review.Decision(review.APPROVE, "c0ffee")
    assert review.read_decision(folder, "g:a", "beef00") is None  # another commit: no decision on it
    assert review.read_decision(folder, "g:b", "c0ffee") is None  # another item's
    path = Path(folder.folder) / review.DECISION
    signed = json.loads(path.read_text())
    body = json.loads(signed["body"])
    path.write_text(json.dumps({**signed, "body": json.dumps({**body, "commit": "beef00"}, sort_keys=True)}))
    assert review.read_decision(folder, "g:a", "beef00") is None  # its words changed: the signature no longer holds
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-users-cache"))
    review.write_decision(folder, "g:a", review.Decision(review.REJECT, "c0ffee", "no"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert review.read_decision(folder, "g:a", "c0ffee") is None  # signed with a key not this user's


def test_an_agent_that_runs_batch_review_itself_is_refused_and_a_person_gets_the_diff_paged(tmp_path, monkeypatch):
    from test_live_view import run_on_a_terminal

    repo, env = setup(tmp_path, BODY, PLAN, review="human")
    assert run(repo, env, "--no-wait-review").returncode == 5
    monkeypatch.setenv("PAGER", f"{sys.executable} -c \"import sys; print('PAGED'); print(sys.stdin.read())\"")

    class Folder:
        path = repo

        def command(self, *args):
            return [sys.executable, "-m", "doit", *args]

    shown = run_on_a_terminal(Folder(), "batch-review", "sections:alpha")
    assert "PAGED" in shown and "+alpha = 'attempt 1'" in shown
    inside = doit(repo, {**env, "BATCH_ATTEMPT_ID": "an-attempt"}, "batch-review", "sections:alpha", "--approve")
    assert inside.returncode == 3 and "a person's" in inside.stderr
    assert not (repo / ".batch/task/items/sections/alpha/review.json").exists()
