"""What the Dask executor adds per item, beside the local executor: medians, and differences.

One machine: a Dask scheduler and 2 `dask worker` processes on loopback (each `--resources
agent=2`, in a folder of its own), a repository of FILES small files whose `origin` is a bare
repository. The same batch of ITEMS isolated items (`isolation: worktree`, no setup, no check;
each agent writes one file) runs with `doit run-batch -n 4`, by turns with `--executor local`
and `--executor dask`, REPEAT times each, in a fresh clone each time. Per item, from its
records and its agent's own clock:

    submit → agent start   the item's start (its record's `started`) to its agent's first moment:
                           local, the worktree here; dask, also pushing its base, the task's
                           submission, the worker's fetch and its worktree there
    agent exit → merged    its agent's last moment to its record (`finished`): local, commit
                           and merge; dask, also commit and push there, fetch and a worktree here

    python bench/dask_executor.py [--files 1000] [--items 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dask_cluster import Cluster  # noqa: E402

OUT = Path(__file__).parent / "out" / "dask_executor"
AGENT = ("import os, sys, time\n"
         "started = time.time()\n"
         "module = sys.argv[1]\n"
         "open(f'{module}.txt', 'w').write(sys.stdin.read())\n"
         "line = f'{module} {started!r} {time.time()!r}\\n'.encode()\n"
         "log = os.open(os.environ['BENCH_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
         "os.write(log, line)\n")


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_origin(folder: Path, files: int, items: int) -> Path:
    """A bare repository holding FILES small modules and the batch's task.md."""
    source = folder / "source"
    source.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=source)
    for n in range(files):
        path = source / f"pkg{n // 100:03d}" / f"mod{n % 100:02d}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'"""Module {n}."""\n\n\ndef f{n}(x):\n    return x + {n}\n')
    command = json.dumps([sys.executable, "-c", AGENT, "{module}"])
    (source / "task.md").write_text(
        f"---\nagent: command\ncommand: {command}\nisolation: worktree\npass_env: [BENCH_LOG]\n---\n"
        "# Bench\n## Items\n" + "".join(f"- [ ] i{n}: write i{n}.txt\n" for n in range(items)))
    git("add", "-A", cwd=source)
    git("-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "files", cwd=source)
    origin = folder / "origin.git"
    git("clone", "-q", "--bare", str(source), str(origin), cwd=folder)
    return origin


def one_run(origin: Path, work: Path, executor: str, scheduler: str) -> tuple[float, list[float], list[float]]:
    """A fresh clone, one run: its wall time, and per item its two overheads (seconds)."""
    if work.exists():
        shutil.rmtree(work)
    git("clone", "-q", str(origin), str(work), cwd=origin.parent)
    log = work.parent / f"{work.name}.log"
    log.unlink(missing_ok=True)
    args = ["--executor", "dask", "--scheduler", scheduler] if executor == "dask" else ["--executor", "local"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", "4", *args], cwd=work,
                          capture_output=True, text=True, env={**os.environ, "BENCH_LOG": str(log)})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{executor} run failed:\n{done.stdout}\n{done.stderr}")
    agent = {module: (float(a), float(b)) for module, a, b in (line.split() for line in log.read_text().splitlines())}
    to_start, to_merged = [], []
    for module, (agent_started, agent_ended) in agent.items():
        record = json.loads((work / ".batch/task/items/items" / module / "result.json").read_text())
        to_start.append(agent_started - record["started"])
        to_merged.append(record["finished"] - agent_ended)
    return wall, to_start, to_merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    origin = make_origin(OUT, options.files, options.items)
    cluster = Cluster(OUT / "cluster")
    try:
        for name in ("w1", "w2"):
            cluster.start_worker(name, 2)
        cluster.wait_for_workers(2)
        results = {"local": ([], [], []), "dask": ([], [], [])}
        for turn in range(options.repeat):
            for executor in ("local", "dask"):  # by turns: a noisy machine hurts both alike
                wall, to_start, to_merged = one_run(origin, OUT / f"{executor}-{turn}", executor, cluster.address)
                results[executor][0].append(wall / options.items)
                results[executor][1].extend(to_start)
                results[executor][2].extend(to_merged)
                print(f"{executor} run {turn + 1}: {wall:.2f} s", flush=True)
    finally:
        cluster.close()
    median = {name: [statistics.median(values) for values in measured] for name, measured in results.items()}
    print(f"\n{options.items} items, {options.files} files, -n 4, 2 workers, medians of {options.repeat} runs "
          f"(per item: {options.items * options.repeat} items)\n")
    print("| per item | local | dask | dask − local |\n|---|---|---|---|")
    for index, label in enumerate(("wall / items", "submit → agent start", "agent exit → merged")):
        local, dask = median["local"][index], median["dask"][index]
        print(f"| {label} | {local * 1000:.0f} ms | {dask * 1000:.0f} ms | {(dask - local) * 1000:+.0f} ms |")


if __name__ == "__main__":
    main()
