"""task.md's front matter: the batch's settings, each checked at its line, and the
metadata other tools write there (spec-kit's `description:`), kept and ignored; other
keys are kept aside, for taskfile to refuse in a batch task.md or keep in another tool's plan.

Reads only the lines it is given; every mistake is a TaskFileError naming its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SettingError, TaskFileError
from . import settings as settings_mod

# What reading YAML can raise besides YAMLError: its constructors trust their input
# (`2024-13-45` as a date, `!!int x`), and deep nesting recurses.
YAML_TROUBLE = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)
MAX_ALIAS_GROWTH = 1024 * 1024  # characters YAML aliases may add to the front matter


@dataclass
class FrontMatter:
    settings: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # the line of each setting
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[int, str]] = field(default_factory=list)
    body_start: int = 0  # the index of the first line after it
    present: bool = False
    # Keys that are no setting and no near miss of one, by name: (line, the error a batch
    # task.md gets for it). A plan another tool wrote keeps them as metadata (see taskfile).
    unknown: dict[str, tuple[int, str]] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """Metadata as plain data (text, numbers, tuples, mappings), as the plan holds it:
    a YAML date becomes its ISO text."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def read(lines: list[str], path: Path) -> FrontMatter:
    if not lines or lines[0].rstrip() != "---":
        return FrontMatter()
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            break
    else:
        raise TaskFileError(path, 1, "the front matter opened here is never closed (add a line `---` after the settings)")
    import yaml

    source = "\n".join(lines[1:end])
    found = FrontMatter(body_start=end + 1, present=True)

    def line_of(mark) -> int:
        # From the character offset: YAML also breaks lines at U+2028 and the like; task.md does not.
        return source.count("\n", 0, mark.index) + 2 if mark else 1

    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        problem = error.problem or error.context
        raise TaskFileError(path, line_of(error.problem_mark or error.context_mark), f"front matter is not valid YAML: {problem}") from None
    except (yaml.YAMLError, *YAML_TROUBLE) as error:
        raise TaskFileError(path, 2, f"front matter cannot be read: {error}") from None
    if node is None:
        return found
    if not isinstance(node, yaml.MappingNode):
        raise TaskFileError(path, 2, "front matter must be settings, one `key: value` a line")

    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = line_of(key_node.start_mark)
        name = key_node.value
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(name, str):
            raise TaskFileError(path, line, "setting names must be plain words")
        if name in seen:
            raise TaskFileError(path, line, f"setting {name!r} is given twice (also at line {seen[name]})")
        seen[name] = line
        if _expanded_size(value_node) > len(source) + MAX_ALIAS_GROWTH:
            raise TaskFileError(path, line, f"setting {name!r} is too big once its YAML aliases are expanded")
        try:
            value = yaml.SafeLoader("").construct_document(value_node)
        except (yaml.YAMLError, *YAML_TROUBLE) as error:
            raise TaskFileError(path, line, f"setting {name!r} has a value that cannot be read: {error}") from None
        if name not in settings_mod.FIELDS and name.lower() in settings_mod.METADATA_KEYS:
            found.metadata[name] = _plain(value)
            found.notes.append((line, f"front matter {name!r} is metadata, not a setting: kept and ignored"))
            continue
        try:
            found.settings[name] = settings_mod.parse_setting(name, value, in_group=False)
        except SettingError as error:
            if name in settings_mod.FIELDS or settings_mod.near_miss(name, in_group=False) is not None:
                raise TaskFileError(path, line, str(error)) from None
            found.unknown[name] = (line, str(error))
            found.metadata[name] = _plain(value)
            continue
        found.lines[name] = line
    return found


def _expanded_size(root) -> float:
    """The characters a YAML value holds once its aliases are expanded, counted without
    expanding them (each node once); a value that contains itself is infinite."""
    sizes: dict[int, float] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes and not children_done:
            continue
        children = [] if isinstance(node.value, str) else [n for pair in node.value for n in (pair if isinstance(pair, tuple) else (pair,))]
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(child), float("inf")) for child in children)
        elif isinstance(node.value, str):
            sizes[id(node)] = 1 + len(node.value)
        else:
            sizes[id(node)] = float("inf")  # until its children are counted: a cycle stays infinite
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]
