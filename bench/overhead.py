"""What batch-tasks adds to doit, for a big batch: whole-process timings, medians, ratios.

For each size, generates a task.md of SIZE / MODULES groups x MODULES items and,
beside it, a dodo.py of the same count of bare doit tasks with file targets and
the same group-after-group dependencies. Then times, alternating the two so that
a noisy machine hurts both alike: listing, explaining what would run, and a run
with nothing left to do (with each process's peak memory, RSS, and the time its
summary says it took, against the process's own), and the no-op beside the floor in the same
loop: ninja and make over the same targets, all up to date, doit's own start (`doit list`
of a one-task dodo.py), which any doit command pays, and a bare Python walk that lstats
every item's record, which any no-op that trusts no clock of its own must do. Python processes run as a normal
install does, writing and reusing their bytecode (PYTHONDONTWRITEBYTECODE, which a
session may set, is dropped from their environment).

    python bench/overhead.py [--sizes 1000 10000] [--modules 100] [--repeat 5] [--baseline PATH] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "overhead"
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
SUMMARY_TIME = re.compile(rb"already done in (?:(\d+)m)?([0-9.]+)s")
SAID: list[float] = []  # the no-op summaries' times over the processes' own, as they come
# The least a no-op must look at: every item's result record, by lstat, from the group's folder.
WALK = """import os, sys
for group in os.listdir(sys.argv[1]):
    fd = os.open(os.path.join(sys.argv[1], group), os.O_RDONLY | os.O_DIRECTORY)
    for item in os.listdir(fd):
        os.lstat(item + "/result.json", dir_fd=fd)
"""

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


def make_floor(folder: Path, groups: int, modules: int) -> None:
    """The same targets for ninja and for make (each group after the one before, as the
    batch's), and a dodo.py of one task: the floor of a no-op, built by `build_floor`."""
    folder.mkdir(parents=True)
    (folder / "out").mkdir()
    ninja, make = ["rule touch", "  command = touch $out", ""], [".PHONY: all", "all: " + " ".join(f"g{g}" for g in range(groups))]
    for g in range(groups):
        outputs = [f"out/{g}-{m}" for m in range(modules)]
        after = f" || g{g - 1}" if g else ""
        ninja += [f"build {output}: touch task.md{after}" for output in outputs] + [f"build g{g}: phony {' '.join(outputs)}"]
        make += [f".PHONY: g{g}", f"g{g}: {' '.join(outputs)}"]
        make += [f"{output}: task.md{f' | g{g - 1}' if g else ''}\n\ttouch $@" for output in outputs]
    (folder / "build.ninja").write_text("\n".join(ninja) + "\n")
    (folder / "Makefile").write_text("\n".join(make) + "\n")
    (folder / "task.md").write_text("")
    (folder / "dodo.py").write_text('def task_one():\n    return {"actions": None}\n')


def build_floor(folder: Path) -> None:
    for build in (["ninja", "-j", "8"], ["make", "-j", "8"]):
        subprocess.run(build, cwd=folder, check=True, stdout=subprocess.DEVNULL)


def make_bare(folder: Path, groups: int, modules: int) -> None:
    folder.mkdir(parents=True)
    (folder / "out").mkdir()
    (folder / "dodo.py").write_text(BARE_DODO.format(groups=groups, modules=modules))


def doit(folder: Path, *args: str, pythonpath: str | None = None) -> tuple[float, float, float]:
    """The wall time, peak RSS (MiB) and CPU time (user+sys) of `doit ARGS` in FOLDER, with
    batch-tasks from PYTHONPATH if given."""
    env = {**ENVIRONMENT, "PYTHONPATH": pythonpath} if pythonpath else ENVIRONMENT
    elapsed, memory, cpu = timed([sys.executable, "-m", "doit", *args], folder, env)
    if args == ("run-batch",) and pythonpath is None and (said := SUMMARY_TIME.search((folder / "out.log").read_bytes())):
        SAID.append((int(said.group(1) or 0) * 60 + float(said.group(2))) / elapsed)
    return elapsed, memory, cpu


def timed(command: list[str], folder: Path, env=ENVIRONMENT) -> tuple[float, float, float]:
    """The wall time, peak RSS (MiB) and CPU time (user+sys) of COMMAND in FOLDER."""
    started = time.perf_counter()
    with open(folder / "out.log", "wb") as log:
        child = subprocess.Popen(command, cwd=folder, stdout=log, stderr=log, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed in {folder}:\n{(folder / 'out.log').read_text()[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # Linux: ru_maxrss in KiB


def medians(repeat: int, *commands) -> list[tuple[float, float, float]]:
    """(median time, largest peak RSS, median CPU) of each command, run in turn REPEAT times."""
    results = [[] for _ in commands]
    for _ in range(repeat):
        for result, command in zip(results, commands):
            result.append(command())
    return [(statistics.median(t for t, _, _ in result), max(m for _, m, _ in result),
             statistics.median(c for _, _, c in result)) for result in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--modules", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=Path, default=OUT, help=f"the folder to work in (default {OUT}); emptied first")
    parser.add_argument(
        "--baseline", metavar="PYTHONPATH", help="also time batch-tasks imported from there (e.g. a clone of main), in the same folder"
    )
    options = parser.parse_args()
    for count in options.sizes:
        measure(options.work, max(count // options.modules, 1), min(options.modules, count), options.repeat, options.baseline)


def measure(work: Path, groups: int, modules: int, repeat: int, baseline: str | None) -> None:
    count = groups * modules
    shutil.rmtree(work, ignore_errors=True)
    batch, bare, floor = work / "batch", work / "bare", work / "floor"
    make_batch(batch, groups, modules)
    make_bare(bare, groups, modules)
    make_floor(floor, groups, modules)
    names = ["batch-tasks", *(["baseline"] if baseline else []), "bare doit"]

    def row(title: str, args: tuple[str, ...], bare_args: tuple[str, ...], times: int = repeat) -> list:
        commands = [lambda: doit(batch, *args)]
        if baseline:
            commands.append(lambda: doit(batch, *args, pythonpath=baseline))
        commands.append(lambda: doit(bare, *bare_args))
        return [title, *medians(times, *commands)]

    print(f"{count} items ({groups} groups x {modules} modules), median of {repeat} runs, "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = [
        row("doit list --all (nothing run yet)", ("list", "--all"), ("list", "--all")),
        row("run-batch --dry-run  vs  list --all --status", ("run-batch", "--dry-run"), ("list", "--all", "--status")),
        # Bare doit's listing: what a dry run is held against (at most 1.5 x its CPU).
        row("run-batch --dry-run  vs  list --all", ("run-batch", "--dry-run"), ("list", "--all")),
    ]
    first, _, _ = doit(batch, "run-batch", "-n", "8")
    first_bare, _, _ = doit(bare, "-n", "8", "-P", "thread")
    build_floor(floor)
    print(f"first full run: batch-tasks {first:.1f}s, bare doit {first_bare:.1f}s (one process per item vs none)")
    # The first command after the run: its ticks changed task.md since each cached its plan
    # (above), so this shows whether a plan cache survives ticks.
    rows.append(row("first no-op right after the run", ("run-batch",), (), times=1))
    SAID.clear()
    noop = row("no-op run, all done", ("run-batch",), ())
    told = f"{statistics.median(SAID):.2f}" if SAID else "-"
    items = next(batch.glob(".batch/*/items"))
    steady, ninja, make, start, python, walk = medians(
        repeat, lambda: doit(batch, "run-batch"), lambda: timed(["ninja"], floor), lambda: timed(["make", "-s"], floor),
        lambda: doit(floor, "list"), lambda: timed([sys.executable, "-c", ""], floor),
        lambda: timed([sys.executable, "-c", WALK, str(items)], floor))
    least = start[2] + walk[2] - python[2]  # any doit command, and a look at every record
    rows += [noop, ["  its peak RSS", *noop[1:]], row("doit list --all (all done)", ("list", "--all"), ("list", "--all"))]

    ratios = ["/bare"] + (["base/bare", "/base"] if baseline else [])
    print(f"{'':46}" + "".join(f"{name:>13}" for name in names) + "".join(f"{name:>10}" for name in ratios))
    for title, *figures in rows:
        memory = "RSS" in title
        lines = [(title, [memory_mib if memory else seconds for seconds, memory_mib, _ in figures], "M" if memory else "s")]
        if not memory:  # CPU: what a busy machine inflates less than wall time
            lines.append(("  its CPU (user+sys)", [cpu for _, _, cpu in figures], "s"))
        for name, values, unit in lines:
            cells = "".join(f"{value:12.3f}{unit}" for value in values)
            shares = [values[0] / values[-1]] + ([values[1] / values[-1], values[0] / values[1]] if baseline else [])
            print(f"{name:46}{cells}" + "".join(f"{share:10.2f}" for share in shares), flush=True)
    print(f"the no-op's summary said it took {told} of its process's wall time (median)", flush=True)
    print(f"the no-op beside the floor, CPU, medians of {repeat} in one loop: batch-tasks {steady[2]:.3f} s, "
          f"ninja {ninja[2]:.3f} s, make {make[2]:.3f} s, doit's own start {start[2]:.3f} s; batch-tasks / ninja "
          f"{steady[2] / ninja[2]:.1f}, doit's start / ninja {start[2] / ninja[2]:.1f}, batch-tasks / doit's start "
          f"{steady[2] / start[2]:.2f}", flush=True)
    print(f"the floor of a no-op on doit: doit's own start and the records' lstats (a bare Python walk {walk[2]:.3f} s, "
          f"less Python's start {python[2]:.3f} s) {least:.3f} s, {least / ninja[2]:.1f} x ninja; batch-tasks / this "
          f"floor {steady[2] / least:.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
