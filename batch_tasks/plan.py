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

    def __post_init__(self):
        for position, group in enumerate(self.groups):
            self._index[group.slug] = (position, group, {item.module: item for item in group.items})

    def group(self, slug: str) -> Group:
        return self._index[slug][1]

    def items(self):
        for group in self.groups:
            yield from group.items

    def previous_group(self, item: Item) -> Group | None:
        position = self._index[item.group][0]
        return self.groups[position - 1] if position else None

    def upstream(self, item: Item) -> tuple[Item, ...]:
        """The items this one waits for: every item of the group before it."""
        previous = self.previous_group(item)
        return previous.items if previous else ()

    def previous(self, item: Item) -> Item | None:
        """The same module's item in the group before, whose result the prompt may use."""
        previous = self.previous_group(item)
        return self._index[previous.slug][2].get(item.module) if previous else None
