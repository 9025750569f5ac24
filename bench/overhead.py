"""What batch-tasks adds to doit, for a big batch: whole-process timings, medians, ratios.

For each size, generates a task.md of SIZE / MODULES groups x MODULES items and,
beside it, a dodo.py of the same count of bare doit tasks with file targets and
the same group-after-group dependencies. Then times, alternating the two so that
a noisy machine hurts both alike: listing, explaining what would run, and a run
with nothing left to do (with each process's peak memory, RSS).

    python bench/overhead.py [--sizes 1000 10000] [--modules 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "overhead"

BARE_DODO = '''\
DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": ".doit.db", "verbosity": 0}}


def touch(target):
    open(target, "w").close()


def task_g():
    for g in range({groups}):
        for m in range({modules}):
            target = f"out/{{g}}-{{m}}"
            yield {{
                "basename": f"g{{g}}",
                "name": f"m{{m}}",
                "actions": [(touch, [target])],
                "targets": [target],
                "file_dep": ["dodo.py"],
                "task_dep": [f"g{{g - 1}}"] if g else [],
            }}
'''


def make_batch(folder: Path, groups: int, modules: int) -> None:
    lines = ["---", "agent: command", "command: [\"true\"]", "---", f"# {groups} x {modules}"]
    for g in range(groups):
        lines += ["", f"## Group {g}"]
        lines += [f"- [ ] mod{m}: do step {g} of module {m}" for m in range(modules)]
    folder.mkdir(parents=True)
    (folder / "task.md").write_text("\n".join(lines) + "\n")
    (folder / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")


def make_bare(folder: Path, groups: int, modules: int) -> None:
    folder.mkdir(parents=True)
    (folder / "out").mkdir()
    (folder / "dodo.py").write_text(BARE_DODO.format(groups=groups, modules=modules))


PEAK_RSS: dict[str, list[float]] = {}  # MiB, by the folder and arguments of each command


def doit(folder: Path, *args: str) -> float:
    """The wall time of `doit ARGS` in FOLDER; its peak RSS goes to PEAK_RSS."""
    started = time.perf_counter()
    with open(folder / "out.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=folder, stdout=log, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"doit {' '.join(args)} failed in {folder}:\n{(folder / 'out.log').read_text()[-3000:]}")
    PEAK_RSS.setdefault(f"{folder} {args}", []).append(usage.ru_maxrss / 1024)  # Linux: KiB
    return elapsed


def median_pair(repeat: int, ours, reference) -> tuple[float, float]:
    mine, theirs = [], []
    for _ in range(repeat):
        mine.append(ours())
        theirs.append(reference())
    return statistics.median(mine), statistics.median(theirs)


def peak(folder: Path, *args: str) -> float:
    return max(PEAK_RSS[f"{folder} {args}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--modules", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    for count in options.sizes:
        measure(max(count // options.modules, 1), min(options.modules, count), options.repeat)


def measure(groups: int, modules: int, repeat: int) -> None:
    count = groups * modules
    shutil.rmtree(OUT, ignore_errors=True)
    batch, bare = OUT / "batch", OUT / "bare"
    make_batch(batch, groups, modules)
    make_bare(bare, groups, modules)

    print(f"{count} items ({groups} groups x {modules} modules), median of {repeat} runs", flush=True)
    rows = []
    listing = median_pair(repeat, lambda: doit(batch, "list", "--all"), lambda: doit(bare, "list", "--all"))
    rows.append(("doit list --all (nothing run yet)", *listing))
    dry = median_pair(
        repeat,
        lambda: doit(batch, "run-batch", "--dry-run"),
        lambda: doit(bare, "list", "--all", "--status"),
    )
    rows.append(("run-batch --dry-run  vs  list --all --status", *dry))

    first = doit(batch, "run-batch", "-n", "8")
    first_bare = doit(bare, "-n", "8", "-P", "thread")
    print(f"first full run: batch-tasks {first:.1f}s, bare doit {first_bare:.1f}s (one process per item vs none)")
    # The first command after a run: its ticks changed task.md, so it shows whether the plan cache survived them.
    rows.append(("first no-op right after the run", doit(batch, "run-batch"), doit(bare)))
    noop = median_pair(repeat, lambda: doit(batch, "run-batch"), lambda: doit(bare))
    rows.append(("no-op run, all done", *noop))
    rows.append(("  its peak RSS, MiB", peak(batch, "run-batch"), peak(bare)))
    listing_done = median_pair(repeat, lambda: doit(batch, "list", "--all"), lambda: doit(bare, "list", "--all"))
    rows.append(("doit list --all (all done)", *listing_done))

    print(f"{'':46} {'batch-tasks':>12} {'bare doit':>10} {'ratio':>6}")
    for name, mine, theirs in rows:
        unit = "" if "RSS" in name else "s"
        print(f"{name:46} {mine:11.3f}{unit:1} {theirs:9.3f}{unit:1} {mine / theirs:6.2f}", flush=True)


if __name__ == "__main__":
    main()
