"""What isolation costs per item, on a repository of 10,000 files: medians, and a ratio.

Per item, with isolation (`batch_tasks.isolation.worktree` and `merge_queue`, no setup, no check):
a worktree on its own branch from the integration tip (`open`: the first a `git worktree
add`, later ones a merged item's worktree recycled), one file edited, what was left
committed, the branch merged (`--no-ff`) into the integration branch, the worktree and
branch removed (the worktree cleaned and kept as a spare). Beside it, the same edit without isolation: made in the one shared
checkout and committed there (the least a batch without isolation does to keep the same
work in git). The two alternate, item after item, so that a noisy machine hurts both alike.

    python bench/isolation.py [--files 10000] [--items 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_tasks.isolation.worktree import Isolation  # noqa: E402
from batch_tasks.landing.merge_queue import MergeQueue  # noqa: E402

OUT = Path(__file__).parent / "out" / "isolation"
STEPS = ("open", "edit", "commit", "merge", "remove")


def git(*args: str, cwd: Path) -> None:
    # No automatic gc: on 100,000 new objects it would repack in the background, beside the timings.
    subprocess.run(["git", "-c", "gc.auto=0", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(folder: Path, files: int) -> Path:
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
    return folder


def edit(folder: Path, n: int) -> None:
    path = folder / f"pkg{n % 100:03d}" / "mod00.py"
    path.write_text(path.read_text() + f"\n\ndef edited_{n}():\n    return {n}\n")


def isolated_item(isolation: Isolation, queue: MergeQueue, n: int) -> dict[str, float]:
    times, started = {}, time.perf_counter()

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
    assert queue.merge(workspace).merged
    lap("merge")
    workspace.remove()
    lap("remove")
    return times


def shared_item(folder: Path, n: int) -> dict[str, float]:
    started = time.perf_counter()
    edit(folder, n)
    edited = time.perf_counter()
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", f"item {n}", cwd=folder)
    return {"edit": edited - started, "commit": time.perf_counter() - edited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=15)
    options = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    isolated_repo = make_repo(OUT / "isolated", options.files)
    shared_repo = make_repo(OUT / "shared", options.files)
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")

    started = time.perf_counter()
    isolation = Isolation(isolated_repo / "task.md", {"integrate": None})
    isolation.validate()
    isolation.prepare()
    prepare_s = time.perf_counter() - started
    queue = MergeQueue(isolation)
    isolated, shared = [], []
    for n in range(options.items):
        isolated.append(isolated_item(isolation, queue, n))
        shared.append(shared_item(shared_repo, n))
    started = time.perf_counter()
    isolation.close()
    close_s = time.perf_counter() - started

    print(f"{options.files:,} files, {options.items} items, medians (git {_git_version()})\n")
    print("| step | with isolation | without |")
    print("|---|---|---|")
    for step in STEPS:
        without = statistics.median(t[step] for t in shared) if step in shared[0] else None
        print(f"| {step} | {statistics.median(t[step] for t in isolated) * 1000:.0f} ms | "
              f"{'—' if without is None else f'{without * 1000:.0f} ms'} |")
    per_item = statistics.median(sum(t.values()) for t in isolated)
    reference = statistics.median(sum(t.values()) for t in shared)
    print(f"| **per item** | **{per_item * 1000:.0f} ms** | **{reference * 1000:.0f} ms** |")
    print(f"\nratio {per_item / reference:.1f}; isolation adds {(per_item - reference) * 1000:.0f} ms per item; "
          f"the first open (a fresh checkout) {isolated[0]['open'] * 1000:.0f} ms; "
          f"once per run: prepare {prepare_s * 1000:.0f} ms, close {close_s * 1000:.0f} ms")


def _git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
