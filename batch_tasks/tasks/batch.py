"""Loading a batch: task.md → plan → templates → fingerprints → verdicts, in that order.

The verdicts need every item's records; a command that shows only the plan (`doit list`
without `--status`, `batch-graph`, `forget`) loads without them (`read_records=False`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import BatchError
from ..isolation import workdir as workdir_mod
from ..plan import outside_settings, plan_context, taskfile
from ..plan.plan import Plan, digest
from ..plan.prompt import Template, load_template
from ..state import staleness
from ..state.budget import Budget
from ..state.item_status import ItemStatus, read_statuses
from ..state.state import BatchState, ItemState


@dataclass(frozen=True)
class Batch:
    plan: Plan
    state: BatchState
    templates: dict[str, Template]  # by group slug
    fingerprints: dict[str, dict[str, str]]  # by item key
    verdicts: dict[str, staleness.Verdict] | None  # by item key; None when loaded without records
    budget: Budget
    workdir: Path  # where its agents and checks run (see workdir.py)
    workdir_reason: str
    documents: tuple[str, ...]  # its dialect's design documents beside it, from the workdir (see plan_context)
    statuses: dict[str, ItemStatus] | None = None  # by item key, as the verdicts were made of them
    folders: dict[str, ItemState] | None = None  # by item key, the state folders they were read from
    parsed: bool = False  # its plan was parsed from task.md as it is, not taken from the plan cache

    @cached_property
    def plan_context(self) -> dict[str, str | tuple[str, ...]]:
        """What every item's prompt is given of the plan (a job's plan_context): one for all its
        items, so that the check of prompts takes its shape once."""
        return {"preamble": self.plan.preamble, "documents": self.documents, "workdir": str(self.workdir)}


def load(path: Path, for_dry_run: bool = False, read_records: bool = True, trust_cache: bool = True,
         optional: bool = False, sets: tuple[str, ...] = ()) -> Batch:
    """Raises TaskFileError or BatchError for anything wrong, before anything runs (a dry
    run lists a plan whose agent is not set up, saying so). `trust_cache=False`: the plan
    as task.md has it (see taskfile.load_plan), for a run. `optional`: the optional items
    run too, in their place (--optional). `sets`: the --set KEY=VALUE given, over every
    other setting (see outside_settings)."""
    path = path.absolute()
    state = BatchState(path)
    outside = outside_settings.gather(path, sets)
    # Groups mostly share a template: each one is read, checked and digested once.
    by_setting: dict[str | None, tuple[Template, str]] = {}
    templates = {}

    def load_templates(plan: Plan) -> None:
        for group in plan.groups:
            setting = group.settings["template"]
            if setting not in by_setting:
                template = load_template(path, setting, group.line)
                by_setting[setting] = (template, digest(template.source))
            templates[group.slug] = by_setting[setting][0]

    plan = taskfile.load_plan(path, cache_dir=state.root, for_dry_run=for_dry_run, trust_cache=trust_cache,
                              before_keeping=load_templates, outside=outside)
    # load_plan keeps a plan it parsed only once load_templates accepted it: so templates were
    # loaded by now exactly when the plan was parsed from task.md, not taken from the cache.
    parsed = bool(templates)
    if optional:
        plan = plan.with_optional()
    if not templates or optional:
        load_templates(plan)  # taken from the cache, or groups its optional items make
    fingerprints = {}
    for group in plan.groups:
        template_part = by_setting[group.settings["template"]][1]
        settings_part = staleness.settings_digest(group.settings)
        for item in group.items:
            fingerprints[item.key] = staleness.fingerprint(item, settings_part, template_part)
    workdir, workdir_reason = workdir_mod.resolve(plan)
    documents = plan_context.documents(plan, workdir)
    for group in plan.groups:
        if group.settings.get("review") and group.settings["isolation"] != "worktree":
            line = plan.setting_lines.get("review", group.line)
            raise BatchError(f"{path.name}:{line}: review: needs isolation: worktree (what waits for review is the "
                             f"item's own branch), in group {group.slug!r}")
        if group.settings.get("land") in ("pr", "pr-batch") and group.settings["isolation"] != "worktree":
            raise BatchError(f"{path.name}:{plan.setting_lines.get('land', group.line)}: land: pr needs isolation: "
                             f"worktree (what a pull request proposes is the item's own branch), in group {group.slug!r}")
        if group.settings.get("land") == "pr" and group.settings.get("review"):
            raise BatchError(f"{path.name}:{plan.setting_lines.get('review', group.line)}: review: and land: pr "
                             f"together: the pull request is the review; choose one, in group {group.slug!r}")
        if (group.settings.get("review") or {}).get("template"):
            load_template(path, group.settings["review"]["template"], group.line)  # a missing one: said now
    if any(group.settings["isolation"] == "worktree" for group in plan.groups):
        from ..isolation.worktree import Isolation  # git is asked only by batches that use it

        Isolation(path, plan.settings, workdir=workdir, state=state).validate()
    if not read_records:
        return Batch(plan, state, templates, fingerprints, None, Budget(plan.settings.get("budget_usd"), 0.0),
                     workdir, workdir_reason, documents, parsed=parsed)
    folders = {item.key: state.item(item.group, item.module) for item in plan.items()}
    statuses = read_statuses(folders)
    verdicts = staleness.assess_statuses(plan, statuses, fingerprints)
    budget = Budget(plan.settings.get("budget_usd"), sum(verdict.spent_usd for verdict in verdicts.values()))
    return Batch(plan, state, templates, fingerprints, verdicts, budget, workdir, workdir_reason, documents, statuses,
                 folders, parsed)
