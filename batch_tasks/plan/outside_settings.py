"""Settings given from outside the plan, so that a plan another tool generates (and rewrites)
runs without being edited: a `batch-tasks.toml` beside it, else a `[tool.batch-tasks]` table
in the nearest `pyproject.toml` above it (up to its repository's top); and `--set KEY=VALUE`
on the command line, the value read as YAML.

The order, each over the one before: those files, the plan's front matter, its hints,
`--set`. Each value is checked as the front matter's are (settings.parse_setting); a
mistake is one error naming the file (and line) or the `--set` that made it.
Reads those files only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BatchError, SettingError, TaskFileError

BESIDE = "batch-tasks.toml"
PYPROJECT = "pyproject.toml"
SET_OPTION = "--set"


@dataclass(frozen=True)
class Outside:
    """The settings of the files (`below`: under the front matter) and of --set (`above`: over everything)."""

    below: dict[str, Any] = field(default_factory=dict)
    below_source: str = ""  # e.g. "pyproject.toml [tool.batch-tasks]", as a path relative to the plan's folder
    above: dict[str, Any] = field(default_factory=dict)

    def salt(self) -> bytes:
        """What the plan cache's key must also cover: these settings change the plan."""
        return repr((sorted(self.below.items()), self.below_source, sorted(self.above.items()))).encode()

    def __bool__(self) -> bool:
        return bool(self.below or self.above)


def gather(plan_path: Path, sets: list[str] | tuple[str, ...] = ()) -> Outside:
    found = settings_file(plan_path)
    below, source = ({}, "") if found is None else _read_file(*found)
    return Outside(below, source, parse_sets(sets))


def settings_file(plan_path: Path) -> tuple[Path, str] | None:
    """The file that gives the plan settings, and the table they are in ('' for the top level)."""
    folder = plan_path.absolute().parent
    if (folder / BESIDE).is_file():
        return folder / BESIDE, ""
    for above in (folder, *folder.parents):
        candidate = above / PYPROJECT
        if candidate.is_file() and re.search(r"(?m)^\s*\[\s*tool\s*\.\s*(?:batch-tasks|\"batch-tasks\")\s*\]", _text(candidate)):
            return candidate, "tool.batch-tasks"
        if (above / ".git").exists():
            return None  # the repository's top: a pyproject.toml above it is another project's
    return None


def digest(plan_path: Path) -> bytes:
    """The bytes of the settings file, if any, digested: a change to it is a change of the batch."""
    found = settings_file(plan_path)
    return hashlib.sha256(b"" if found is None else found[0].read_bytes()).digest()


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TaskFileError(path, 0, f"cannot be read: {error}") from None


def _read_file(path: Path, table: str) -> tuple[dict[str, Any], str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    text = _text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TaskFileError(path, getattr(error, "lineno", 0) or 0, f"is not valid TOML: {error}") from None
    for key in table.split(".") if table else ():
        data = data.get(key, {})
    if not isinstance(data, dict):
        raise TaskFileError(path, 0, f"[{table}] must be a table of settings")
    where = f"{path.name} [{table}]" if table else path.name
    from . import settings as settings_mod  # here: a no-op answered by its stamp only digests these files

    checked = {}
    for name, value in data.items():
        try:
            checked[name] = settings_mod.parse_setting(name, value, in_group=False)
        except SettingError as error:
            raise TaskFileError(path, _line_of(text, name), f"{error} (in [{table}])" if table else str(error)) from None
    return checked, where


def _line_of(text: str, name: str) -> int:
    match = re.search(rf"(?m)^\s*\"?{re.escape(name)}\"?\s*=", text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def parse_sets(sets) -> dict[str, Any]:
    """`--set KEY=VALUE`, each value as YAML (`--set 'command=[python3, worker.py]'`)."""
    if not sets:  # YAML's parser only for a value to read: most commands are given none
        return {}
    import yaml

    from . import settings as settings_mod
    from .front_matter import YAML_TROUBLE

    found: dict[str, Any] = {}
    for given in sets:
        name, equals, raw = given.partition("=")
        name = name.strip()
        if not equals or not name:
            raise BatchError(f"{SET_OPTION} {given!r}: give a setting as KEY=VALUE, e.g. {SET_OPTION} agent=claude")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except (yaml.YAMLError, *YAML_TROUBLE):
            raise BatchError(f"{SET_OPTION} {given!r}: the value is not YAML") from None
        try:
            found[name] = settings_mod.parse_setting(name, value, in_group=False)
        except SettingError as error:
            raise BatchError(f"{SET_OPTION} {given!r}: {error}") from None
    return found


def given_back(args: list[str]) -> list[str]:
    """doit takes every `NAME=VALUE` argument as a variable of its own before a command sees
    it, so `--set agent=claude` arrives as a bare `--set`: each gets its value back, in order."""
    from ..doit_bridge import command_line_variables

    stolen = command_line_variables()
    given = []
    for arg in args:
        given.append(arg)
        if arg == SET_OPTION and stolen:
            name, value = stolen.pop(0)
            given.append(f"{name}={value}")
    return given
