"""Mutation score of the modules where decisions are made: `doit mutate` (or `python bench/mutation.py`).

mutmut (configured in pyproject.toml's [tool.mutmut]) makes small changes to those modules
(a comparison flipped, a condition dropped, a number off by one, an early return) and runs
the fast tests on plain data that cover each changed function; a change no test notices
survives. Each module's score is the share of its mutants that were caught (killed, or
timed out), leaving out the equivalent ones: changes that cannot alter behaviour, listed with
why in bench/mutation-equivalent.txt. The table is written to bench/mutation.md; a run of some
modules (`python bench/mutation.py dispatcher`) replaces their rows only, each row saying the
commit it was measured at.

Not part of the suite's time: it takes minutes (`--max-children` sets how many at once).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = Path(__file__).with_name("mutation-equivalent.txt")
TABLE = Path(__file__).with_name("mutation.md")
CAUGHT = {"killed", "timeout"}
RESULT = re.compile(r"^\s*(batch_tasks\.[\w.]+?)\.(x\S*__mutmut_\d+):\s*(.+?)\s*$")


def equivalent_mutants() -> dict[str, str]:
    """`module.mutant  why`, one a line, from bench/mutation-equivalent.txt."""
    listed = {}
    for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition(" ")
            listed[name] = why.strip()
    return listed


def caught_though_listed(results: str, equivalent: dict[str, str]) -> list[str]:
    """Mutants listed as equivalent that a test caught: the list names them by an old number."""
    return [f"{m[1]}.{m[2]}" for line in results.splitlines()
            if (m := RESULT.match(line)) and m[3] in CAUGHT and f"{m[1]}.{m[2]}" in equivalent]


def scores(results: str, equivalent: dict[str, str]) -> dict[str, Counter]:
    by_module: dict[str, Counter] = defaultdict(Counter)
    for line in results.splitlines():
        if match := RESULT.match(line):
            module, mutant, status = match.groups()
            name = f"{module}.{mutant}"
            by_module[module]["equivalent" if name in equivalent else status] += 1
    return by_module


HEADER = ["| module | mutants | equivalent | caught | survived | score | measured at |", "|---|---|---|---|---|---|---|"]


def rows(by_module: dict[str, Counter], commit: str) -> list[str]:
    made = []
    for module, counts in sorted(by_module.items()):
        total = sum(counts.values()) - counts["equivalent"]
        caught = sum(counts[status] for status in CAUGHT)
        score = f"{100 * caught / total:.0f} %" if total else "-"
        made.append(f"| `{module}` | {sum(counts.values())} | {counts['equivalent']} | {caught} | {total - caught} "
                    f"| {score} | {commit} |")
    return made


def kept_from_last(measured: set[str]) -> tuple[list[str], list[str]]:
    """The table's rows and survivors of the modules not measured this time, as last written."""
    text = TABLE.read_text(encoding="utf-8") if TABLE.exists() else ""
    kept_rows = [line for line in text.splitlines()
                 if (m := re.match(r"\| `(batch_tasks\.[\w.]+)` \|", line)) and m[1] not in measured]
    kept_survivors = [line for line in text.splitlines()
                      if (m := re.match(r"- `(batch_tasks\.[\w.]+?)\.x", line)) and m[1] not in measured]
    return kept_rows, kept_survivors


def mutated_modules() -> dict[str, str]:
    """pyproject.toml's only_mutate, each module by its own name (dispatcher) and its whole one."""
    paths = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]["only_mutate"]
    return {Path(path).stem: path.removesuffix(".py").replace("/", ".") for path in paths}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="only these (e.g. staleness), of pyproject.toml's only_mutate")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    options = parser.parse_args()
    known = mutated_modules()
    if unknown := [module for module in options.modules if module not in known]:
        parser.error(f"not in pyproject.toml's only_mutate: {', '.join(unknown)}")
    modules = [known[module] for module in options.modules]
    mutmut = [sys.executable, "-m", "mutmut"]
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # mutmut's copy of the code, made anew
    subprocess.run([*mutmut, "run", "--max-children", str(options.max_children),
                    *(f"{module}.*" for module in modules)],
                   cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    equivalent = equivalent_mutants()
    by_module = scores(results, equivalent)
    if options.modules:  # the others were not tested this time
        wanted = set(modules)
        by_module = {module: counts for module, counts in by_module.items() if module in wanted}
        results = "\n".join(line for line in results.splitlines() if (m := RESULT.match(line)) and m[1] in wanted)
    survivors = [f"- `{m[1]}.{m[2]}` ({m[3]})" for line in results.splitlines()
                 if (m := RESULT.match(line)) and m[3] not in CAUGHT and f"{m[1]}.{m[2]}" not in equivalent]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    measured = rows(by_module, commit)
    kept_rows, kept_survivors = kept_from_last(set(by_module)) if options.modules else ([], [])
    all_survivors = sorted(kept_survivors + survivors)
    TABLE.write_text("# Mutation scores\n\nWritten by `doit mutate` (bench/mutation.py). A mutant listed as equivalent "
                     "is named by its function and number: after a change to a function,\n"
                     "bench/mutation-equivalent.txt is to be read again against `mutmut show`.\n\n"
                     + "\n".join(HEADER + sorted(kept_rows + measured)) + "\n"
                     + ("\nSurvivors:\n\n" + "\n".join(all_survivors) + "\n" if all_survivors else ""),
                     encoding="utf-8")
    print("\n".join(HEADER + measured))
    print(f"{len(survivors)} survivors (`mutmut show NAME` shows one); written to {TABLE.relative_to(ROOT)}")
    for name in caught_though_listed(results, equivalent):
        print(f"{name} is listed as equivalent but was caught: renumber {EQUIVALENT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
