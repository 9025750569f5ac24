"""What `run-batch --dry-run` and `-q` say, and `batch-graph`'s items kept apart: every item
that would run and why, what it waits for, what it is kept apart from, what it may cost,
its prompt (with --prompts), and how a failed attempt's next one would be adjusted.
Reads the plan, the items' records (through the batch's verdicts and touches) and doit's
`ignore` records; writes only to the stream it is given; runs nothing."""

from __future__ import annotations

import textwrap

from .. import doit_bridge
from ..agents import retry
from ..plan.prompt import render as render_prompt
from ..run import forecast
from ..run.prompt_context import prompt_context
from ..state import touches
from ..tasks import graph
from ..tasks.doit_tasks import jobs_of


def keeps_apart(batch, workers: int) -> bool:
    """Whether items predicted to touch one file are kept apart: not with `keep_apart: false`,
    nor where one item runs at a time anyway."""
    return workers >= 2 and batch.plan.settings.get("keep_apart") is not False


def kept_apart(batch, will_run=None, workers: int = 2) -> dict[str, list[tuple[str, str]]]:
    """Which items the dispatcher keeps apart, and why: `--dry-run` and `batch-graph` say so."""
    predicted = touches.predict(batch.plan, batch.state, will_run) if keeps_apart(batch, workers) else {}
    return graph.kept_apart(batch.plan, predicted) if predicted else {}


def would_run(batch, tasks, dep_manager, selected, forced) -> tuple[list, list, list]:
    """The selected items; those of them that would run, with why; and those `doit ignore` left out."""
    chosen = [item for item in batch.plan.items() if item.key in selected]
    marked = doit_bridge.ignored(dep_manager, [tasks[item.key] for item in chosen])
    ignored = [item for item in chosen if item.key in marked]

    def reason(item):
        verdict = batch.verdicts[item.key]
        return verdict.reason if verdict.runs else ("forced (-a)" if item.key in forced else None)

    return chosen, [(item, why) for item in chosen if item not in ignored and (why := reason(item)) is not None], ignored


def explain(out, batch, tasks, dep_manager, selected, forced, prompts: bool, workers: int) -> int:
    """Writes to OUT every item that would run, and why (see the module's docstring)."""
    chosen, stale, ignored = would_run(batch, tasks, dep_manager, selected, forced)
    width = max((len(item.key) for item, _ in stale), default=0)
    estimates = forecast.of_batch(batch, (item.key for item, _ in stale))
    apart = kept_apart(batch, [item.key for item, _ in stale], workers)
    jobs = jobs_of(batch, (item.key for item, _ in stale)) if prompts else {}
    for item, why in stale:
        out.write(f"{item.key:<{width}}  {why}\n")
        out.write(f"{'':<{width}}    after: {graph.waits_for(batch.plan, item)}\n")
        if item.key in apart:
            out.write(f"{'':<{width}}    kept apart from: {graph.apart_from(apart[item.key])}\n")
        if item.key in estimates:
            out.write(f"{'':<{width}}    cost: {forecast.line(estimates[item.key])}\n")
        if prompts:
            job = jobs[item.key]
            text = render_prompt(job.template, prompt_context(job, batch.state, []))
            out.write(textwrap.indent(text, "    | ", lambda line: True))
    _tell_adjustments(out, batch.plan, {item.group for item, _ in stale})
    left_out = [item for item in batch.plan.items() if item.optional and item.key not in tasks]
    for item in left_out:
        out.write(f"{item.key}  skipped (optional: run with --optional)\n")
    out.write(f"{len(stale)} would run, {len(chosen) - len(stale) - len(ignored)} up to date"
              + (f", {len(ignored)} ignored (`doit forget` it to run it)" if ignored else "")
              + (f", {len(left_out)} optional left out" if left_out else "") + "\n")
    if estimates:
        out.write(forecast.total(estimates) + "\n")
    return 0


def _tell_adjustments(out, plan, groups: set[str]) -> None:
    """How a failed attempt's next one would be adjusted, by cause (retry.py): once, or per
    group where hints differ. Indented, as all but the items' own lines are."""
    policies: dict[str, list[str]] = {}
    for group in plan.groups:
        if group.slug in groups:
            lines = retry.describe_adjust(group.settings["adjust"], group.settings.get("escalate"))
            policies.setdefault("\n".join(lines), []).append(group.slug)
    for lines, slugs in policies.items():
        where = f" in {', '.join(slugs)}" if len(policies) > 1 else ""
        out.write(f"  a failed attempt's next one{where}, by cause (adjust:, escalate:):\n")
        out.write("".join(f"    {line}\n" for line in lines.splitlines()))
