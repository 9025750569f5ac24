"""Pipelining: how close a batch of waves runs to its lower bound, in barrier and pipeline mode, against make.

Generates WAVES x MODULES items, each running bench/sleeper.py for a duration drawn
from a fixed seed, and runs that same workload with batch-tasks in barrier mode
(the default: each wave waits for the whole wave before), batch-tasks in pipeline
mode (`pipeline: true`: each item waits only for its module's item in the wave
before; skipped when the installed version does not know the setting), and
`make -j N` on the equivalent Makefile with pipeline edges and, as the reference
for barrier mode, with barrier edges. Every run starts in a fresh copy of its
folder; the tools alternate between repetitions so that a noisy machine hurts
all alike; figures are medians.

Each sleeper logs when it started and ended, so a run gives its makespan (first
start to last end) besides its whole-process wall time, both as ratios to the
lower bounds, and each item's dispatch latency: its start minus the moment it
could have started (its dependency's end, or a free slot, whichever came later).

    python bench/pipeline.py [--workload small|stragglers|wide|all] [--tool barrier pipeline make make-barrier] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
WORK = OUT / "pipeline"
RESULTS = OUT / "pipeline-results.txt"
SLEEPER = BENCH / "sleeper.py"
# The sleeper needs no site-packages; -S keeps the interpreter start-up every item pays small.
SLEEPER_ARGV = [sys.executable, "-S", str(SLEEPER)]
# As a normal install runs: bytecode written once and reused (a session may turn that off).
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}

TOOLS = {
    "barrier": "batch-tasks barrier",
    "pipeline": "batch-tasks pipeline",
    # The same, run a second time after unticking everything: each item's duration is known.
    "pipeline-history": "batch-tasks pipeline, with history",
    "make": "make (pipeline edges)",
    # What the barriers themselves cost, apart from any tool's own: the reference for barrier mode.
    "make-barrier": "make (barrier edges)",
}
EDGES = {"barrier": "barrier", "pipeline": "pipeline", "pipeline-history": "pipeline", "make": "pipeline",
         "make-barrier": "barrier"}


@dataclass(frozen=True)
class Workload:
    name: str
    waves: int
    modules: int
    jobs: int
    shortest: float  # seconds
    longest: float
    stragglers: float = 0.0  # this fraction of the items ...
    slowdown: float = 1.0  # ... takes this many times longer

    def describe(self) -> str:
        text = (
            f"{self.name}: {self.waves} waves x {self.modules} modules, -j {self.jobs}, "
            f"durations uniform {self.shortest * 1000:.0f}-{self.longest * 1000:.0f} ms"
        )
        if self.stragglers:
            text += f", {self.stragglers:.0%} of the items {self.slowdown:g}x slower"
        return text


def workloads(straggler_fraction: float, slowdown: float) -> dict[str, Workload]:
    return {
        "small": Workload("small", 4, 8, 4, 0.1, 1.0),
        "stragglers": Workload("stragglers", 4, 8, 4, 0.1, 1.0, straggler_fraction, slowdown),
        # Items of tens of milliseconds: what each tool spends per item shows.
        "wide": Workload("wide", 10, 100, 16, 0.01, 0.05),
    }


def wave_name(wave: int) -> str:
    return f"w{wave + 1}"  # also its heading's slug


def module_name(module: int) -> str:
    return f"m{module:03d}"


def draw_durations(workload: Workload, seed: int) -> dict[tuple[int, int], float]:
    """Seconds per (wave, module); the stragglers are an exact count, so a small batch has some."""
    rng = random.Random(seed)
    keys = [(w, m) for w in range(workload.waves) for m in range(workload.modules)]
    durations = {key: round(rng.uniform(workload.shortest, workload.longest), 4) for key in keys}
    if workload.stragglers:
        count = max(1, round(workload.stragglers * len(keys)))
        for key in rng.sample(keys, count):
            durations[key] = round(durations[key] * workload.slowdown, 4)
    return durations


# --- lower bounds -------------------------------------------------------------------------


def longest_chain(durations: dict[tuple[int, int], float], workload: Workload) -> float:
    """With pipeline edges the chains are per module: the critical path is the longest one."""
    return max(sum(durations[w, m] for w in range(workload.waves)) for m in range(workload.modules))


def pipeline_bound(durations: dict[tuple[int, int], float], workload: Workload) -> float:
    return max(longest_chain(durations, workload), sum(durations.values()) / workload.jobs)


def barrier_bound(durations: dict[tuple[int, int], float], workload: Workload) -> float:
    """With barriers each wave takes at least its longest item, and at least its work spread over N."""
    total = 0.0
    for w in range(workload.waves):
        wave = [durations[w, m] for m in range(workload.modules)]
        total += max(max(wave), sum(wave) / workload.jobs)
    return total


# --- the work folders -----------------------------------------------------------------------


def task_md(workload: Workload, pipeline: bool) -> str:
    command = json.dumps([*SLEEPER_ARGV, "{module}", "{group}"])  # JSON is YAML
    lines = ["---", "agent: command", f"command: {command}"]
    if pipeline:
        lines.append("pipeline: true")
    lines += ["---", f"# Pipeline bench: {workload.describe()}"]
    for w in range(workload.waves):
        lines += ["", f"## {wave_name(w)}"]
        lines += [f"- [ ] {module_name(m)}: wave {w + 1} of module {m}" for m in range(workload.modules)]
    return "\n".join(lines) + "\n"


def makefile(workload: Workload, barrier: bool) -> str:
    """Pipeline edges: each target waits for its module's target in the wave before.
    Barrier edges: each waits for every target of the wave before, listed once per wave in a variable."""
    recipe = " ".join(SLEEPER_ARGV)
    lines = []
    for w in range(workload.waves):
        targets = [f"out/{wave_name(w)}-{module_name(m)}" for m in range(workload.modules)]
        lines.append(f"{wave_name(w).upper()} := {' '.join(targets)}")
    lines += [".PHONY: all", f"all: $({wave_name(workload.waves - 1).upper()})"]
    for w in range(workload.waves):
        for m in range(workload.modules):
            if not w:
                prerequisite = ""
            elif barrier:
                prerequisite = f" $({wave_name(w - 1).upper()})"
            else:
                prerequisite = f" out/{wave_name(w - 1)}-{module_name(m)}"
            lines += [f"out/{wave_name(w)}-{module_name(m)}:{prerequisite}", f"\t@{recipe} {module_name(m)} {wave_name(w)}"]
    return "\n".join(lines) + "\n"


def make_template(folder: Path, tool: str, workload: Workload, durations: dict) -> None:
    """The folder every run of one tool on one workload is copied from."""
    folder.mkdir(parents=True)
    (folder / "out").mkdir()
    keyed = {f"{wave_name(w)}:{module_name(m)}": seconds for (w, m), seconds in durations.items()}
    (folder / "durations.json").write_text(json.dumps(keyed))
    if tool.startswith("make"):
        (folder / "Makefile").write_text(makefile(workload, barrier=EDGES[tool] == "barrier"))
    else:
        (folder / "task.md").write_text(task_md(workload, pipeline=tool.startswith("pipeline")))


# --- running ----------------------------------------------------------------------------------

def command(tool: str, jobs: int) -> list[str]:
    if tool.startswith("make"):
        return ["make", "-j", str(jobs), "-f", "Makefile"]
    return [sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)]


@dataclass
class Run:
    wall: float  # seconds, whole process
    cpu: float  # seconds of CPU, the tool's and its sleepers': what contention does not inflate
    times: dict[tuple[int, int], tuple[float, float]]  # (wave, module) -> (start, end), from the sleepers

    @property
    def makespan(self) -> float:
        return max(end for _, end in self.times.values()) - min(start for start, _ in self.times.values())


def run_once(template: Path, tool: str, workload: Workload) -> Run:
    folder = template.with_name(template.name + "-run")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template, folder)
    if tool == "pipeline-history":
        # A first run records every item's duration; then everything is unticked, to run again.
        subprocess.run(command(tool, workload.jobs), cwd=folder, capture_output=True, check=True, env=ENVIRONMENT)
        taskfile = folder / "task.md"
        taskfile.write_text(taskfile.read_text().replace("- [x] ", "- [ ] "))
        (folder / "times.log").unlink()
    cpu_before = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(command(tool, workload.jobs), cwd=folder, capture_output=True, text=True, env=ENVIRONMENT)
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    if result.returncode != 0:
        raise SystemExit(f"{TOOLS[tool]} failed in {folder}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    times = read_times(folder / "times.log")
    if len(times) != workload.waves * workload.modules:
        raise SystemExit(f"{TOOLS[tool]} ran {len(times)} of {workload.waves * workload.modules} items in {folder}")
    shutil.rmtree(folder)
    return Run(wall, cpu, times)


def children_cpu() -> float:
    """User and system CPU of every finished process this script started, and of theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_times(log: Path) -> dict[tuple[int, int], tuple[float, float]]:
    times = {}
    for line in log.read_text().splitlines():
        wave, module, start, end = line.split()
        times[int(wave[1:]) - 1, int(module[1:])] = (float(start), float(end))
    return times


def dispatch_latencies(run: Run, edges: str, jobs: int) -> list[float]:
    """For each item after the first wave: its start minus the moment it could have started.

    That moment is its dependency's end (pipeline edges: its module's item in the wave
    before; barrier: the last end of the wave before) or, when all N slots were taken
    then, the moment one freed: the N-th latest end among the items that started
    before it. What is left is the tool's own delay, plus the sleeper's interpreter
    start-up and exit, which every tool pays alike.
    """
    wave_end = {}
    for (w, _), (_, end) in run.times.items():
        wave_end[w] = max(end, wave_end.get(w, end))
    latest_ends: list[float] = []  # min-heap: the N latest ends among the items started so far
    latencies = []
    for (w, m), (start, end) in sorted(run.times.items(), key=lambda item: item[1][0]):
        if w:
            dependency = run.times[w - 1, m][1] if edges == "pipeline" else wave_end[w - 1]
            slot_free = latest_ends[0] if len(latest_ends) == jobs else dependency
            latencies.append(start - max(dependency, slot_free))
        heapq.heappush(latest_ends, end)
        if len(latest_ends) > jobs:
            heapq.heappop(latest_ends)
    return latencies


def run_alternating(templates: dict[str, Path], workload: Workload, repeat: int) -> dict[str, list[Run]]:
    """Every tool once per repetition, starting with a different one each time."""
    tools = list(templates)
    runs: dict[str, list[Run]] = {tool: [] for tool in tools}
    for repetition in range(repeat):
        shift = repetition % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            runs[tool].append(run_once(templates[tool], tool, workload))
            print(f"  {workload.name} #{repetition + 1} {TOOLS[tool]}: {runs[tool][-1].wall:.2f}s", file=sys.stderr)
    return runs


def pipeline_supported() -> bool:
    """Whether the installed batch-tasks knows `pipeline:`: a dry run of a tiny task.md says."""
    folder = WORK / "probe"
    folder.mkdir(parents=True)
    (folder / "task.md").write_text("---\nagent: command\ncommand: [\"true\"]\npipeline: true\n---\n# Probe\n\n## a\n- [ ] m: probe\n")
    result = subprocess.run(
        [sys.executable, "-m", "doit", "run-batch", "--dry-run"], cwd=folder, capture_output=True, text=True
    )
    shutil.rmtree(folder)
    if result.returncode == 0:
        return True
    if result.returncode == 3 and "unknown" in result.stderr and "'pipeline'" in result.stderr:
        return False
    raise SystemExit(f"probing for pipeline mode failed:\n{result.stdout}{result.stderr}")


@dataclass(frozen=True)
class SleeperCost:
    """What one sleeper costs whatever tool runs it: part of every item's latency and CPU."""

    startup: float  # seconds from its launch to its first logged moment
    exit: float  # seconds from its last logged moment to its exit
    cpu: float  # seconds of CPU


def sleeper_cost(samples: int = 10) -> SleeperCost:
    """Medians over sleepers launched one at a time by this script, with nothing to sleep."""
    folder = WORK / "sleeper-cost"
    (folder / "out").mkdir(parents=True)
    (folder / "durations.json").write_text('{"w1:m000": 0}')
    startups, exits, cpus = [], [], []
    for _ in range(samples):
        cpu_before = children_cpu()
        launched = time.time()
        subprocess.run([*SLEEPER_ARGV, "m000", "w1"], cwd=folder, check=True)
        exited = time.time()
        cpus.append(children_cpu() - cpu_before)
        start, end = read_times(folder / "times.log")[0, 0]
        startups.append(start - launched)
        exits.append(exited - end)
        (folder / "times.log").unlink()
    shutil.rmtree(folder)
    return SleeperCost(statistics.median(startups), statistics.median(exits), statistics.median(cpus))


# --- reporting --------------------------------------------------------------------------------


def percentile_95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def report(workload: Workload, durations: dict, runs: dict[str, list[Run]], sleeper: SleeperCost) -> list[str]:
    pipe, barrier = pipeline_bound(durations, workload), barrier_bound(durations, workload)
    items = workload.waves * workload.modules
    repeat = len(next(iter(runs.values())))
    lines = [
        workload.describe(),
        f"  lower bounds: pipeline {pipe:.2f}s (longest module chain {longest_chain(durations, workload):.2f}s, "
        f"work/N {sum(durations.values()) / workload.jobs:.2f}s); barrier {barrier:.2f}s",
        # Not in the ratios, but on a small machine it can be the real floor, for any tool.
        f"  the sleepers' own CPU: {items} x {sleeper.cpu * 1000:.0f} ms = at least "
        f"{items * sleeper.cpu / os.cpu_count():.2f}s on {os.cpu_count()} cores",
        f"  median of {repeat}; /pipe and /barr: ratio to the pipeline and the barrier bound",
        f"  {'':22} {'makespan':>8} {'/pipe':>6} {'/barr':>6} {'wall':>7} {'/pipe':>6} {'/barr':>6}"
        f"  {'latency median':>14} {'p95':>8} {'samples':>7}  {'CPU/item':>8}",
    ]
    for tool, tool_runs in runs.items():
        makespan = statistics.median(run.makespan for run in tool_runs)
        wall = statistics.median(run.wall for run in tool_runs)
        cpu = statistics.median(run.cpu for run in tool_runs) / items
        latencies = [x for run in tool_runs for x in dispatch_latencies(run, EDGES[tool], workload.jobs)]
        lines.append(
            f"  {TOOLS[tool]:22} {makespan:7.2f}s {makespan / pipe:6.2f} {makespan / barrier:6.2f}"
            f" {wall:6.2f}s {wall / pipe:6.2f} {wall / barrier:6.2f}"
            f"  {statistics.median(latencies) * 1000:11.1f} ms {percentile_95(latencies) * 1000:5.1f} ms"
            f" {len(latencies):7}  {cpu * 1000:5.1f} ms"
        )
    return lines


def load_average() -> str:
    """Other work on the machine shows in every figure; say how much there was."""
    return "/".join(f"{load:.1f}" for load in os.getloadavg())


def batch_tasks_source() -> str:
    """The batch-tasks the runs import (PYTHONPATH may point elsewhere), and its commit."""
    found = subprocess.run(
        [sys.executable, "-c", "import batch_tasks; print(batch_tasks.__file__)"],
        cwd=WORK,  # as the runs do: from here, a batch_tasks/ in the current folder is not on the path
        capture_output=True,
        text=True,
        check=True,
    )
    folder = Path(found.stdout.strip()).parent
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=folder, capture_output=True, text=True)
    return f"batch-tasks {commit.stdout.strip() or 'of unknown commit'} from {folder}"


def machine() -> str:
    make_version = subprocess.run(["make", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return (
        f"{datetime.datetime.now().isoformat(timespec='seconds')} on {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {make_version}, {batch_tasks_source()}"
    )


def emit(lines: list[str]) -> None:
    """To stdout, and appended to the results file, so runs on other days can be compared."""
    print("\n".join(lines), flush=True)
    with RESULTS.open("a") as stream:
        stream.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["small", "stragglers", "wide", "all"], default="all")
    parser.add_argument("--tool", nargs="+", choices=list(TOOLS), default=list(TOOLS), help="default: all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--straggler-fraction", type=float, default=0.05, help="of the stragglers workload's items")
    parser.add_argument("--slowdown", type=float, default=5.0, help="how many times longer a straggler takes")
    options = parser.parse_args()
    catalogue = workloads(options.straggler_fraction, options.slowdown)
    chosen = list(catalogue.values()) if options.workload == "all" else [catalogue[options.workload]]

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    tools = list(dict.fromkeys(options.tool))
    header = ["", f"== {machine()}"]
    if "pipeline" in tools and not pipeline_supported():
        tools.remove("pipeline")
        header.append("pipeline mode unavailable: this batch-tasks does not know `pipeline: true`; skipped")
        if not tools:
            shutil.rmtree(WORK)
            raise SystemExit(header[-1])
    sleeper = sleeper_cost()
    header.append(
        f"one sleeper, whatever the tool: start-up {sleeper.startup * 1000:.1f} ms, exit {sleeper.exit * 1000:.1f} ms "
        f"(both inside every latency), CPU {sleeper.cpu * 1000:.1f} ms (inside every CPU/item)"
    )
    emit(header)

    for workload in chosen:
        durations = draw_durations(workload, options.seed)
        templates = {tool: WORK / workload.name / tool for tool in tools}
        for tool, folder in templates.items():
            make_template(folder, tool, workload, durations)
        load_before = load_average()
        runs = run_alternating(templates, workload, options.repeat)
        load = f"  load average (1/5/15 min) before {load_before}, after {load_average()}"
        emit([*report(workload, durations, runs, sleeper), load])
    shutil.rmtree(WORK)


if __name__ == "__main__":
    main()
