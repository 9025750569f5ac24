"""Parsing task.md into a Plan.

The format, in short (the README has it in full): optional YAML front matter of
settings; every heading starts a group; checkbox list items at the top list level
under a heading are the items; `<!-- key: value -->` comments are group hints.
Every mistake is a TaskFileError naming its line. PyYAML and markdown-it are
imported only when a plan must be parsed: an unchanged task.md is read from its
cache, and starting fast matters when a batch has ten thousand items.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
import textwrap
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__
from . import settings as settings_mod
from .agents import AGENTS
from .errors import SettingError, TaskFileError
from . import plan as plan_mod
from .plan import Group, Item, Plan

MAX_BYTES = 16 * 1024 * 1024
MAX_ALIAS_GROWTH = 1024 * 1024  # characters YAML aliases may add to the front matter
MAX_NAME = 200  # characters of a module or group name: they go into every item's environment


@lru_cache(maxsize=1)
def _plan_format() -> str:
    """What makes a plan what it is: the code of these modules. A plan cached by other
    code (another release, or a changed checkout) is not used."""
    sources = [Path(module.__file__).read_bytes() for module in (sys.modules[__name__], plan_mod, settings_mod)]
    return hashlib.sha256(b"\0".join(sources) + __version__.encode()).hexdigest()




CHECKBOX = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([ xX])\](?:[ \t]+|$)(.*)$")
MODULE = re.compile(r"^(`?)([^\s`]+?)\1:(?:\s+|$)(.*)$", re.S)
HINT = re.compile(r"^<!--\s*([A-Za-z_][\w-]*)\s*:(.*?)-->\s*$", re.S)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def slugify(text: str) -> str:
    """`Extract interfaces` → `extract-interfaces`; keeps letters of any script."""
    return re.sub(r"[\W_]+", "-", text.lower()).strip("-")


def load_plan(path: Path, cache_dir: Path | None = None) -> Plan:
    """Read and parse task.md, reusing the plan cached for exactly these bytes.

    Parsing 10,000 items takes markdown-it about half a second; hashing and
    unpickling them a few hundredths, so a batch that did not change loads fast.
    """
    data = _read(path)
    cache = None
    if cache_dir is not None:
        plan_format = _plan_format()
        digest = hashlib.sha256(data).hexdigest()
        cache = cache_dir / "plan.pickle"
        try:
            with open(cache, "rb") as stream:
                version, cached_digest, cached_path, plan = pickle.load(stream)
            if (version, cached_digest, cached_path) == (plan_format, digest, str(path)):
                return plan
        except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError, pickle.UnpicklingError):
            pass  # no cache, or an unusable one: parse afresh
    plan = parse(_decode(path, data), path)
    if cache is not None:
        _write_cache(cache, (plan_format, digest, str(path), plan))
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


def _write_cache(cache: Path, payload) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as stream:
            pickle.dump(payload, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, cache)
    except OSError:
        pass  # a cache that cannot be written only costs time


def parse(text: str, path: Path) -> Plan:
    """Parse task.md's text (without BOM) into a Plan, or raise TaskFileError."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    batch_settings, setting_lines, body_start = _front_matter(lines, path)
    # Blank out the front matter so that markdown-it's line numbers stay the file's own.
    markdown = "\n".join([""] * body_start + lines[body_start:])
    tokens = _tokens(markdown)

    title = None
    sections: list[dict[str, Any]] = []  # one per heading, in document order
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            heading = tokens[index + 1].content.strip()
            line = token.map[0]
            if title is None and token.tag == "h1":
                title = heading
            sections.append({"title": heading, "line": line + 1, "source": lines[line], "hints": {}, "items": []})
        elif token.type == "html_block" and token.level == 0:
            _hint(token, sections, path)
        elif token.type == "list_item_open" and token.level == 1:
            _item(token, lines, sections, path)

    groups = _groups(sections, batch_settings, setting_lines, path)
    return Plan(path=path, title=title or path.stem, settings=batch_settings, groups=groups)


# What reading YAML can raise besides YAMLError: its constructors trust their input
# (`2024-13-45` as a date, `!!int x`), and deep nesting recurses.
YAML_TROUBLE = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


def _front_matter(lines: list[str], path: Path) -> tuple[dict[str, Any], dict[str, int], int]:
    """The checked settings, the line of each, and the index of the first line after them."""
    if not lines or lines[0].rstrip() != "---":
        return {}, {}, 0
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            break
    else:
        raise TaskFileError(path, 1, "the front matter opened here is never closed (add a line `---` after the settings)")
    import yaml

    source = "\n".join(lines[1:end])

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
        return {}, {}, end + 1
    if not isinstance(node, yaml.MappingNode):
        raise TaskFileError(path, 2, "front matter must be settings, one `key: value` a line")

    settings: dict[str, Any] = {}
    setting_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = line_of(key_node.start_mark)
        name = key_node.value
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(name, str):
            raise TaskFileError(path, line, "setting names must be plain words")
        if name in setting_lines:
            raise TaskFileError(path, line, f"setting {name!r} is given twice (also at line {setting_lines[name]})")
        if _expanded_size(value_node) > len(source) + MAX_ALIAS_GROWTH:
            raise TaskFileError(path, line, f"setting {name!r} is too big once its YAML aliases are expanded")
        try:
            value = yaml.SafeLoader("").construct_document(value_node)
        except (yaml.YAMLError, *YAML_TROUBLE) as error:
            raise TaskFileError(path, line, f"setting {name!r} has a value that cannot be read: {error}") from None
        try:
            settings[name] = settings_mod.parse_setting(name, value, in_group=False)
        except SettingError as error:
            raise TaskFileError(path, line, str(error)) from None
        setting_lines[name] = line
    return settings, setting_lines, end + 1


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


def _tokens(markdown: str):
    # markdown-it stops descending at its nesting limit (20) and reads on, so even
    # a file of ten thousand `>` parses in bounded time and depth.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").parse(markdown)


def _hint(token, sections: list[dict[str, Any]], path: Path) -> None:
    match = HINT.match(token.content.strip())
    if not match:
        return  # an ordinary comment or HTML
    line = token.map[0] + 1
    if not sections:
        raise TaskFileError(path, line, "a hint must be inside a group (under a heading)")
    import yaml

    name, raw = match.group(1), match.group(2).strip()
    hints = sections[-1]["hints"]
    if name in hints:
        raise TaskFileError(path, line, f"hint {name!r} is given twice in this group")
    try:
        value = yaml.safe_load(raw) if raw else None
    except (yaml.YAMLError, *YAML_TROUBLE):
        raise TaskFileError(path, line, f"hint {name!r} has a value that cannot be read: {raw[:80]!r}") from None
    try:
        hints[name] = (settings_mod.parse_setting(name, value, in_group=True), line)
    except SettingError as error:
        raise TaskFileError(path, line, str(error)) from None


def _item(token, lines: list[str], sections: list[dict[str, Any]], path: Path) -> None:
    start, end = token.map
    first = lines[start]
    match = CHECKBOX.match(first)
    if not match:
        return  # a plain list item: prose, not work
    line = start + 1
    if not sections:
        raise TaskFileError(path, line, "this item is outside of any group: add a heading above it")
    mark, text = match.groups()
    text = text.strip()
    module_match = MODULE.match(text)
    if module_match:
        module, text = module_match.group(2), module_match.group(3).strip()
    else:
        module = slugify(text)[:48].strip("-")
    if not module:
        raise TaskFileError(path, line, "this item has no text: say what is to be done")
    if len(module) > MAX_NAME:
        raise TaskFileError(path, line, f"module name is {len(module)} characters long; at most {MAX_NAME}")
    if CONTROL_CHARS.search(module):
        raise TaskFileError(path, line, f"module name {module!r} contains a control character")
    body_lines = lines[start + 1 : end]
    while body_lines and not body_lines[-1].strip():
        body_lines.pop()
    sections[-1]["items"].append(
        Item(
            group="",  # set once the group's slug is known
            module=module,
            text=text,
            body=textwrap.dedent("\n".join(body_lines)).strip("\n"),
            done=mark != " ",
            line=line,
            source_line=first,
        )
    )


def _groups(sections, batch_settings, setting_lines, path: Path) -> tuple[Group, ...]:
    groups: list[Group] = []
    seen_slugs: dict[str, int] = {}
    for section in sections:
        if not section["items"]:
            continue  # a heading without items is just a section
        slug = slugify(section["title"]) or f"group-{section['line']}"
        if len(slug) > MAX_NAME:
            raise TaskFileError(path, section["line"], f"heading is {len(section['title'])} characters long; at most {MAX_NAME}")
        if slug in seen_slugs:
            raise TaskFileError(
                path, section["line"], f"group {slug!r} has the same name as the group at line {seen_slugs[slug]}"
            )
        seen_slugs[slug] = section["line"]
        hints = {name: value for name, (value, _) in section["hints"].items()}
        group_settings = settings_mod.resolve(batch_settings, hints)
        _check_agent_settings(group_settings, section, setting_lines, path)

        items: list[Item] = []
        seen_modules: dict[str, int] = {}
        for item in section["items"]:
            if item.module in seen_modules:
                raise TaskFileError(
                    path,
                    item.line,
                    f"module {item.module!r} appears twice in group {slug!r} (also at line {seen_modules[item.module]})",
                )
            seen_modules[item.module] = item.line
            items.append(replace(item, group=slug))
        groups.append(
            Group(
                slug=slug,
                title=section["title"],
                line=section["line"],
                source_line=section["source"],
                settings=group_settings,
                items=tuple(items),
                limit=hints.get("parallel"),
            )
        )
    return tuple(groups)


def _check_agent_settings(group_settings, section, setting_lines, path: Path) -> None:
    """An agent's own requirements (the command agent needs `command`), at the line that set it."""
    try:
        AGENTS[group_settings["agent"]].check_settings(group_settings)
    except SettingError as error:
        hints = section["hints"]
        names = ([error.setting] if error.setting else []) + ["agent", "command"]
        hint_line = next((hints[name][1] for name in names if name in hints), None)
        line = hint_line or next((setting_lines[name] for name in names if name in setting_lines), section["line"])
        raise TaskFileError(path, line, str(error)) from None
