"""The project's own tasks: `doit example`, `doit test`, `doit bench`, `doit mutate`.

doit's own records of these go under build/, so the repository root stays as it was.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent
BUILD = ROOT / "build"
EXAMPLE = ROOT / "examples" / "monolith"
EXAMPLE_RUN = BUILD / "example"
BUILD.mkdir(exist_ok=True)
DOIT_CONFIG = {"default_tasks": ["example"], "verbosity": 2, "dep_file": str(BUILD / ".doit.db")}

TRY_NEXT = f"""
The example ran in {os.path.relpath(EXAMPLE_RUN)}: REPORT.md there is what it made, report.html
how the run went. Try next, there:
  cd {os.path.relpath(EXAMPLE_RUN)}
  doit run-batch                 a second run: nothing is left to do, and it says so
  doit run-batch --dry-run       after you edit an item's text in task.md: what would run, and why
  mv src/billing.py . && doit forget inventory:billing && doit run-batch
                                 a failure: its cause on screen, what depends on it not started
  mv billing.py src/ && doit run-batch
                                 the resume: only what is left runs
  doit batch-log inventory:billing   that item's attempts, and what each printed
"""


def fresh_copy_of_example():
    shutil.rmtree(EXAMPLE_RUN, ignore_errors=True)
    shutil.copytree(EXAMPLE, EXAMPLE_RUN, ignore=shutil.ignore_patterns(".batch", "notes", "interfaces", "REPORT.md"))


def run_example():
    # Its output is this terminal's, not a pipe's: there, run-batch draws its live panel.
    status = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=EXAMPLE_RUN).returncode
    if status == 0:
        status = subprocess.run([sys.executable, "-m", "doit", "batch-report", "-o", "report.html"], cwd=EXAMPLE_RUN).returncode
    if status == 0:
        print(TRY_NEXT)
    return status == 0


def task_example():
    """Run the example batch in a fresh copy (build/example), and write its report
    (build/example/report.html): no agent CLI, no API key."""
    return {"actions": [fresh_copy_of_example, run_example], "uptodate": [False]}


def task_test():
    """Run the tests."""
    return {"actions": [f"{sys.executable} -m pytest -q"], "uptodate": [False]}


def task_bench():
    """Run the benchmarks (bench/README.md says what they measure)."""
    benches = ("overhead.py", "throughput.py", "pipeline.py", "live_view.py", "isolation.py")
    return {"actions": [f"{sys.executable} bench/{bench}" for bench in benches], "uptodate": [False]}


def task_mutate():
    """The mutation score of the modules where decisions are made (bench/mutation.py; needs the
    `mutation` extra): minutes, not part of the tests."""
    return {"actions": [f"{sys.executable} bench/mutation.py"], "uptodate": [False], "verbosity": 2}
