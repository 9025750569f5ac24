"""What `sandbox: true` costs per attempt: medians, and ratios against the same work unsandboxed.

In a real repository's item worktree (made by `git worktree add`, as isolation makes it):
  plan      agent_sandbox.for_workspace: the facts from git, the argv (once per process)
  start     `true` started under bwrap, against `true` started alone (whole processes)
  build     `python -m compileall -f` of FILES modules in the worktree (every file read,
            compiled and written), inside the sandbox against outside it
Each pair alternates, run after run, so that a noisy machine hurts both alike.

    python bench/sandbox.py [--files 2000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_tasks.processes.agent_sandbox import for_workspace  # noqa: E402


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def worktree(folder: Path, files: int) -> SimpleNamespace:
    """A repository of FILES small modules, and an item's worktree of it on a branch of its own."""
    repo = folder / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    for n in range(files):
        path = repo / f"pkg{n // 100:03d}" / f"mod{n % 100:02d}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'"""Module {n}."""\n\n\ndef f{n}(x):\n    return [x + i for i in range({n % 50})]\n')
    git("add", "-A", cwd=repo)
    git("-c", "user.name=bench", "-c", "user.email=b@example.invalid", "commit", "-q", "-m", "modules", cwd=repo)
    path = repo / ".batch" / "bench" / "worktrees" / "g" / "item"
    git("worktree", "add", "-q", "-b", "batch/bench.items/g/item", str(path), cwd=repo)
    return SimpleNamespace(path=path, branch="batch/bench.items/g/item", isolation=SimpleNamespace(top=repo))


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as folder:
        workspace = worktree(Path(folder), options.files)
        settings = {"sandbox": True, "agent": "command"}
        build = [sys.executable, "-m", "compileall", "-q", "-f", "."]
        rows = {name: ([], []) for name in ("plan", "start", "build")}
        for _ in range(options.repeat):
            started = time.perf_counter()
            sandbox = for_workspace(workspace, settings)
            rows["plan"][0].append(time.perf_counter() - started)
            rows["start"][0].append(timed(sandbox.argv(["/bin/true"], workspace.path), workspace.path))
            rows["start"][1].append(timed(["/bin/true"], workspace.path))
            rows["build"][0].append(timed(sandbox.argv(build, workspace.path), workspace.path))
            rows["build"][1].append(timed(build, workspace.path))
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"\n{options.files} modules, {options.repeat} runs each, medians (seconds)\n")
    print(f"{'':8} {'sandboxed':>10} {'alone':>10} {'ratio':>7} {'added':>9}")
    for name, (inside, outside) in rows.items():
        if not outside:
            print(f"{name:8} {statistics.median(inside):10.4f}")
            continue
        a, b = statistics.median(inside), statistics.median(outside)
        print(f"{name:8} {a:10.4f} {b:10.4f} {a / b:7.2f} {a - b:9.4f}")


if __name__ == "__main__":
    main()
