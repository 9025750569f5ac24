"""The plan: what task.md asks for, as plain data, and how its items depend on each other."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


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
    key: str = field(init=False, compare=False)  # its doit task name, GROUP:MODULE
    digest: str = field(init=False, compare=False)  # of its module and instruction: part of its fingerprint

    def __post_init__(self):
        object.__setattr__(self, "key", f"{self.group}:{self.module}")
        object.__setattr__(self, "digest", digest(self.module, self.instruction))

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


@dataclass(frozen=True)
class Plan:
    path: Path  # task.md, absolute
    title: str
    settings: Mapping[str, Any]  # the front matter, checked
    groups: tuple[Group, ...]
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
            for item in group.items:
                self._upstream[item.key], self._task_dep[item.key] = self._waits_for(position, group, previous, item)

    def _waits_for(self, position, group, previous, item) -> tuple[tuple[Item, ...], list[str]]:
        """What an item waits for, as items and as doit task names. Items that wait for
        the same things share one tuple, so that what follows from it is worked out
        once per tuple (see staleness and dispatcher)."""
        if previous is None:
            return (), []
        if group.settings.get("after") == "all":  # a barrier: everything before it
            earlier = self.groups[:position]
            if position not in self._everything:
                self._everything[position] = tuple(i for g in earlier for i in g.items)
            return self._everything[position], [g.slug for g in earlier]
        same_module = self._index[previous.slug][2].get(item.module)
        # With `pipeline`, only the same module's item before, unless that group is a barrier.
        if group.settings.get("pipeline") and same_module is not None and previous.settings.get("after") != "all":
            return (same_module,), [same_module.key]
        return previous.items, [previous.slug]

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
        everything before it; after such a group, all of it."""
        return self._upstream[item.key]

    def task_dep(self, item: Item) -> list[str]:
        return self._task_dep[item.key]

    def previous(self, item: Item) -> Item | None:
        """The same module's item in the group before, whose result the prompt may use."""
        previous = self.previous_group(item)
        return self._index[previous.slug][2].get(item.module) if previous else None
