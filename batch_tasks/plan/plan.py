"""The plan: what task.md asks for, as plain data, and how its items depend on each other."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


# A checkbox line's mark, for an instruction's digest: the boxes that tick along with an
# item are part of its text, and their ticks are no change of what it asks.
BOX_MARK = re.compile(r"^([ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[)[ xX](\])", re.M)


def mark_column(line: str) -> int | None:
    """Where the mark of a checkbox line (`- [ ] …`, `1. [x] …`) is: nothing before its `[` can be one."""
    column = line.find("[") + 1
    return column if column and line[column + 1 : column + 2] == "]" else None


@dataclass(frozen=True)
class Item:
    """One checkbox: one piece of work on one module."""

    group: str  # the slug of its group
    module: str
    text: str  # the item's first line, after the checkbox (and the module)
    body: str  # the lines that belong to it, dedented
    done: bool  # its checkbox as task.md had it when loaded
    line: int  # 1-based line of its checkbox
    source_line: str  # that line as written, to find it again when ticking
    # The user wrote its module, or its dialect defines one (a task ID): only then is it
    # linked to the same module's items in other groups (`previous`, `pipeline`).
    module_given: bool = True
    # Its place in its group's order: the items of one stage run together, each stage
    # after the one before it (0 for all: the whole group at once).
    stage: int = 0
    optional: bool = False  # Kiro's `- [ ]*`: runs only when asked for; nothing waits for it
    # A Kiro parent task's box, ticked along with this, its last sub-task, once every box
    # of `parent_needs` (its other required sub-tasks) is ticked too.
    parent_box: tuple[int, str] | None = None
    parent_needs: tuple[tuple[int, str], ...] = ()
    parent: str = ""  # the task it is a part of (a Kiro sub-task's parent task), as written
    # No checkbox to tick (an older superpowers task, whose steps have none): its state is
    # kept in the state folder only, and nothing in the file changes.
    boxless: bool = False
    # Its state is a status field of the file rather than a checkbox (Taskmaster's tasks.json,
    # a Cursor plan's todos): where it is, as status_field reads it; its tick writes that field.
    status_at: tuple[str, ...] = ()
    key: str = field(init=False, compare=False)  # its doit task name, GROUP:MODULE
    digest: str = field(init=False, compare=False)  # of its module and instruction: part of its fingerprint
    # Where its checkbox mark was in task.md's bytes when loaded (-1: unknown), so that a
    # tick finds it without reading the file; always verified by bytes before it is used.
    mark_offset: int = field(default=-1, compare=False)
    # Other checkboxes that tick along with it: (1-based line, that line as written), e.g.
    # nested sub-task boxes, or a superpowers task's step boxes after the first.
    also_ticks: tuple[tuple[int, str], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "key", f"{self.group}:{self.module}")
        asks = BOX_MARK.sub(r"\1 \2", self.instruction) if self.also_ticks else self.instruction
        object.__setattr__(self, "digest", digest(self.module, asks))

    @property
    def instruction(self) -> str:
        return f"{self.text}\n{self.body}" if self.body else self.text


@dataclass(frozen=True)
class Group:
    """The items under one heading: a wave of the batch."""

    slug: str
    title: str
    line: int
    source_line: str  # the heading as written, to find its items again when ticking
    settings: Mapping[str, Any]  # the batch's settings with this group's hints applied
    items: tuple[Item, ...]
    limit: int | None = None  # its `parallel` hint: at most this many of its items at once
    body: str = ""  # the prose between its heading and its first item (`group.body` in templates)
    # The sections it is inside of that come after the plan's preamble, each heading with its
    # prose (spec-kit's phase above its `### Tests` group: its **Goal**, its **Independent Test**).
    context: str = ""
    tick: str = "x"  # the mark its ticks write: `X` in a file ticked so (spec-kit's /implement writes `[X]`)


@dataclass(frozen=True)
class Plan:
    path: Path  # task.md, absolute
    title: str
    settings: Mapping[str, Any]  # the front matter, checked
    groups: tuple[Group, ...]
    dialect: str = "batch"  # how task.md was read: settings.FORMATS
    dialect_reason: str = ""  # why, in words: `read as a spec-kit task list: …`
    warnings: tuple[tuple[int, str], ...] = ()  # (line, message): shown, nothing stops
    notes: tuple[tuple[int, str], ...] = ()  # (line, message): e.g. metadata kept and ignored
    metadata: Mapping[str, Any] = field(default_factory=dict)  # front matter that is no setting
    setting_lines: Mapping[str, int] = field(default_factory=dict)  # the front matter's line of each setting
    setting_sources: Mapping[str, str] = field(default_factory=dict)  # where each setting given came from, in words
    preamble: str = ""  # everything before the first group but the title: what the plan is about
    documents_named: tuple[str, ...] = ()  # design documents the plan itself names, as written
    # (line, message) of an agent that cannot run as configured: an error for a run,
    # not for a dry run, which lists the plan anyway (see agent_error).
    agent_problem: tuple[int, str] | None = None
    # Whether the optional items run (--optional): then they wait, and are waited for, in
    # their place; else nothing waits for them. See with_optional.
    runs_optional: bool = False
    _index: dict = field(default_factory=dict, compare=False, repr=False)
    # Each item's upstream, made once: items that wait for the same things share one
    # tuple, so that what depends on it can be worked out once per tuple.
    _upstream: dict = field(default_factory=dict, compare=False, repr=False)
    _task_dep: dict = field(default_factory=dict, compare=False, repr=False)
    _everything: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for position, group in enumerate(self.groups):
            self._index[group.slug] = (position, group, {item.module: item for item in group.items})
        for position, group in enumerate(self.groups):
            previous = self.groups[position - 1] if position else None
            stage, before = group.items[0].stage if group.items else 0, ()
            current: list[Item] = []
            for item in group.items:
                if item.stage != stage:  # a new stage waits for the whole stage before it
                    stage = item.stage
                    if current:  # a stage of optional items alone, left out: the one before it stands
                        before, current = tuple(current), []
                if self.runs_optional or not item.optional:
                    current.append(item)
                if before:
                    waits = self._after_stage(before, group, previous, item)
                else:
                    waits = self._waits_for(position, group, previous, item)
                self._upstream[item.key], self._task_dep[item.key] = waits

    def _after_stage(self, before, group, previous, item) -> tuple[tuple[Item, ...], list[str]]:
        """An item after the first stage of its group waits for the stage before it, which
        waits for what the group waits for; with `pipeline`, for its module's item too."""
        edge = self._pipeline_edge(group, previous, item)
        if edge is not None and all(edge is not waited for waited in before):
            return before + (edge,), [i.key for i in before] + [edge.key]
        return before, [i.key for i in before]

    def _waits_for(self, position, group, previous, item) -> tuple[tuple[Item, ...], list[str]]:
        """What an item of a group's first stage waits for, as items and as doit task names.
        Items that wait for the same things share one tuple, so that what follows from it
        is worked out once per tuple (see staleness and dispatcher)."""
        if previous is None:
            return (), []
        if group.settings.get("after") == "all":  # a barrier: everything before it
            earlier = self.groups[:position]
            if position not in self._everything:
                self._everything[position] = tuple(i for g in earlier for i in g.items if self.runs_optional or not i.optional)
            return self._everything[position], [g.slug for g in earlier]
        edge = self._pipeline_edge(group, previous, item)
        if edge is not None:
            return (edge,), [edge.key]
        return self._required(previous), [previous.slug]

    def _required(self, group: Group) -> tuple[Item, ...]:
        """The group's items but the optional ones: the same tuple for every item after it."""
        key = ("required", group.slug)
        if key not in self._everything:
            required = tuple(item for item in group.items if self.runs_optional or not item.optional)
            self._everything[key] = group.items if len(required) == len(group.items) else required
        return self._everything[key]

    def _pipeline_edge(self, group, previous, item) -> Item | None:
        """With `pipeline`, the same module's item in the group before (unless that group is
        a barrier), when both name their module."""
        if previous is None or not group.settings.get("pipeline") or previous.settings.get("after") == "all":
            return None
        return None if group.settings.get("after") == "all" else self._same_module(previous, item)

    def _same_module(self, group: Group, item: Item) -> Item | None:
        """The item of that group with this one's module, when both name their module."""
        if not item.module_given:
            return None
        same = self._index[group.slug][2].get(item.module)
        return same if same is not None and same.module_given else None

    def with_optional(self) -> "Plan":
        """The same plan, its optional items run in their place: waiting, and waited for."""
        if self.runs_optional or not any(item.optional for item in self.items()):
            return self
        return replace(self, runs_optional=True, _index={}, _upstream={}, _task_dep={}, _everything={})

    def group(self, slug: str) -> Group:
        return self._index[slug][1]

    def items(self):
        for group in self.groups:
            yield from group.items

    def previous_group(self, item: Item) -> Group | None:
        position = self._index[item.group][0]
        return self.groups[position - 1] if position else None

    def upstream(self, item: Item) -> tuple[Item, ...]:
        """The items this one waits for: every item of the group before it; with `pipeline`,
        only the same module's item there, if it has one; in an `after: all` group,
        everything before it; after such a group, all of it. In a group whose items run
        in order (its stages), an item after the first stage waits for the stage before."""
        return self._upstream[item.key]

    def task_dep(self, item: Item) -> list[str]:
        return self._task_dep[item.key]

    def previous(self, item: Item) -> Item | None:
        """The same module's item in the group before, whose result the prompt may use."""
        previous = self.previous_group(item)
        return self._same_module(previous, item) if previous else None

    def agent_error(self):
        """The agent problem as the TaskFileError a run raises (None when there is none)."""
        from ..errors import TaskFileError

        return TaskFileError(self.path, *self.agent_problem) if self.agent_problem else None
