"""The prompt cache: one group's fan-out with the cache-aware start against today's, in one run.

A group of 16 Claude items at -n 8 whose prompts share 20,000 tokens of context first
(a template that puts it there) runs through the real Claude Code CLI against
tests/fake_anthropic.py, which charges a prompt's prefix as the API's cache does (a
write at 1.25 x the input price, a read at 0.1 x) and answers each turn after
`--first-token` seconds. `prefill_cache: false` is today's fan-out: the first eight
start at once and each writes the cache; `true` starts the first alone and the rest
once its first response came. The two alternate, each in a fresh folder; figures are
medians: cache writes and reads (requests that wrote or read the shared part), the
run's cost as the CLI reports it, the last item's start after the first's, the
first item's wait for its first answer (one first response), the wall time.

    python bench/prompt_cache.py [--repeat 3] [--first-token 3]
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, text  # noqa: E402

WORK = BENCH / "out" / "prompt_cache"
SHARED_TOKENS, ITEMS, WORKERS = 20_000, 16, 8
NO_USAGE = {"input_tokens": 0, "output_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def one_run(folder: Path, prefill: bool, first_token: float) -> dict:
    from batch_tasks.state.state import BatchState

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = "".join(f"Fact {n}: the shared context of this group, line {n:05d}.\n" for n in range(1500))
    (folder / "shared.md.j2").write_text(context[: SHARED_TOKENS * 4] + "\nModule: {{ item.module }}\n{{ item.instruction }}\n")
    items = "".join(f"- [ ] m{n:02d}: answer for m{n:02d}\n" for n in range(ITEMS))
    (folder / "task.md").write_text(
        f"---\nagent: claude\nmodel: claude-sonnet-4-5-20250929\nparallel: {WORKERS}\ntemplate: shared.md.j2\n"
        f"prefill_cache: {'true' if prefill else 'false'}\n---\n# Spend\n## Answer\n{items}")
    with FakeAnthropic([text("done", delay=first_token)] * ITEMS, usage=NO_USAGE, prompt_cache=True) as api:
        env = cli_env(api.url, folder / "home", CLAUDE_CODE_MAX_RETRIES="0")
        env["PATH"] = claude_path_env(find_claude())
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", str(WORKERS)], cwd=folder,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - began
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    state = BatchState(folder / "task.md")
    records = [_json(state.item("answer", f"m{n:02d}").result) for n in range(ITEMS)]
    starts = [record["attempts"][0]["started"] for record in records]
    first = min(range(ITEMS), key=lambda n: starts[n])
    events = [json.loads(line) for line in (Path(state.item("answer", f"m{first:02d}").folder) / "events.jsonl").open()]
    answered = next(e["t"] for e in events if e["kind"] in ("assistant", "usage", "result"))
    return {
        "writes": sum(1 for r in api.main_requests if r.cache_write >= SHARED_TOKENS),
        "reads": sum(1 for r in api.main_requests if r.cache_read >= SHARED_TOKENS),
        "cost": sum(record["cost_usd"] for record in records),
        "last_start": max(starts) - min(starts),
        "first_response": answered - starts[first],  # the first item's start to its first answer
        "wall": wall,
    }


def _json(path) -> dict:
    return json.loads(Path(path).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first-token", type=float, default=3.0, help="seconds before the fake answers a turn")
    options = parser.parse_args()
    if find_claude() is None:
        raise SystemExit("the claude CLI is not installed: bash .ci/run installs the pinned version")
    print(f"load average before: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    results: dict[bool, list[dict]] = {False: [], True: []}
    for repetition in range(options.repeat):
        for prefill in (False, True):
            result = one_run(WORK / f"{'cached' if prefill else 'today'}-{repetition}", prefill, options.first_token)
            results[prefill].append(result)
            print(f"{'cache-aware' if prefill else 'today'} #{repetition + 1}: {result}", flush=True)
    print(f"load average after: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"| median of {options.repeat} | cache writes | cache reads | cost | last start | one first response | wall |")
    print("|---|---|---|---|---|---|---|")
    medians = {}
    for prefill, name in ((False, "today's fan-out"), (True, "cache-aware start")):
        medians[prefill] = {key: statistics.median(r[key] for r in results[prefill]) for key in results[prefill][0]}
        m = medians[prefill]
        print(f"| {name} | {m['writes']:g} | {m['reads']:g} | ${m['cost']:.4f} | {m['last_start']:.1f} s | {m['first_response']:.1f} s | {m['wall']:.1f} s |")
    print(f"cost ratio {medians[True]['cost'] / medians[False]['cost']:.2f}; last start "
          f"{medians[True]['last_start'] - medians[False]['last_start']:+.1f} s")


if __name__ == "__main__":
    main()
