"""The package as people install it: its licence, said everywhere a user looks, and its
metadata, read from pyproject.toml as it is."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_licence_is_said_everywhere_a_user_looks():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]  # SPDX, as packaging now asks
    assert any(c.startswith("Programming Language :: Python :: 3") for c in PROJECT["classifiers"])
    assert "\n## Licence\n\nMIT: see [LICENSE](LICENSE).\n" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_console_script_is_batch_tasks_and_says_its_version():
    assert PROJECT["scripts"] == {"batch-tasks": "batch_tasks.main:run"}
    shown = subprocess.run([sys.executable, "-m", "batch_tasks", "--version"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(rf"batch-tasks {re.escape(PROJECT['version'])} \(doit 0\.37\.\d+\)\n", shown.stdout)


def test_batch_tasks_runs_the_batch_and_its_commands_without_a_doit_cfg(batch):
    batch.write("# T\n## Inventory\n- [ ] auth: list it\n- [ ] billing: list it\n")

    def batch_tasks(*args):
        return subprocess.run([sys.executable, "-m", "batch_tasks", *args], cwd=batch.path, capture_output=True, text=True, timeout=60)

    assert "usage: batch-tasks [OPTIONS]" in batch_tasks("--help").stdout
    ran = batch_tasks("-j", "2", "inventory:auth")
    assert ran.returncode == 0 and "1 done, 0 failed" in ran.stdout, ran.stdout + ran.stderr
    assert batch.runs() == {"inventory:auth": 1}
    assert "report: batch-tasks report --run " in ran.stdout  # said as it was typed: pipx puts no doit on PATH
    assert "next: `batch-tasks` reruns only the 1 item left" in batch_tasks("status").stdout
    assert "inventory:billing" in batch_tasks("list", "--all").stdout  # doit's own, reading task.md
    assert "1/2 done" in batch_tasks("status").stdout
    assert batch_tasks("run", "--dry-run").stdout.endswith("1 would run, 1 up to date\n")
    assert batch_tasks("graph").returncode == 0
    assert not (batch.path / "doit.cfg").exists()


def test_the_history_the_report_and_info_show_figures_without_loading_the_live_view():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, batch_tasks.run.history, batch_tasks.views.report_html, batch_tasks.views.item_info; "
                               "print(sorted(m for m in sys.modules if m in ('batch_tasks.views.live_view', 'rich.live')))"],
        capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
