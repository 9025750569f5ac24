"""The report of a big run: its size, the time `doit batch-report` takes, and how long
headless Chromium takes to render it, beside an empty page measured in the same run.

Runs a real `doit run-batch` of GROUPS x MODULES items (the tests' scripted agent: one
in twenty fails once and is retried, a few of the last group fail for good), then
writes its report.
Each rendering is in a fresh Chromium with a new profile (no cache: what a person
opening the file for the first time gets), the report and the empty page alternating
so that a noisy machine hurts both alike. The rendering time is the page's own clock
(performance.now()) at the second animation frame after its load event: its scripts
have run and the charts are drawn.

    python bench/report.py [--groups 10] [--modules 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
OUT = Path(__file__).parent / "out" / "report"
sys.path.insert(0, str(ROOT / "tests"))

from chromium import Chromium, executable  # noqa: E402

DRAWN = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"
BARS = "document.querySelectorAll('#timeline rect.bar').length"


def make_batch(folder: Path, groups: int, modules: int) -> None:
    agent = ROOT / "tests" / "agents" / "scripted.py"
    lines = ["---", "agent: command", f"command: [{json.dumps(sys.executable)}, {json.dumps(str(agent))}]",
             "transient_exit_codes: [75]", "retry_base: 0.1s", "retry_cap: 0.2s", "---", f"# {groups} x {modules}"]
    behaviour = {}
    for g in range(groups):
        lines += ["", f"## Group {g}"]
        for m in range(modules):
            lines.append(f"- [ ] mod{m}: do step {g} of module {m}")
            if m % 20 == 7:
                behaviour[f"group-{g}:mod{m}"] = {"attempts": {"1": {"exit": 75}}}
            elif m % 50 == 13 and g == groups - 1:  # in the last group, so that every group runs
                behaviour[f"group-{g}:mod{m}"] = {"exit": 2, "print": "it went wrong\n" * 5}
    folder.mkdir(parents=True)
    (folder / "task.md").write_text("\n".join(lines) + "\n")
    (folder / "behaviour.json").write_text(json.dumps(behaviour))


def doit(folder: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "doit", *args], cwd=folder, capture_output=True, text=True)
    return time.perf_counter() - started


def render_ms(page: Path) -> tuple[float, int, list[str]]:
    with Chromium() as browser:
        browser.open(page)
        drawn = browser.evaluate(DRAWN)
        return drawn, browser.evaluate(BARS) or 0, browser.errors()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--modules", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    if executable() is None:
        raise SystemExit("needs chromium on PATH (apt-get install chromium)")
    shutil.rmtree(OUT, ignore_errors=True)
    batch = OUT / "batch"
    make_batch(batch, options.groups, options.modules)
    count = options.groups * options.modules

    took = doit(batch, "run-batch", "-n", "8", "--continue")
    print(f"{count} items: run-batch -n 8 took {took:.1f}s")
    writing = statistics.median(doit(batch, "batch-report", "-o", "report.html") for _ in range(options.repeat))
    report = batch / "report.html"
    data = json.loads(subprocess.run([sys.executable, "-m", "doit", "batch-report", "--format", "json", "-o", "-"],
                                     cwd=batch, capture_output=True, text=True).stdout)
    empty = OUT / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body><p>empty</p></body></html>\n")

    ours, reference = [], []
    for _ in range(options.repeat):
        drawn, bars, errors = render_ms(report)
        if errors or bars != len(data["segments"]):
            raise SystemExit(f"the report did not render whole: {bars} bars of {len(data['segments'])}, errors {errors}")
        ours.append(drawn)
        reference.append(render_ms(empty)[0])
    size = report.stat().st_size
    print(f"report: {size / 1e6:.2f} MB, {len(data['segments'])} bars, written by batch-report in {writing:.2f}s (median)")
    print(f"rendered in headless Chromium (fresh profile), median of {options.repeat}: "
          f"{statistics.median(ours):.0f} ms; an empty page {statistics.median(reference):.0f} ms; "
          f"all: {', '.join(f'{t:.0f}' for t in ours)} ms")


if __name__ == "__main__":
    main()
