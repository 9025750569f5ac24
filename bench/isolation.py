"""What isolation costs per item, on a repository of 10,000 files: medians, and a ratio.

Per item, with isolation (`batch_tasks.isolation.worktree` and `merge_queue`, no setup, no check):
a worktree on its own branch from the integration tip (`open`: the first a `git worktree
add`, later ones a merged item's worktree recycled), one file edited, what was left
committed, the branch merged (`--no-ff`) into the integration branch, the worktree and
branch removed (the worktree cleaned and kept as a spare). Beside it, the same edit without
isolation: made in the one shared checkout and committed there (the least a batch without
isolation does to keep the same work in git). The two alternate, item after item, so that a
noisy machine hurts both alike. Once per run: `prepare` (the integration branch, the
runner's own worktree), `close` (what the run's end does), and the next run's prepare and
first open, with the spares the first left.

    python bench/isolation.py [--files 10000] [--items 15] [--cache /tmp/batch-tasks-bench] [--trace] [--check-leaves]

`--trace` prints every git command of the last item, with its time (wall, and git's CPU).
`--check-leaves`: after each commit a check ran, and left what a test run leaves: a
`__pycache__` (ignored) and a report (not), put back as after a check (without isolation,
both are left there, and the report committed with the next item).

A repository of that many files is made once and kept under `--cache` (100,000 files take
minutes to write and commit); each run clones it afresh (`git clone --local`: its objects
hard-linked, its files checked out).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_tasks.isolation.worktree import Isolation  # noqa: E402
from batch_tasks.repository import git as git_module  # noqa: E402
from batch_tasks.landing.merge_queue import MergeQueue  # noqa: E402

OUT = Path(__file__).parent / "out" / "isolation"
STEPS = ("open", "edit", "commit", "check", "merge", "remove")


def git(*args: str, cwd: Path) -> None:
    # No automatic gc: on 100,000 new objects it would repack in the background, beside the timings.
    subprocess.run(["git", "-c", "gc.auto=0", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(folder: Path, files: int, cache: Path) -> Path:
    """A clone of the kept repository of FILES files, made first if it is not there."""
    template = cache / f"repo-{files}"
    if not (template / ".git" / "refs" / "heads" / "main").exists():
        shutil.rmtree(template, ignore_errors=True)
        make_template(template, files)
    folder.parent.mkdir(parents=True, exist_ok=True)
    git("clone", "-q", "--local", str(template), str(folder), cwd=folder.parent)
    git("config", "user.name", "bench", cwd=folder)
    git("config", "user.email", "bench@example.invalid", cwd=folder)
    return folder


def make_template(folder: Path, files: int) -> None:
    """FILES small source files in folders of 100, one commit."""
    folder.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=folder)
    git("config", "user.name", "bench", cwd=folder)
    git("config", "user.email", "bench@example.invalid", cwd=folder)
    for n in range(files):
        path = folder / f"pkg{n // 100:03d}" / f"mod{n % 100:02d}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'"""Module {n}."""\n\n\ndef f{n}(x):\n    return x + {n}\n')
    (folder / "task.md").write_text("# bench\n")
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", f"{files:,} files", cwd=folder)
    git("repack", "-adq", cwd=folder)  # packed, as a repository of that size is


def edit(folder: Path, n: int) -> None:
    path = folder / f"pkg{n % 100:03d}" / "mod00.py"
    path.write_text(path.read_text() + f"\n\ndef edited_{n}():\n    return {n}\n")


def leave_caches(folder: Path, n: int) -> None:
    """What a test run leaves: bytecode beside the module it imported (which the repository
    ignores), and a report (which it does not)."""
    cache = folder / f"pkg{n % 100:03d}" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "mod00.cpython-311.pyc").write_bytes(b"\0" * 1000)
    (folder / "report.json").write_text(f'{{"item": {n}}}\n')


def children_cpu() -> float:
    """CPU (user+sys) of the git processes ended so far: a loaded machine inflates it less than wall time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # to the microsecond (os.times: to the tick, 10 ms)
    return used.ru_utime + used.ru_stime


def isolated_item(isolation: Isolation, queue: MergeQueue, n: int, check_leaves: bool) -> dict[str, float]:
    times, started, cpu = {}, time.perf_counter(), children_cpu()

    def lap(step: str) -> None:
        nonlocal started
        now = time.perf_counter()
        times[step] = now - started
        started = now

    workspace = isolation.open_attempt("bench", f"item{n}", uuid.uuid4().hex)
    lap("open")
    edit(workspace.folder, n)
    lap("edit")
    assert workspace.commit_leftovers().changed
    lap("commit")
    if check_leaves:  # a check ran in the worktree: what it left is put back, as landing does after one
        leave_caches(workspace.folder, n)
        workspace.discard_leftovers()
        lap("check")
    assert queue.merge(workspace).merged
    lap("merge")
    workspace.remove()
    lap("remove")
    return {**times, "cpu": children_cpu() - cpu}


class Traced:
    """subprocess, as batch-tasks' git module sees it, noting each git command's time."""

    def __init__(self):
        self.calls: list[tuple[float, float, str]] = []  # wall, CPU (git's user+sys), command

    def __getattr__(self, name):
        return getattr(subprocess, name)

    def run(self, argv, **kwargs):
        started, cpu = time.perf_counter(), children_cpu()
        try:
            return subprocess.run(argv, **kwargs)
        finally:
            shown = [part for part in argv[1:] if not part.startswith(("-c", "gc.", "maintenance.", "core.", "index."))]
            self.calls.append((time.perf_counter() - started, children_cpu() - cpu, " ".join(shown)[:100]))


def shared_item(folder: Path, n: int, check_leaves: bool) -> dict[str, float]:
    started, cpu = time.perf_counter(), children_cpu()
    edit(folder, n)
    if check_leaves:
        leave_caches(folder, n)
    edited = time.perf_counter()
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", f"item {n}", cwd=folder)
    return {"edit": edited - started, "commit": time.perf_counter() - edited, "cpu": children_cpu() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=15)
    parser.add_argument("--trace", action="store_true", help="print the last item's git commands, timed")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/batch-tasks-bench"))
    parser.add_argument("--check-leaves", action="store_true",
                        help="a check after each commit leaves a __pycache__ and a report (put back, with isolation)")
    options = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    isolated_repo = make_repo(OUT / "isolated", options.files, options.cache)
    shared_repo = make_repo(OUT / "shared", options.files, options.cache)
    for repo in (isolated_repo, shared_repo):
        (repo / ".git" / "info").mkdir(exist_ok=True)
        (repo / ".git" / "info" / "exclude").write_text("__pycache__/\n")  # as a Python project's .gitignore
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")

    started = time.perf_counter()
    isolation = Isolation(isolated_repo / "task.md", {"integrate": None})
    isolation.validate()
    isolation.prepare()
    prepare_s = time.perf_counter() - started
    queue = MergeQueue(isolation)
    isolated, shared = [], []
    traced = Traced()
    for n in range(options.items):
        if options.trace and n == options.items - 1:
            git_module.subprocess = traced
        isolated.append(isolated_item(isolation, queue, n, options.check_leaves))
        git_module.subprocess = subprocess
        shared.append(shared_item(shared_repo, n, options.check_leaves))
    started = time.perf_counter()
    queue.close()  # what a run closes of isolation: the spare worktrees stay for the next run
    close_s = time.perf_counter() - started
    started = time.perf_counter()
    again = Isolation(isolated_repo / "task.md", {"integrate": None})
    again.validate()
    again.prepare()
    again_s = time.perf_counter() - started
    started = time.perf_counter()
    again.open_attempt("bench", "again", uuid.uuid4().hex)
    first_open_again_s = time.perf_counter() - started

    print(f"{options.files:,} files, {options.items} items, medians (git {_git_version()})\n")
    print("| step | with isolation | without |")
    print("|---|---|---|")
    for step in STEPS:
        if step not in isolated[0]:
            continue
        without = statistics.median(t[step] for t in shared) if step in shared[0] else None
        print(f"| {step} | {statistics.median(t[step] for t in isolated) * 1000:.0f} ms | "
              f"{'—' if without is None else f'{without * 1000:.0f} ms'} |")
    per_item = statistics.median(sum(t[step] for step in STEPS if step in t) for t in isolated)
    reference = statistics.median(sum(t[step] for step in STEPS if step in t) for t in shared)
    print(f"| **per item** | **{per_item * 1000:.0f} ms** | **{reference * 1000:.0f} ms** |")
    cpu, cpu_reference = (statistics.median(t["cpu"] for t in kind) for kind in (isolated, shared))
    print(f"| CPU per item (git's user+sys) | {cpu * 1000:.0f} ms | {cpu_reference * 1000:.0f} ms |")
    print(f"\nratio {per_item / reference:.1f} (CPU {cpu / cpu_reference:.1f}); "
          f"isolation adds {(per_item - reference) * 1000:.0f} ms per item; "
          f"the first open (a fresh checkout) {isolated[0]['open'] * 1000:.0f} ms; "
          f"once per run: prepare {prepare_s * 1000:.0f} ms, close {close_s * 1000:.0f} ms; "
          f"the next run's prepare {again_s * 1000:.0f} ms, its first open {first_open_again_s * 1000:.0f} ms")
    if traced.calls:
        print(f"\nthe last item's {len(traced.calls)} git commands, "
              f"{sum(seconds for seconds, _, _ in traced.calls) * 1000:.0f} ms in all "
              f"(CPU {sum(cpu for _, cpu, _ in traced.calls) * 1000:.0f} ms), wall and CPU each:")
        for seconds, cpu, command in traced.calls:
            print(f"  {seconds * 1000:6.0f} ms {cpu * 1000:4.0f} ms  git {command}")


def _git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
