"""Conflict-aware dispatch: merge conflicts and reruns per batch, with `keep_apart` on and off.

A real git repository, `isolation: worktree`, and a batch whose items name the files they
edit in their text, several items to a file; its agent (this file, run as `agent`) sleeps
as long as an agent thinks, then appends a line at the end of each file its prompt names,
as agents mostly add code: two such edits of one file made from one tip do not merge, so
the second to reach the merge queue conflicts and its agent runs again from the new tip.

Both settings run the same batch in a fresh copy of the repository, alternating between
repetitions so that a noisy machine hurts both alike; figures are medians. Each run gives
its merge conflicts (attempts whose merge conflicted), reruns (attempts beyond each item's
first), items that failed (out of reruns), agent runs, and the whole process's wall time.

    python bench/conflicts.py [--workload runs|pairs|one|all] [--items 12] [--jobs 4] [--agent-seconds 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "out" / "conflicts"
RESULTS = BENCH / "out" / "conflicts-results.txt"
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
NAMED = re.compile(r"`(files/[\w.-]+)`")


def agent(module: str) -> None:
    """The stand-in agent: think, then append a line to each file the item names."""
    prompt = sys.stdin.read()
    time.sleep(float(os.environ["CONFLICTS_AGENT_SECONDS"]))
    for path in dict.fromkeys(NAMED.findall(prompt)):
        with open(path, "a") as stream:
            stream.write(f"{module}, attempt {os.environ['BATCH_ATTEMPT']}\n")


def items(workload: str, count: int) -> list[tuple[str, list[str]]]:
    """(module, the files it names). `runs`: three items in a row to a file, as a plan lists
    the tasks of one file together; `pairs`: each item names its own file and, two in four,
    a file it shares with its neighbour; `one`: every item names one file, where keeping
    them apart runs them one at a time."""
    if workload == "runs":
        return [(f"m{n:02d}", [f"files/f{n // 3}.txt"]) for n in range(count)]
    if workload == "one":
        return [(f"m{n:02d}", ["files/one.txt"]) for n in range(count)]
    return [(f"m{n:02d}", [f"files/own{n:02d}.txt"] + ([f"files/pair{n // 2}.txt"] if n % 4 < 2 else []))
            for n in range(count)]


def make_repository(folder: Path, workload: str, count: int, keep_apart: bool) -> None:
    folder.mkdir(parents=True)
    git = lambda *args: subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    git("config", "user.name", "Bench")
    git("config", "user.email", "bench@example.invalid")
    (folder / "files").mkdir()
    planned = items(workload, count)
    for path in {path for _, paths in planned for path in paths}:
        (folder / path).write_text("the first line\n")
    command = json.dumps([sys.executable, str(Path(__file__).resolve()), "agent", "{module}"])
    lines = [f"- [ ] {module}: add a line to {' and '.join(f'`{path}`' for path in paths)}" for module, paths in planned]
    (folder / "task.md").write_text(
        f"---\nagent: command\ncommand: {command}\nisolation: worktree\nretries: 6\n"
        f"keep_apart: {str(keep_apart).lower()}\n---\n# Conflicts\n## Edits\n" + "\n".join(lines) + "\n")
    git("add", "-A")
    git("commit", "-q", "-m", "the batch")


def measure(folder: Path, jobs: int, agent_seconds: float) -> dict[str, float]:
    begun = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)], cwd=folder, capture_output=True,
                          text=True, env={**ENVIRONMENT, "CONFLICTS_AGENT_SECONDS": str(agent_seconds)}, timeout=900)
    wall = time.perf_counter() - begun
    conflicts = reruns = failed = runs = 0
    for module_folder in (folder / ".batch" / "task" / "items" / "edits").iterdir():
        result, failure = module_folder / "result.json", module_folder / "failure.json"
        record = json.loads((result if result.exists() else failure).read_text())
        failed += not result.exists()
        attempts = record["attempts"]
        runs += len(attempts)
        reruns += len(attempts) - 1
        conflicts += sum(str(attempt.get("reason", "")).startswith("merge conflict") for attempt in attempts)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the run in {folder} ended with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return {"conflicts": conflicts, "reruns": reruns, "failed": failed, "agent runs": runs, "wall s": wall}


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("runs", "pairs", "one", "all"), default="all")
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--agent-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workloads = ("runs", "pairs", "one") if args.workload == "all" else (args.workload,)
    shutil.rmtree(WORK, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True, text=True).stdout.strip()
    lines = [f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC (at {commit}): {args.items} items, "
             f"-n {args.jobs}, agents {args.agent_seconds:g} s, median of {args.repeat}; load average before: {load()}"]
    print(lines[0], flush=True)
    for workload in workloads:
        figures: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for repetition in range(args.repeat):
            for keep_apart in ((True, False) if repetition % 2 == 0 else (False, True)):
                folder = WORK / f"{workload}-{'on' if keep_apart else 'off'}-{repetition}"
                make_repository(folder, workload, args.items, keep_apart)
                figures[keep_apart].append(measure(folder, args.jobs, args.agent_seconds))
                print(f"  {workload} keep_apart={keep_apart}: {figures[keep_apart][-1]}", flush=True)
        lines.append(f"\n{workload}:\n\n| keep_apart | conflicts | reruns | failed | agent runs | wall s |\n|---|---|---|---|---|---|")
        medians = {keep_apart: {name: statistics.median(run[name] for run in runs) for name in runs[0]}
                   for keep_apart, runs in figures.items()}
        for keep_apart in (True, False):
            lines.append(f"| {str(keep_apart).lower()} | " + " | ".join(
                f"{value:.1f}" if name == "wall s" else f"{value:g}" for name, value in medians[keep_apart].items()) + " |")
        ratios = [on["wall s"] / off["wall s"] for on, off in zip(figures[True], figures[False])]
        lines.append(f"\nwall time, on / off, repetition by repetition: {', '.join(f'{r:.2f}' for r in ratios)}")
    lines.append(f"\nload average after: {load()}")
    text = "\n".join(lines) + "\n"
    print(text)
    with RESULTS.open("a") as stream:
        stream.write(text + "\n")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["agent"]:
        agent(sys.argv[2])
    else:
        main()
