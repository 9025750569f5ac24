"""The project's own tasks: `doit example`, `doit test`, `doit bench`."""

import shutil
import sys
from pathlib import Path

DOIT_CONFIG = {"default_tasks": ["example"], "verbosity": 2}
ROOT = Path(__file__).parent
EXAMPLE = ROOT / "examples" / "monolith"
EXAMPLE_RUN = ROOT / "build" / "example"


def fresh_copy_of_example():
    shutil.rmtree(EXAMPLE_RUN, ignore_errors=True)
    shutil.copytree(EXAMPLE, EXAMPLE_RUN, ignore=shutil.ignore_patterns(".batch", "notes", "interfaces", "REPORT.md"))


def task_example():
    """Run the example batch in a fresh copy (build/example), and write its report
    (build/example/report.html): no agent CLI, no API key."""
    return {
        "actions": [
            fresh_copy_of_example,
            f"cd {EXAMPLE_RUN} && {sys.executable} -m doit run-batch",
            f"cd {EXAMPLE_RUN} && {sys.executable} -m doit list --all --status",
            f"cd {EXAMPLE_RUN} && cat REPORT.md",
            f"cd {EXAMPLE_RUN} && {sys.executable} -m doit batch-report -o report.html",
        ],
        "uptodate": [False],
    }


def task_test():
    """Run the tests."""
    return {"actions": [f"{sys.executable} -m pytest -q"], "uptodate": [False]}


def task_bench():
    """Run the benchmarks (bench/README.md says what they measure)."""
    benches = ("overhead.py", "throughput.py", "pipeline.py", "live_view.py", "isolation.py")
    return {"actions": [f"{sys.executable} bench/{bench}" for bench in benches], "uptodate": [False]}
