"""Parsing task.md into a Plan.

The format, in short (the README has it in full): optional YAML front matter of
settings; the file is read in one dialect (batch, speckit, kiro, superpowers,
checklist: dialects/), which finds the groups and their items;
`<!-- key: value -->` comments whose key is a setting are group hints. Here the
dialect's drafts become the plan: group names, modules, order, settings. Every
mistake is a TaskFileError naming its line. PyYAML and markdown-it are imported
only when a plan must be parsed: an unchanged task.md is read from its cache
(plan_cache), and starting fast matters when a batch has ten thousand items.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from ..agents import AGENTS
from ..errors import SettingError, TaskFileError
from . import plan_cache
from . import settings as settings_mod
from .plan import Group, Item, Plan

MAX_BYTES = 16 * 1024 * 1024


MAX_NAME = 200  # characters of a module or group name: they go into every item's environment


CHECKBOX = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([ xX])\](?:[ \t]+|$)(.*)$")
HINT = re.compile(r"^<!--\s*([A-Za-z_][\w-]*)\s*:(.*?)-->\s*$", re.S)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Dialects where an item owns only what is indented under it: there, blocks left
# outside an item are worth a warning.
OWN_BY_INDENT = ("batch", "speckit", "kiro")


def load_plan(path: Path, cache_dir: Path | None = None, *, for_dry_run: bool = False, trust_cache: bool = True,
              before_keeping: Callable[[Plan], None] | None = None, outside=None) -> Plan:
    """Read and parse task.md, reusing the plan cached (see plan_cache) for these bytes.

    An agent that cannot run as configured (plan.agent_problem) is an error, except
    `for_dry_run`, which lists the plan anyway. `trust_cache=False` parses afresh (and
    keeps that plan): what runs never comes from a cache an agent could have written.
    A plan parsed afresh is kept only once `before_keeping` (the rest of the load's
    checks) accepted it, so a batch that cannot load leaves no cache.

    Parsing 10,000 items takes markdown-it about half a second; checking and
    reading the cache a few hundredths, so a batch that did not change loads fast.
    """
    data = _read(path)
    # Settings from outside the file change the plan too: the cache's key covers them, as
    # bytes after the file's own (the cache reads marks only where the file's items are).
    keyed = data + (b"\0" + outside.salt() if outside else b"")
    if cache_dir is not None and trust_cache:
        cached = plan_cache.load(cache_dir, path, keyed)
        if cached is not None:
            return _checked(cached, for_dry_run)
    plan = _checked(parse(_decode(path, data), path, outside), for_dry_run)
    plan_cache.locate_marks(plan, data)
    if before_keeping is not None:
        before_keeping(plan)
    if cache_dir is not None:
        plan_cache.store(cache_dir, path, keyed, plan)
    return plan


def _checked(plan: Plan, for_dry_run: bool) -> Plan:
    if plan.agent_problem and not for_dry_run:
        raise plan.agent_error()
    return plan


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TaskFileError(path, 1, f"is {size // 2**20} MiB; task files are limited to {MAX_BYTES // 2**20} MiB")
        return path.read_bytes()
    except FileNotFoundError:
        raise TaskFileError(path, 0, "no such file (use -T to name another task file)") from None
    except IsADirectoryError:
        raise TaskFileError(path, 0, "is a folder, not a task file") from None
    except OSError as error:
        raise TaskFileError(path, 0, f"cannot be read: {error.strerror}") from None


def _decode(path: Path, data: bytes) -> str:
    nul = data.find(b"\0")
    if nul >= 0:
        raise TaskFileError(path, data.count(b"\n", 0, nul) + 1, "contains a NUL byte: this is not a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TaskFileError(path, line, "is not valid UTF-8 text") from None
    return text.removeprefix("\ufeff")


def parse(text: str, path: Path, outside=None) -> Plan:
    """Parse task.md's text (without BOM) into a Plan, or raise TaskFileError. `outside`: the
    settings given from outside it (outside_settings.Outside), under and over its own."""
    from . import dialects, front_matter, lint, plan_context
    from . import gates as gates_mod
    from . import outline as outline_mod
    from .dialects import taskmaster
    from .outside_settings import Outside

    outside = outside or Outside()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    structured = taskmaster.is_json(path, text)  # no front matter, no markdown: JSON
    front = front_matter.FrontMatter() if structured else front_matter.read(lines, path)
    sources = {name: outside.below_source for name in outside.below}
    sources.update({name: f"front matter, line {line}" for name, line in front.lines.items()})
    sources.update({name: "--set" for name in outside.above})
    front.settings = {**outside.below, **front.settings}
    if structured:
        outline, reading, reason = taskmaster.read(text, lines, path)
        dialect = taskmaster.NAME
    else:
        outline = outline_mod.read(lines, front.body_start)
        chosen = {**front.settings, **outside.above}.get("format")
        dialect, reason = dialects.detect(outline, path, chosen, sources.get("format"))
        reading = dialects.reader(dialect)(outline, path)
    _unknown_keys(front, dialect, path)
    hints = _hints(outline, path)
    gates = gates_mod.read(outline)
    for group in reading.groups:
        group.items = [item for item in group.items if item.gate_box or item.line not in gates.not_work]
    drafts = [group for group in reading.groups if group.items]
    if not drafts and gates.not_work:
        raise TaskFileError(path, min(gates.not_work), f"its {len(gates.not_work)} checkboxes are success criteria or in "
                            "sections that say not to do them, and no other is an item: nothing to run")
    if not drafts:
        raise TaskFileError(path, *lint.nothing_found(outline))
    # A box the gates explain (a success criterion, a box not to do) needs no warning that it is no item.
    warnings = [w for w in reading.warnings if w[0] not in gates.not_work]
    warnings += [] if structured else lint.lookalikes(outline, dialect)
    if dialect in OWN_BY_INDENT:
        warnings += lint.loose_blocks(outline, [item for group in drafts for item in group.items])
    groups, agent_problem = _groups(drafts, outline, front, hints, path, dialect, gates, outside.above)
    title_heading = next((h for h in outline.headings if h.level == 1), None)
    title = title_heading.title if title_heading else None
    return Plan(
        path=path,
        title=title or path.stem,
        settings={**front.settings, **outside.above},
        groups=groups,
        dialect=dialect,
        dialect_reason=reason,
        warnings=tuple(sorted(warnings)),
        notes=tuple(sorted(front.notes + gates.notes + reading.notes)),
        metadata=front.metadata,
        setting_lines=front.lines,
        setting_sources=sources,
        preamble=reading.preamble if reading.preamble is not None else plan_context.preamble(outline, drafts[0].heading, title_heading),
        agent_problem=agent_problem,
        documents_named=reading.documents,
    )


def _unknown_keys(front, dialect: str, path: Path) -> None:
    """Front matter keys that are no setting: an error in a batch task.md (a typo must not pass
    unseen), metadata in a plan another tool wrote (ExecPlans' `total_tasks:`), with a note."""
    for name, (line, error) in front.unknown.items():
        if dialect == "batch":
            raise TaskFileError(path, line, error)
        front.notes.append((line, f"front matter {name!r} is no setting: kept and ignored, as metadata of a plan "
                            "another tool wrote"))


def _hints(outline, path: Path) -> dict[int, dict[str, tuple[Any, int]]]:
    """The hints under each heading, by its index, each with its line. A comment is a hint
    when its key is a setting as written (lower case); one whose key is almost a setting is
    an error, as in the front matter; any other is a comment (`<!-- ITO:START -->`)."""
    by_heading: dict[int, dict[str, tuple[Any, int]]] = {}
    for comment in outline.comments:
        match = HINT.match(comment.content)
        if not match:
            continue  # an ordinary comment or HTML
        name, raw = match.group(1), match.group(2).strip()
        if name not in settings_mod.FIELDS:
            guess = settings_mod.near_miss(name, in_group=True)
            if guess is not None:
                raise TaskFileError(path, comment.line, f"unknown hint {name!r}: did you mean {guess!r}?")
            continue
        if comment.heading is None:
            raise TaskFileError(path, comment.line, "a hint must be inside a group (under a heading)")
        hints = by_heading.setdefault(comment.heading, {})
        if name in hints:
            raise TaskFileError(path, comment.line, f"hint {name!r} is given twice in this group")
        import yaml

        from .front_matter import YAML_TROUBLE

        try:
            value = yaml.safe_load(raw) if raw else None
        except (yaml.YAMLError, *YAML_TROUBLE):
            raise TaskFileError(path, comment.line, f"hint {name!r} has a value that cannot be read: {raw[:80]!r}") from None
        try:
            hints[name] = (settings_mod.parse_setting(name, value, in_group=True), comment.line)
        except SettingError as error:
            raise TaskFileError(path, comment.line, str(error)) from None
    return by_heading


def _groups(drafts, outline, front, hints_by_heading, path: Path, dialect: str, gates, over_all):
    """The plan's groups, and the first agent problem (line, message) if any."""
    from .plan_context import sections_above

    groups: list[Group] = []
    agent_problem = None
    marks = [box.mark for box in outline.boxes]
    # spec-kit's /implement ticks with `[X]`: a spec-kit file ticked so keeps it.
    tick = "X" if dialect == "speckit" and marks.count("X") > marks.count("x") else "x"
    for draft, slug in zip(drafts, _group_slugs(drafts, outline, path)):
        hints: dict[str, tuple[Any, int]] = {}
        for heading in sorted(h for h in draft.headings if h is not None):
            for name, (value, line) in hints_by_heading.get(heading, {}).items():
                if name in hints:
                    raise TaskFileError(path, line, f"hint {name!r} is given twice in this group")
                hints[name] = (value, line)
        values = {name: value for name, (value, _) in hints.items()}
        gate = gates.check_for(outline, draft.heading)
        if gate is not None:  # the plan's own criteria decide what lands, over every other check
            values["check"] = gate
        group_settings = settings_mod.resolve(front.settings, {**values, **over_all})  # --set, over everything
        problem = _agent_problem(group_settings, hints, front, path)  # raises what no dry run may pass
        agent_problem = agent_problem or problem
        heading = draft.heading
        groups.append(
            Group(
                slug=slug,
                title=heading.title,
                line=heading.line,
                source_line=heading.source,
                settings=group_settings,
                items=_items(draft, slug, group_settings["group_order"], path, dialect),
                limit=values.get("parallel"),
                body=draft.body,
                context=sections_above(outline, heading, drafts[0].heading),
                tick=tick,
            )
        )
    return tuple(groups), agent_problem


def _group_slugs(drafts, outline, path: Path) -> list[str]:
    """Each group's name: its heading's slug; where two are the same, each qualified by
    the headings above it (`spec-b-md/tasks`) until they differ."""
    from .dialects import slugify

    chains = []  # per group: the slugs of its heading and the headings above it, nearest first
    for draft in drafts:
        if draft.heading is None:
            raise TaskFileError(path, draft.items[0].line, "this item is outside of any group: add a heading above it")
        if len(slugify(draft.heading.title)) > MAX_NAME:
            title = draft.heading.title
            raise TaskFileError(path, draft.heading.line, f"heading is {len(title)} characters long; at most {MAX_NAME}")
        chain, heading = [], draft.heading
        while heading is not None:
            chain.append(slugify(heading.title) or f"group-{heading.line}")
            heading = outline.headings[heading.parent] if heading.parent is not None else None
        chains.append(chain)
    depth = [1] * len(drafts)
    while True:
        names = ["/".join(reversed(chain[:d])) for chain, d in zip(chains, depth)]
        first_of: dict[str, int] = {}
        clashes = []
        for position, name in enumerate(names):
            if name in first_of:
                clashes.append((first_of[name], position))
            else:
                first_of[name] = position
        if not clashes:
            return names
        deeper = False
        for pair in clashes:
            for position in pair:
                if depth[position] < len(chains[position]):
                    depth[position] += 1
                    deeper = True
        if not deeper:
            earlier, later = clashes[0]
            raise TaskFileError(
                path, drafts[later].heading.line, f"group {names[later]!r} has the same name as the group at line {drafts[earlier].heading.line}"
            )


def _items(draft, slug: str, group_order: str | None, path: Path, dialect: str) -> tuple[Item, ...]:
    """The group's items with their modules and their stages (the order they run in)."""
    from .dialects import made_module

    items: list[Item] = []
    seen: dict[str, int] = {}
    stage, last = 0, None
    for draft_item in draft.items:
        module = draft_item.module
        if module is not None:
            if module in seen:
                raise TaskFileError(
                    path, draft_item.line, f"module {module!r} appears twice in group {slug!r} (also at line {seen[module]})"
                )
        else:
            module = base = made_module(draft_item.text, keep_short=dialect == "batch")
            if not module:
                raise TaskFileError(path, draft_item.line, "this item has no text: say what is to be done")
            copy = 2
            while module in seen:  # the same text twice: numbered in document order
                module, copy = f"{base}-{copy}", copy + 1
        if len(module) > MAX_NAME:
            raise TaskFileError(path, draft_item.line, f"module name is {len(module)} characters long; at most {MAX_NAME}")
        if CONTROL_CHARS.search(module):
            raise TaskFileError(path, draft_item.line, f"module name {module!r} contains a control character")
        if "=" in module:  # doit's task names cannot hold one: they pass parameters
            raise TaskFileError(path, draft_item.line, f"module name {module!r} contains '=': "
                                "write it another way, e.g. with `-` (doit task names cannot hold '=')")
        seen[module] = draft_item.line
        # Optional items take stages of their own, in order; whether anything waits for
        # them is the plan's to say (Plan.runs_optional).
        stage += last is not None and _waits_for_the_one_before(draft, draft_item, group_order, last)
        last = draft_item
        items.append(
            Item(
                group=slug,
                module=module,
                text=draft_item.text,
                body=draft_item.body,
                done=draft_item.done,
                line=draft_item.line,
                source_line=draft_item.source_line,
                module_given=draft_item.module is not None,
                stage=stage,
                optional=draft_item.optional,
                also_ticks=draft_item.also_ticks,
                parent_box=draft_item.parent_box,
                parent_needs=draft_item.parent_needs,
                parent=draft_item.parent,
                boxless=draft_item.boxless,
                status_at=draft_item.status_at,
            )
        )
    return tuple(items)


def _waits_for_the_one_before(draft, item, group_order: str | None, before) -> bool:
    """`group_order` decides, else the dialect: in order, but for a run of parallel marks."""
    if group_order is not None:
        return group_order == "sequential"
    return draft.ordered and not (item.parallel_mark and before.parallel_mark and not item.new_run)


def _agent_problem(group_settings, hints, front, path: Path) -> tuple[int, str] | None:
    """An agent's own requirements, at the line that set what it refuses: an error at
    once, but for an agent with nothing to run (the default, `agent: command`, without
    its `command:`), which is returned, so that a dry run can list the plan anyway."""
    try:
        AGENTS[group_settings["agent"]].check_settings(group_settings)
    except SettingError as error:
        names = ([error.setting] if error.setting else []) + ["agent", "command"]
        line = next((hints[name][1] for name in names if name in hints), None)
        line = line or next((front.lines[name] for name in names if name in front.lines), None)
        if error.setting is not None or group_settings["agent"] != "command" or group_settings.get("command"):
            raise TaskFileError(path, line or 1, str(error)) from None
        if line:
            return line, str(error)
        where = "the front matter names" if front.present else "there is no front matter, so it names"
        return 1, (
            f"{where} no agent, and the default, agent 'command', needs a `command:` setting: "
            "add `agent: claude` (or codex, gemini), or `command: [...]`, to the front matter"
        )
    return None
