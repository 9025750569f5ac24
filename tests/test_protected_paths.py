"""Paths an item's work may not change: the check's own files, CI configuration, `protect:`.
An agent that rewrites the test its check runs is not ticked, and its work does not land."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gitrepo import git
from test_git_guard import hostile_batch, item_folder, run_batch

from batch_tasks.errors import SettingError
from batch_tasks.plan.protected_paths import DEFAULT, check_paths, globs, violations
from batch_tasks.plan.settings import parse_setting


def test_the_checks_files_and_ci_are_protected_unless_the_item_names_them():
    protect = globs(DEFAULT, check_paths([sys.executable, "-m", "pytest", "-q", "tests/csv", "/usr/bin/x", "../out"],
                                         "sub", "/wt"))
    changed = ["sub/tests/csv/test_a.py", "sub/tests/csv", "sub/src/csv.py", ".github/workflows/ci.yml", "README.md"]
    assert violations(changed, "add the csv writer", protect) == [
        "sub/tests/csv/test_a.py", "sub/tests/csv", ".github/workflows/ci.yml"]
    assert violations(changed, "fix sub/tests/csv/test_a.py", protect) == [".github/workflows/ci.yml"]
    assert violations(changed, "anything", globs((), ["tests"])) == []  # protect: [] turns it off
    assert violations(["docs/a.md", "docs/x/b.md"], "", ["docs/*"]) == ["docs/a.md", "docs/x/b.md"]
    assert check_paths(["/wt/tests/t.py", "{x}", "-k"], ".", "/wt") == ["tests/t.py", "{x}"]


def test_protect_is_a_list_of_relative_globs():
    assert parse_setting("protect", ["{check}", "tests/*"], in_group=True) == ("{check}", "tests/*")
    assert parse_setting("protect", [], in_group=False) == ()
    for value in ("tests/*", ["/etc/*"], [""]):
        with pytest.raises(SettingError):
            parse_setting("protect", value, in_group=False)


def test_an_agent_that_rewrites_its_check_is_not_ticked_and_nothing_of_it_lands(tmp_path):
    body = ("# Batch\n## Work\n"
            "- [ ] cheat: make the test pass\n"
            "- [ ] ci: speed up the build\n"
            "- [ ] fixer: fix tests/test_core.py, whose assertion is wrong\n")
    plan = {"cheat": {"write": {"tests/test_core.py": "import sys\nsys.exit(0)\n", "src.py": "x = 1\n"},
                      "say": "All tests pass."},
            "ci": {"write": {".github/workflows/ci.yml": "on: push\n", "build.py": "fast = True\n"}, "say": "Faster."},
            "fixer": {"write": {"tests/test_core.py": "import sys\nsys.exit(0)\n"}, "say": "Fixed the test."}}
    check = json.dumps([sys.executable, "tests/test_core.py"])
    repo = hostile_batch(tmp_path, body, plan, check=check, check_retries="0", parallel="1",
                         setup_files={"tests/test_core.py": "import sys\nsys.exit(1)\n"})

    result = run_batch(repo, tmp_path, "--continue")
    assert result.returncode == 1, result.stdout + result.stderr
    text = (repo / "task.md").read_text()
    assert "- [ ] cheat" in text and "- [ ] ci" in text and "- [x] fixer" in text
    cheat = json.loads((item_folder(repo, "work", "cheat") / "failure.json").read_text())
    assert cheat["reason"] == "touched protected path tests/test_core.py"
    attempt = cheat["attempts"][0]
    assert attempt["failure_class"] == "permanent"
    assert attempt["claim"].strip().endswith("All tests pass.")
    assert attempt["protected"]["touched"] == ["tests/test_core.py"]
    assert "check" not in attempt  # its check never ran: its verdict would mean nothing
    ci = json.loads((item_folder(repo, "work", "ci") / "failure.json").read_text())
    assert ci["reason"] == "touched protected path .github/workflows/ci.yml"
    landed = git("ls-tree", "-r", "--name-only", "batch/task", cwd=repo).split()
    assert "src.py" not in landed and "build.py" not in landed and ".github/workflows/ci.yml" not in landed
    fixer = json.loads((item_folder(repo, "work", "fixer") / "result.json").read_text())
    assert fixer["attempts"][-1]["protected"]["touched"] == [] and fixer["check"]["passed"]
    assert "touched protected path tests/test_core.py" in result.stdout + result.stderr
    report = subprocess.run([sys.executable, "-m", "doit", "batch-report", "--format", "json", "-o", "-"], cwd=repo,
                            capture_output=True, text=True, timeout=60)
    claims = {claim["item"]: claim for claim in json.loads(report.stdout)["claims"]}
    assert claims["work:cheat"]["claim"].strip().endswith("All tests pass.")
    assert claims["work:cheat"]["check"] == "not run" and claims["work:cheat"]["touched"] == ["tests/test_core.py"]
    assert claims["work:fixer"]["check"] == "passed" and claims["work:fixer"]["touched"] == []
    assert subprocess.run([sys.executable, "-m", "doit", "batch-report"], cwd=repo, timeout=60).returncode == 0
    html = (repo / "report.html").read_text()
    assert "Claims and verdicts" in html and "touched" in html and "All tests pass." in html


def test_a_landing_after_kill_9_honours_protect_too(tmp_path):
    """A run killed during the check leaves a success to land; the next run lands such work through
    recovery, which refuses it as the run would (here `protect` was set in between)."""
    from test_isolated_batch import kill_9_when, run, setup

    plan = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'kept'"}}
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] alpha: edit alpha\n", plan, protect="[]", check_retries="0",
                      retries="0")
    kill_9_when(repo, {**env, "CHECK_HANGS_ONCE": "alpha"}, (tmp_path / "checks" / "alpha.hung").exists)
    (repo / "task.md").write_text((repo / "task.md").read_text().replace("protect: []", "protect: [shared.py]"))

    resumed = run(repo, env)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "alpha = 'kept'" not in git("show", "batch/task:shared.py", cwd=repo)
    assert "- [ ] alpha" in (repo / "task.md").read_text()
    failure = json.loads((repo / ".batch/task/items/g/alpha/failure.json").read_text())
    assert failure["reason"] == "touched protected path shared.py"
