"""Landing: the merge queue, serial against speculative and batched, side by side in one run.

Each case is a batch of isolated items in a fresh git repository; each item's agent (a sleep)
writes a file of its own, and the same `check` runs on the item's own work and on each merged
state (a sleep, or a CPU-bound loop). A case runs with the serial queue (`check_parallel: 1`,
`merge_batch: 1`: one merged-state check at a time, one item each) and with the queue as it
comes (`check_parallel`: the number of cores, `merge_batch: 4`), and the same with `own_check:
false` (**no-own**: an item's work checked only on merged states), alternating, each in a fresh
copy; figures are medians of the whole `doit run-batch` process (its wall time), with:

- the bound: what the batch takes with checks free to overlap: the items' agents and own checks
  in waves of -n, then the last one's merged-state check (for a CPU-bound check on fewer cores
  than -n, the CPU time of all the checks that must run, over the cores, when that is more);
- checks per item: the merged-state checks run (reruns included), over the items;
- for the failing case, one item's first work fails the check beside any other item's work
  (its own passes): its agent is run again.

`--today PATH` adds the code at PATH (a checkout of batch-tasks before this queue, e.g. made
with `git archive`) as a third column, run the same way without the new settings: doit finds
its commands by the entry points of PATH's pyproject.toml (its modules may have moved since),
written where they are found before the installed package's.

    python bench/landing.py [--case twelve twelve-failing three cpu] [--repeat 1] [--today PATH]
                            [--mode serial queue no-own]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "out" / "landing"
MODES = {"serial": {"check_parallel": 1, "merge_batch": 1}, "queue": {"merge_batch": 4},
         "no-own": {"merge_batch": 4, "own_check": "false"}}

AGENT = """
import os, sys, time
module, seconds = sys.argv[1], float(sys.argv[2])
time.sleep(seconds)
os.makedirs("items", exist_ok=True)
with open(f"items/{module}.txt", "w") as out:
    out.write(module + "\\n")
bad = f"items/{module}.bad"
if module == os.environ.get("LANDING_BAD") and os.environ["BATCH_ATTEMPT"] == "1":
    open(bad, "w").close()
elif os.path.exists(bad):
    os.remove(bad)
"""

CHECK = """
import glob, os, sys, time
seconds, kind = float(sys.argv[1]), sys.argv[2]
where = os.environ["BATCH_WORKTREE"]  # the queue's worktrees; before it, the runner's own
merged = os.path.basename(os.path.dirname(where)) == "checks" or os.path.basename(where) == "integration"
with open(os.environ["LANDING_LOG"], "a") as log:
    log.write(("merged" if merged else "own") + "\\n")
if kind == "cpu":
    spent = time.process_time() + seconds
    while time.process_time() < spent:
        sum(range(10000))
else:
    time.sleep(seconds)
sys.exit(1 if glob.glob("items/*.bad") and len(glob.glob("items/*.txt")) > 1 else 0)
"""


@dataclass(frozen=True)
class Case:
    name: str
    items: int
    jobs: int
    agent_s: float
    check_s: float
    check_kind: str = "sleep"  # or "cpu"
    bad: str = ""  # the item whose first work fails the merged check

    def bound(self, cores: int) -> float:
        waves = math.ceil(self.items / self.jobs)
        overlapping = waves * (self.agent_s + self.check_s) + self.check_s
        if self.check_kind == "cpu":  # each item's own check, and at least one merged-state check
            return max(overlapping, (self.items + 1) * self.check_s / min(cores, self.jobs) + self.agent_s)
        return overlapping  # a failing item's redo is not in it: the targets allow for it

    def describe(self) -> str:
        return (f"{self.name}: {self.items} items, -n {self.jobs}, agents {self.agent_s:g} s, "
                f"a {self.check_s:g} s {'CPU-bound ' if self.check_kind == 'cpu' else ''}check"
                + (", one item's first work fails the merged check" if self.bad else ""))


CASES = {
    "twelve": Case("twelve", 12, 4, 1.0, 4.0),
    "twelve-slower": Case("twelve-slower", 12, 4, 2.0, 5.0),
    "twelve-failing": Case("twelve-failing", 12, 4, 1.0, 4.0, bad="m05"),
    "three": Case("three", 3, 3, 1.0, 1.0),
    "cpu": Case("cpu", 16, 4, 0.5, 1.0, check_kind="cpu"),
}


def make_folder(case: Case, mode: str, into: Path) -> Path:
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    (into / "agent.py").write_text(AGENT)
    (into / "check.py").write_text(CHECK)
    settings = {"agent": "command", "isolation": "worktree", "parallel": case.jobs,
                "command": json.dumps([sys.executable, "-S", str(into / "agent.py"), "{module}", str(case.agent_s)]),
                "check": json.dumps([sys.executable, "-S", str(into / "check.py"), str(case.check_s), case.check_kind]),
                "retry_base": "1s", **MODES.get(mode, {})}
    repo = into / "repo"
    repo.mkdir()
    items = "".join(f"- [ ] m{n:02d}: write items/m{n:02d}.txt\n" for n in range(case.items))
    (repo / "task.md").write_text("---\n" + "".join(f"{k}: {v}\n" for k, v in settings.items())
                                  + "---\n# Landing\n## Items\n" + items)
    (repo / "README").write_text("a repository\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"),
                 ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "start")):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


def entry_points_of(checkout: Path) -> Path:
    """A folder holding a distribution's metadata with the entry points of `checkout`'s
    pyproject.toml: put before site-packages, doit loads that code's commands, not the installed."""
    project = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]
    info = WORK / "today-site" / f"batch_tasks-{project['version']}.dist-info"
    shutil.rmtree(info.parent, ignore_errors=True)
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: batch-tasks\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {where}\n" for name, where in points.items()) + "\n"
        for group, points in project["entry-points"].items()))
    return info.parent


def run_once(case: Case, mode: str, today: Path | None = None) -> dict:
    repo = make_folder(case, mode, WORK / f"{case.name}-{mode}")
    log = repo.parent / "checks.log"
    env = {**os.environ, "LANDING_LOG": str(log), "LANDING_BAD": case.bad}
    if mode == "today":
        env["PYTHONPATH"] = os.pathsep.join((str(today), str(entry_points_of(today))))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{case.name} ({mode}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    kinds = log.read_text().split()
    return {"wall": wall, "merged_checks": kinds.count("merged"), "own_checks": kinds.count("own")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=["twelve", "twelve-failing", "three", "cpu"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--mode", nargs="+", choices=sorted(MODES), default=list(MODES),
                        help="the queues to run (serial is the reference of the ratios: keep it)")
    parser.add_argument("--today", type=Path, help="a checkout of batch-tasks before this queue, run beside it")
    args = parser.parse_args()
    modes = [*args.mode, *(["today"] if args.today else [])]
    cores = os.cpu_count() or 1
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}; {cores} cores")
    for name in args.case:
        case = CASES[name]
        runs: dict[str, list[dict]] = {mode: [] for mode in modes}
        for _ in range(args.repeat):
            for mode in modes:  # alternating: a noisy machine hurts all alike
                runs[mode].append(run_once(case, mode, args.today))
        print(case.describe())
        bound = case.bound(cores)
        walls = {mode: statistics.median(run["wall"] for run in results) for mode, results in runs.items()}
        for mode, results in runs.items():
            wall = walls[mode]
            checks = statistics.median(run["merged_checks"] for run in results) / case.items
            own = statistics.median(run["own_checks"] for run in results) / case.items
            print(f"  {mode:7} makespan {wall:6.1f} s  {wall / bound:4.2f} x the bound ({bound:.1f} s)  "
                  + (f"{wall / walls['serial']:4.2f} x serial" if "serial" in walls else "")
                  + (f"  {wall / walls['today']:4.2f} x today" if "today" in walls else "")
                  + f"  checks per item: merged states {checks:.2f}, own {own:.2f}")
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
