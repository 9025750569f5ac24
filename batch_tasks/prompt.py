"""Rendering an item's prompt from a Jinja2 template, in Jinja2's sandbox.

Templates come from task.md (`template:`) or, by default, templates/prompt.md.j2.
A template cannot run Python code: the sandbox refuses attribute tricks, and
task.md's text reaches it only as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .errors import BatchError, TaskFileError

DEFAULT_TEMPLATE = "prompt.md.j2"


@dataclass(frozen=True)
class Template:
    name: str  # for messages: the path as the user wrote it, or the default's name
    source: str


def load_template(taskfile: Path, setting: str | None) -> Template:
    """The template a group uses; a missing or malformed one is an error before anything runs."""
    if setting is None:
        source = resources.files("batch_tasks.templates").joinpath(DEFAULT_TEMPLATE).read_text(encoding="utf-8")
        return _checked(Template(f"templates/{DEFAULT_TEMPLATE}", source))
    path = taskfile.parent / setting
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise BatchError(f"{taskfile.name}: template {setting!r} cannot be read: {reason}") from None
    return _checked(Template(setting, source))


def _checked(template: Template) -> Template:
    try:
        _compiled(template.source)
    except jinja2.TemplateSyntaxError as error:
        raise TaskFileError(template.name, error.lineno, f"template error: {error.message}") from None
    return template


@lru_cache(maxsize=64)
def _compiled(source: str) -> jinja2.Template:
    return _environment().from_string(source)


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """The prompt; raises BatchError when the template asks for what is not there."""
    try:
        return _compiled(template.source).render(context).strip() + "\n"
    except jinja2.TemplateError as error:
        raise BatchError(f"template {template.name}: {error}") from None
