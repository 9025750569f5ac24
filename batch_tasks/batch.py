"""Loading a batch: task.md → plan → templates → fingerprints → verdicts, in that order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import staleness, taskfile
from .budget import Budget
from .plan import Plan, digest
from .prompt import Template, load_template
from .state import BatchState


@dataclass(frozen=True)
class Batch:
    plan: Plan
    state: BatchState
    templates: dict[str, Template]  # by group slug
    fingerprints: dict[str, dict[str, str]]  # by item key
    verdicts: dict[str, staleness.Verdict]  # by item key
    budget: Budget


def load(path: Path, for_dry_run: bool = False) -> Batch:
    """Raises TaskFileError or BatchError for anything wrong, before anything runs (a dry
    run lists a plan whose agent is not set up, saying so)."""
    path = path.absolute()
    state = BatchState(path)
    plan = taskfile.load_plan(path, cache_dir=state.root, for_dry_run=for_dry_run)
    templates = {group.slug: load_template(path, group.settings["template"], group.line) for group in plan.groups}
    fingerprints = {}
    for group in plan.groups:
        template_part = digest(templates[group.slug].source)
        settings_part = staleness.settings_digest(group.settings)
        for item in group.items:
            fingerprints[item.key] = staleness.fingerprint(item, settings_part, template_part)
    if any(group.settings["isolation"] == "worktree" for group in plan.groups):
        from .worktree import Isolation  # git is asked only by batches that use it

        Isolation(path, plan.settings).validate()
    verdicts = staleness.assess(plan, state, fingerprints)
    budget = Budget(plan.settings.get("budget_usd"), sum(verdict.spent_usd for verdict in verdicts.values()))
    return Batch(plan, state, templates, fingerprints, verdicts, budget)
