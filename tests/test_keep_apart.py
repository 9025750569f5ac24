"""Conflict-aware dispatch end to end: a real `doit run-batch -n 2` on a real git repository,
two items naming one file and a third naming another, each agent rewriting one line. Kept
apart, the two never overlap while the third runs beside one of them, and nothing conflicts;
with `keep_apart: false` they run together and the second to merge conflicts and runs again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FRONT_MATTER
from gitrepo import git, make_repo

EDITOR = Path(__file__).parent / "agents" / "editor.py"
BODY = ("# Edits\n## Edits\n- [ ] first: set alpha in `shared.py`\n- [ ] second: set alpha again, in shared.py\n"
        "- [ ] third: set a line of `notes.txt`\n")


def run_batch(tmp_path: Path, keep_apart: bool, awaits: dict[str, list[str]]) -> tuple[Path, subprocess.CompletedProcess]:
    """The batch in a new repository; AWAITS: which agents wait for which others to have started."""
    repo = make_repo(tmp_path / "repo")
    (repo / "notes.txt").write_text("notes\n")
    command = json.dumps([sys.executable, str(EDITOR), "{module}"])
    (repo / "task.md").write_text(f"---\nagent: command\ncommand: {command}\nisolation: worktree\n"
                                  f"keep_apart: {str(keep_apart).lower()}\n---\n{BODY}")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    plan = {"first": {"file": "shared.py", "line": 2, "text": "alpha = 'first'"},
            "second": {"file": "shared.py", "line": 2, "text": "alpha = 'second {attempt}'"},
            "third": {"file": "notes.txt", "line": 1, "text": "third"}}
    for module, others in awaits.items():
        plan[module]["await"] = others
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "EDITOR_PLAN": str(tmp_path / "plan.json"), "EDITOR_LOG": str(tmp_path / "agent.log")}
    result = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", "2"], cwd=repo, capture_output=True,
                            text=True, timeout=120, env=env)
    return repo, result


def attempts(repo: Path, module: str) -> dict[int, tuple[float, float]]:
    """Each attempt's span, from its item's events: its first line to its last."""
    spans: dict[int, tuple[float, float]] = {}
    for line in (repo / f".batch/task/items/edits/{module}/events.jsonl").read_text().splitlines():
        event = json.loads(line)
        first, last = spans.get(event["attempt"], (event["t"], event["t"]))
        spans[event["attempt"]] = (min(first, event["t"]), max(last, event["t"]))
    return spans


def overlap(one: tuple[float, float], other: tuple[float, float]) -> bool:
    return one[0] < other[1] and other[0] < one[1]


def test_two_items_naming_one_file_are_kept_apart_and_with_that_off_they_conflict(tmp_path):
    # Kept apart: first and third run together (each waits to see the other start), second after first.
    repo, result = run_batch(tmp_path / "on", True, {"first": ["third"], "third": ["first"]})
    assert result.returncode == 0, result.stdout + result.stderr
    first, second, third = (attempts(repo, module) for module in ("first", "second", "third"))
    assert (len(first), len(second), len(third)) == (1, 1, 1)  # no conflict, nothing run again
    assert not overlap(first[1], second[1]) and first[1][1] <= second[1][0]
    assert overlap(first[1], third[1])
    assert "alpha = 'second 1'" in git("show", "batch/task:shared.py", cwd=repo)
    record = json.loads((repo / ".batch/task/items/edits/third/result.json").read_text())
    assert record["attempts"][0]["changed"] == ["notes.txt"]  # what its next attempt is predicted to touch

    # Not kept apart: first and second run together (each waits to see the other start), and conflict.
    repo, result = run_batch(tmp_path / "off", False, {"first": ["second"], "second": ["first"]})
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = attempts(repo, "first"), attempts(repo, "second")
    assert overlap(first[1], second[1])
    redone = [record for module in ("first", "second")
              if len((record := json.loads((repo / f".batch/task/items/edits/{module}/result.json").read_text()))
                     ["attempts"]) == 2]
    assert len(redone) == 1 and redone[0]["attempts"][0]["reason"] == "merge conflict in shared.py"


def test_dry_run_and_batch_graph_say_which_items_are_kept_apart_and_why(batch):
    batch.write(BODY)
    said = "kept apart from: edits:first (both touch shared.py)"
    dry = batch.run("run-batch", "--dry-run", "-n", "2")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.split("edits:second")[1].split("edits:third")[0].strip().splitlines()[-1].strip() == said
    assert dry.stdout.count("kept apart") == 1
    assert "kept apart" not in batch.run("run-batch", "--dry-run", "-n", "1").stdout  # one at a time anyway
    graph = batch.run("batch-graph").stdout
    assert "  edits:second  ← nothing\n      kept apart from edits:first (both touch shared.py)\n" in graph, graph

    batch.write(BODY, front_matter=FRONT_MATTER.replace("---\n", "---\nkeep_apart: false\n", 1))
    assert "kept apart" not in batch.run("run-batch", "--dry-run", "-n", "2").stdout + batch.run("batch-graph").stdout
