"""Which step an isolated item is at, as a person sees it: setup, agent, check, waiting to
merge, merging. Real `doit run-batch` processes on a real git repository, with a setup, an
agent and checks that wait at gates the test opens one by one, so that each step is held
while the test reads the live panel (on a pseudo-terminal), `doit batch-status`, or the
plain lines; nothing here depends on how fast anything runs.

Three items edit different lines of one file, all from the first tip. `z` lands first.
`a`'s merge then runs its check on the merged state, holding the merge queue (one merged-state
check at a time), while `b` arrives and waits behind it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from conftest import wait_for
from gitrepo import git, make_repo

AGENTS = Path(__file__).parent / "agents"
ITEMS = "# Steps\n## Sections\n- [ ] a: edit beta\n- [ ] b: edit gamma\n- [ ] z: edit alpha\n"
PLAN = {
    "a": {"file": "shared.py", "line": 11, "text": "beta = 'a'", "gate": "agent-a"},
    "b": {"file": "shared.py", "line": 20, "text": "gamma = 'b'"},
    "z": {"file": "shared.py", "line": 2, "text": "alpha = 'z'", "await": ["a"]},  # after a's branch is made
}
# The gates that hold a step until the test opens them.
GATED = ("setup-a", "agent-a", "check-a", "merged-a", "check-b")
GATE = f"{sys.executable} {AGENTS / 'gate.py'}"  # what the setup and the check run
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def setup(tmp_path: Path) -> tuple[Path, dict]:
    repo = make_repo(tmp_path / "repo")
    gate = str(AGENTS / "gate.py")
    front = "\n".join([
        "---", "agent: command", "parallel: 3", "isolation: worktree", "check_parallel: 1",
        f"command: {json.dumps([sys.executable, str(AGENTS / 'editor.py'), '{module}'])}",
        f"check: {json.dumps([sys.executable, gate, 'check-{module}'])}",
        f"worktree_setup: {json.dumps([sys.executable, gate])}",
        "---", "",
    ])
    (repo / "task.md").write_text(front + ITEMS)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    (tmp_path / "gates").mkdir()
    env = {**os.environ, "EDITOR_PLAN": str(tmp_path / "plan.json"), "EDITOR_LOG": str(tmp_path / "agent.log"),
           "GATES": str(tmp_path / "gates"), "GATED": ",".join(GATED)}
    for name in ("COLUMNS", "LINES"):  # a terminal's own size, a pipe's default width
        env.pop(name, None)
    return repo, env


def steps(repo: Path, module: str) -> list[str]:
    """The steps the item's events.jsonl has told so far."""
    path = repo / ".batch/task/items/sections" / module / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [event["data"]["step"] for event in map(json.loads, lines) if event["kind"] == "step"]


def at(repo: Path, module: str, step: str) -> bool:
    return steps(repo, module)[-1:] == [step]


def status(repo: Path, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "doit", "batch-status"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def row(screen: str, module: str, step: str, then: str = "") -> bool:
    """Whether a line shows the item running at `step` (its attempt and time before it), then `then`."""
    return re.search(rf"sections:{module}\s+#1\s+\S+\s+{re.escape(step)}\s+{re.escape(then)}", screen) is not None


def walk_through_the_steps(repo: Path, tmp_path: Path, env: dict, look=lambda step: None) -> None:
    """Open the gates one by one, each once the step it holds is reached; `look(step)` meanwhile."""
    gates = tmp_path / "gates"
    wait_for(lambda: at(repo, "a", "setup"))
    look("setup")
    (gates / "setup-a").touch()
    wait_for(lambda: at(repo, "a", "agent") and (repo / ".batch/task/items/sections/a/running.json").exists())
    look("agent")
    (gates / "agent-a").touch()
    wait_for(lambda: at(repo, "a", "check"))
    look("check")
    wait_for(lambda: (repo / ".batch/task/items/sections/z/result.json").exists())  # z lands meanwhile
    (gates / "check-a").touch()
    wait_for(lambda: at(repo, "a", "merging"))  # its check on the merged state holds the queue
    (gates / "check-b").touch()
    wait_for(lambda: at(repo, "b", "waiting to merge"))
    look("waiting to merge")
    (gates / "merged-a").touch()


def landed(repo: Path) -> None:
    assert repo.joinpath("task.md").read_text().count("- [x]") == 3
    merged = git("show", "batch/task:shared.py", cwd=repo)
    assert all(line in merged for line in ("alpha = 'z'", "beta = 'a'", "gamma = 'b'"))


class Terminal:
    """`doit run-batch` with a pseudo-terminal of `size` for its output, read as it draws."""

    def __init__(self, repo: Path, env: dict, size=(30, 160)):
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        self.process = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env=env,
                                        stdout=follower, stderr=follower, close_fds=True)
        os.close(follower)
        self.leader, self.drawn = leader, b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.leader, 65536)
                except OSError:  # the terminal closed: the run ended
                    return
                if not chunk:
                    return
                self.drawn += chunk
            elif self.process.poll() is not None:
                return

    def screen(self) -> str:
        return CONTROL.sub("", self.drawn.decode("utf-8", "replace"))

    def close(self, timeout: float = 120) -> int:
        status = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        os.close(self.leader)
        return status


def test_the_panel_and_batch_status_show_each_step_of_an_isolated_item(tmp_path):
    repo, env = setup(tmp_path)
    terminal = Terminal(repo, env)
    status_at: dict[str, str] = {}  # step → what batch-status showed while the run was held there

    def look(step: str) -> None:
        # The panel redraws 4 times a second: the step is on it by a redraw soon.
        wait_for(lambda: row(terminal.screen(), "b" if step == "waiting to merge" else "a", step))
        status_at[step] = status(repo, env)

    try:
        walk_through_the_steps(repo, tmp_path, env, look)
    except BaseException:
        terminal.process.kill()
        print(terminal.screen()[-4000:])
        raise
    exit_status = terminal.close()
    assert exit_status == 0, terminal.screen()[-3000:]
    landed(repo)

    # The first attempt's worktree being set up: running, though no agent has started.
    assert row(status_at["setup"], "a", "setup", GATE)
    assert row(status_at["agent"], "a", "agent")
    assert row(status_at["check"], "a", "check", GATE)
    assert row(status_at["waiting to merge"], "a", "merging", "into batch/task")
    assert row(status_at["waiting to merge"], "b", "waiting to merge", "behind sections:a")

    panel = terminal.screen()
    assert row(panel, "a", "setup", GATE)
    assert row(panel, "a", "check", GATE)
    assert row(panel, "a", "merging", "into batch/task")
    assert row(panel, "b", "waiting to merge", "behind sections:a")
    assert "3 done, 0 failed" in panel


def test_plain_output_and_the_report_show_the_check_and_the_wait_to_merge(tmp_path):
    repo, env = setup(tmp_path)
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        walk_through_the_steps(repo, tmp_path, env)
        out, _ = runner.communicate(timeout=120)
    finally:
        runner.kill()
    assert runner.returncode == 0, out
    landed(repo)
    lines = [line.split(" ", 2)[2] for line in out.splitlines() if line[:2].isdigit()]  # time and counter off
    assert any(line.startswith("· sections:a check: ") for line in lines)
    waiting = lines.index("· sections:b waiting to merge: behind sections:a")
    assert lines.index("· sections:b merging: into batch/task") > waiting  # the wait's end
    # No line for the setup, the agent (its ▶ line says so) or a merge straight after its check.
    assert not any(" setup" in line or " agent" in line for line in lines if line.startswith("·"))
    assert not any(line.startswith(("· sections:z merging", "· sections:a merging")) for line in lines)
    assert sum(line.startswith("·") for line in lines) == 5  # 3 checks, b's wait and its end

    # The run's report draws each step beside the agent's bar, from the run history.
    report = subprocess.run([sys.executable, "-m", "doit", "batch-report", "--format", "json", "-o", "report.json"],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stdout + report.stderr
    data = json.loads((repo / "report.json").read_text())
    bars = {(s["item"], s["kind"]): s for s in data["segments"]}
    agent_a, agent_b = bars[("sections:a", "done")], bars[("sections:b", "done")]
    def before(earlier: float, later: float) -> bool:  # the history's times are to the millisecond
        return earlier <= later + 0.001

    assert before(bars[("sections:a", "step-setup")]["end"], agent_a["start"])
    assert before(agent_a["end"], bars[("sections:a", "step-check")]["start"])
    assert bars[("sections:a", "step-check")]["reason"].endswith("check-a")  # what it ran
    wait = bars[("sections:b", "step-waiting to merge")]
    assert before(agent_b["end"], wait["start"]) and wait["start"] < wait["end"]
    assert before(wait["end"], bars[("sections:b", "step-merging")]["start"])
    assert wait["reason"] == "behind sections:a"
    rows = {row["key"]: row for row in data["items"]}
    assert rows["sections:b"]["finished"] >= bars[("sections:b", "step-merging")]["end"]
    assert max(count for _, count in data["concurrency"]) <= 3  # attempts, not their steps


def test_the_evidence_of_what_landed_is_in_the_done_lines_the_summary_and_batch_status(tmp_path):
    repo, env = setup(tmp_path)
    for gate in GATED:  # nothing held
        (tmp_path / "gates" / gate).touch()
    result = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    merges = dict(line.split(" ", 1) for line in git("log", "--first-parent", "--merges", "--format=%H %s",
                                                      "batch/task", cwd=repo).splitlines())
    summary = result.stdout.split("\n\n", 1)[1]
    after = status(repo, env)
    assert "landed: 3 items merged" in summary and "landed: 3 items merged" in after
    for module in "abz":
        commit = next(c for c, subject in merges.items() if subject == f"Merge sections:{module} into batch/task")
        evidence = f"sections:{module}: merged {commit[:12]}, 1 file +1 −1, check passed in "
        assert evidence in summary and evidence in after
        done = next(line for line in result.stdout.splitlines() if f"✓ sections:{module} " in line)
        assert f" · merged {commit[:12]}, 1 file +1 −1, check passed in " in done
