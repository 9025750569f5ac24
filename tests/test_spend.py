"""Spend, through real runs: the budget reserved at each start and never overshot, the
forecast of what a run will cost, and the prompt cache written once per group. Claude
items run the real CLI against tests/fake_anthropic.py, which charges tokens as set."""

import json
import os

import pytest
from conftest import BatchFolder
from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, text

CLAUDE = find_claude()
needs_claude = pytest.mark.skipif(
    CLAUDE is None and not os.environ.get("CI"),  # in CI a missing CLI must fail, not skip
    reason="the claude CLI is not installed: bash .ci/run installs the pinned version",
)

# One turn of claude-sonnet-4-5 with 130,000 input tokens ($3/M) and 40 output ($15/M):
# $0.3906, what each item costs.
ITEM_USAGE = {"input_tokens": 130_000, "output_tokens": 40, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0}


def claude_env(api, batch) -> dict:
    env = cli_env(api.url, batch.path / "home", CLAUDE_CODE_MAX_RETRIES="0")
    env["PATH"] = claude_path_env(CLAUDE)
    return env


def claude_batch(batch, modules, extra: str = "", parallel: int = 4) -> None:
    items = "".join(f"- [ ] {module}: answer\n" for module in modules)
    batch.write(f"# Spend\n## Answer\n{items}", front_matter=(
        f"---\nagent: claude\nmodel: claude-sonnet-4-5-20250929\nparallel: {parallel}\n{extra}---\n"))


@needs_claude
def test_a_budget_at_n4_is_never_passed(batch):
    # Once: all four started at once, and the run spent $1.56 of its $1.00.
    modules = ["a", "b", "c", "d"]
    claude_batch(batch, modules, "budget_usd: 1.00\nitem_budget_usd: 0.50\n")
    with FakeAnthropic(usage=ITEM_USAGE) as api:
        result = batch.run("run-batch", "-n", "4", env=claude_env(api, batch), timeout=180)
    assert result.returncode == 4, result.stdout + result.stderr  # not all started
    costs = [batch.record("answer", m)["cost_usd"] for m in modules if (batch.state("answer", m) / "result.json").exists()]
    assert len(costs) == 2 and all(cost == pytest.approx(0.3906, abs=0.001) for cost in costs)
    assert sum(costs) <= 1.00
    assert "it may cost $0.50, $0.28 more than is left" in result.stdout
    assert "budget: $0.78 of $1.00 spent" in result.stdout


@needs_claude
def test_the_forecast_of_a_rerun_is_within_a_quarter_of_the_last_runs_cost(batch):
    claude_batch(batch, ["a", "b"])
    with FakeAnthropic(usage=ITEM_USAGE) as api:
        env = claude_env(api, batch)
        before = batch.run("run-batch", "--dry-run", env=env)
        assert before.stdout.count("cost: unknown (no run of it") == 2
        assert "forecast: cost unknown for all 2 items" in before.stdout
        first = batch.run("run-batch", env=env, timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        spent = sum(batch.record("answer", m)["cost_usd"] for m in ("a", "b"))
        with batch.taskfile.open("a") as taskfile:
            taskfile.write("- [ ] c: answer\n")  # new: priced at its group's median
        dry = batch.run("run-batch", "--dry-run", "-a", env=env)
        assert "cost: about $0.39, " in dry.stdout and "(its last run; $0.39–$0.39)" in dry.stdout
        assert "(its group's median; $0.39–$0.39)" in dry.stdout
        forecast_line = next(line for line in dry.stdout.splitlines() if line.startswith("forecast: "))
        forecast = float(forecast_line.split()[1].lstrip("$"))
        again = batch.run("run-batch", "-a", env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith(forecast_line)  # said again as the run starts
    assert forecast == pytest.approx(spent * 3 / 2, rel=0.25)
    actual = sum(batch.record("answer", m)["cost_usd"] for m in ("a", "b", "c"))
    assert forecast == pytest.approx(actual, rel=0.25)
    against = f"  answer: forecast ${forecast:.2f}, spent ${actual:.2f} (3 items)"
    assert against in again.stdout
    assert against in batch.run("batch-status").stdout  # from the last run's history
    report = json.loads(batch.run("batch-report", "--format", "json", "-o", "-").stdout)
    [group] = report["forecast"]
    assert (group["group"], group["items"], group["unknown"]) == ("answer", 3, 0)
    assert group["forecast_usd"] == pytest.approx(forecast, abs=0.01) and group["spent_usd"] == pytest.approx(actual)
    assert batch.run("batch-report").returncode == 0
    assert "Forecast against actual" in (batch.path / "report.html").read_text()


SHARED_TOKENS = 20_000
NO_USAGE = {"input_tokens": 0, "output_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def cached_fan_out(batch, prefill: bool):
    """16 items at -n 8 whose prompts share 20,000 tokens of context first. Returns each
    main request (what it read from and wrote to the cache), how many items started
    before the first one to start had its first response, and the run's output.
    Without prefill, the first eight are answered once all eight asked (so each wrote the
    cache); with it, the first is answered a second late, a window for the others to start
    in were they not held back."""
    context = "".join(f"Fact {n}: the shared context of this group, line {n:05d}.\n" for n in range(1500))
    (batch.path / "shared.md.j2").write_text(context[: SHARED_TOKENS * 4] + "\nModule: {{ item.module }}\n{{ item.instruction }}\n")
    modules = [f"m{n:02d}" for n in range(16)]
    items = "".join(f"- [ ] {module}: answer for {module}\n" for module in modules)
    batch.write(f"# Spend\n## Answer\n{items}", front_matter=(
        "---\nagent: claude\nmodel: claude-sonnet-4-5-20250929\nparallel: 8\ntemplate: shared.md.j2\n"
        f"prefill_cache: {'true' if prefill else 'false'}\n---\n"))
    opening = [text("done", delay=1.0)] if prefill else [text("done", together=8, delay=60)] * 8
    with FakeAnthropic(opening + [text("done")] * (16 - len(opening)), usage=NO_USAGE, prompt_cache=True) as api:
        result = batch.run("run-batch", "-n", "8", env=claude_env(api, batch), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    starts = {m: batch.record("answer", m)["attempts"][0]["started"] for m in modules}
    first = min(starts, key=starts.get)
    answered = next(e["t"] for e in batch.events("answer", first) if e["kind"] in ("assistant", "usage", "result"))
    return api.main_requests, sum(1 for m in modules if m != first and starts[m] < answered), result


def input_cost(requests) -> float:
    """In input-price units: writes at 1.25, reads at 0.1."""
    return sum(1.25 * r.cache_write + 0.1 * r.cache_read for r in requests)


@needs_claude
def test_a_group_writes_the_prompt_cache_once_and_its_other_items_read_it(tmp_path):
    today_folder, cached_folder = BatchFolder(tmp_path / "today"), BatchFolder(tmp_path / "cached")
    today_folder.path.mkdir()
    cached_folder.path.mkdir()
    today, started_beside_today, _ = cached_fan_out(today_folder, prefill=False)
    cached, started_beside, result = cached_fan_out(cached_folder, prefill=True)
    assert started_beside_today >= 7 and started_beside == 0  # the others waited for the first one's answer
    assert sum(1 for r in today if r.cache_write >= SHARED_TOKENS) == 8  # all of the first eight
    assert sum(1 for r in cached if r.cache_write >= SHARED_TOKENS) == 1
    assert sum(1 for r in cached if r.cache_read >= SHARED_TOKENS) == 15
    assert input_cost(cached) <= 0.6 * input_cost(today)
    # What it costs in time (the last item's start, against one first response) is measured
    # by bench/prompt_cache.py, in medians: a timed test would measure the machine's load.
    assert "prompt cache: " in result.stdout and "saved $" in result.stdout


@needs_claude
def test_near_the_budgets_end_items_run_on_the_fallback_model_and_the_summary_says_so(batch):
    modules = ["a", "b", "c", "d"]
    claude_batch(batch, modules, parallel=1)
    with FakeAnthropic(usage=ITEM_USAGE) as api:  # each item: $0.39 on Sonnet, $0.13 on Haiku
        env = claude_env(api, batch)
        assert batch.run("run-batch", env=env, timeout=180).returncode == 0  # the forecast: $0.39 an item
        # The batch's budget counts its recorded results ($1.56): $1.36 is left of it.
        claude_batch(batch, modules, "budget_usd: 2.92\nfallback_model: claude-haiku-4-5-20251001\n", parallel=1)
        result = batch.run("run-batch", "-a", env=env, timeout=180)
    # Without the fallback three would fit and the fourth not; the first ran on Haiku, as
    # $1.36 was below the $1.56 the four should cost on Sonnet, and then all four fit.
    assert result.returncode == 0, result.stdout + result.stderr
    records = [batch.record("answer", m) for m in modules]
    by_model = {r["model"]: r["item"] for r in records}
    assert sorted(r["model"] for r in records) == ["claude-haiku-4-5-20251001"] + ["claude-sonnet-4-5-20250929"] * 3
    assert sum(r["cost_usd"] for r in records) == pytest.approx(0.1302 + 3 * 0.3906, abs=0.001)
    assert "budget: $2.86 of $2.92 spent" in result.stdout
    first = by_model["claude-haiku-4-5-20251001"]  # the first to start: the longest last time
    assert (f"{first} ran on its fallback_model claude-haiku-4-5-20251001: $1.36 left of the budget, "
            "below the $1.56 forecast of the 4 items not started") in result.stdout


def test_what_an_attempt_in_the_merge_queue_cost_is_held_until_it_is_spent():
    from batch_tasks.state.budget import Budget

    budget = Budget(1.00)
    assert budget.reserve("g:a", 0.50)
    budget.release("g:a")  # its slot given back as it enters the merge queue ...
    budget.hold("g:a", 0.40)  # ... what it cost is held for it
    assert not budget.can_hold(0.70) and budget.can_hold(0.60)
    budget.spend(0.40)
    budget.release("g:a")  # landed: spent, no longer held
    assert budget.left() == pytest.approx(0.60)
    Budget(None).hold("g:b", 0.40)  # no budget: nothing to hold


@needs_claude
def test_an_approved_item_lands_on_the_budget_its_attempt_spent(tmp_path):
    import subprocess
    import sys

    from conftest import wait_for
    from gitrepo import git, make_repo

    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text("---\nagent: claude\nmodel: claude-sonnet-4-5-20250929\nisolation: worktree\n"
                                  "allow_empty: true\nreview: human\nbudget_usd: 0.40\n---\n# Spend\n## Answer\n"
                                  "- [ ] a: answer\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    awaiting = repo / ".batch/task/items/answer/a/failure.json"
    with FakeAnthropic([text("done")], usage=ITEM_USAGE) as api:
        env = {**os.environ, **cli_env(api.url, tmp_path / "home", CLAUDE_CODE_MAX_RETRIES="0"),
               "PATH": claude_path_env(CLAUDE)}
        runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: awaiting.exists() and "awaiting_review" in awaiting.read_text())  # $0.39 of $0.40 spent
            approved = subprocess.run([sys.executable, "-m", "doit", "batch-review", "answer:a", "--approve"],
                                      cwd=repo, env=env, capture_output=True, text=True, timeout=60)
            assert approved.returncode == 0, approved.stderr
            out = runner.communicate(timeout=90)[0]
        finally:
            if runner.poll() is None:
                runner.kill()
                print(runner.communicate()[0])
    assert runner.returncode == 0, out  # its landing cost nothing more: the budget did not refuse it
    assert "- [x] a" in (repo / "task.md").read_text()
    assert "budget: $0.39 of $0.40 spent" in out
