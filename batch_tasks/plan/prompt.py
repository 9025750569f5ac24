"""Rendering an item's prompt from a Jinja2 template, in Jinja2's sandbox.

Templates come from task.md (`template:`), always a file inside task.md's folder
(no absolute path, no `..` out of it, no symbolic link out of it, nothing but a
regular file), or by default from templates/prompt.md.j2; a session continued after
its check failed is told templates/resume.md.j2. A template cannot run
Python code: the sandbox refuses attribute tricks, task.md's text reaches it only
as data, it cannot include, import or extend other templates (there is no loader),
and ranges and repetitions are bounded, so it cannot take all memory either.
It may touch: the template file it is asked for, read only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ..errors import BatchError, TaskFileError

DEFAULT_TEMPLATE = "prompt.md.j2"
RESUME_TEMPLATE = "resume.md.j2"  # for a session continued after its check failed
REVIEW_TEMPLATE = "review.md.j2"  # for a reviewer agent (`review: agent`)
MAX_TEMPLATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Template:
    name: str  # for messages: the path as the user wrote it, or the default's name
    source: str


def load_template(taskfile: Path, setting: str | None, line: int = 0) -> Template:
    """The template a group uses; a missing, outside or malformed one is an error at `line`
    (where the setting is, or the group's heading) before anything runs."""
    if setting is None:
        return _packaged(DEFAULT_TEMPLATE)
    line = _setting_line(taskfile, line)
    source = _read_inside(taskfile, setting, line)
    return _checked(Template(setting, source))


def resume_template() -> Template:
    """What a continued session is told after its check failed: the failure, not the whole prompt again."""
    return _packaged(RESUME_TEMPLATE)


def review_template() -> Template:
    """What a reviewer agent is told (see reviewer.py): the instruction, the check, the diff."""
    return _packaged(REVIEW_TEMPLATE)


@lru_cache(maxsize=4)
def _packaged(name: str) -> Template:
    """One of ours: not checked at load (the tests render them), so that listing needs no Jinja2."""
    source = resources.files("batch_tasks.templates").joinpath(name).read_text(encoding="utf-8")
    return Template(f"templates/{name}", source)


def _read_inside(taskfile: Path, setting: str, line: int) -> str:
    def refuse(reason: str):
        return TaskFileError(taskfile, line, f"template {setting!r} {reason}")

    folder = os.path.realpath(taskfile.parent)
    target = os.path.realpath(os.path.join(folder, setting))
    if os.path.isabs(setting) or os.path.commonpath([folder, target]) != folder:
        raise refuse("is outside the task file's folder: a template must be a file inside it")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise refuse(f"cannot be read: {error.strerror}") from None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("is not a regular file")
        if info.st_size > MAX_TEMPLATE_BYTES:
            raise refuse(f"is {info.st_size} bytes; templates are limited to {MAX_TEMPLATE_BYTES} bytes")
        data = stream.read(MAX_TEMPLATE_BYTES + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("is not UTF-8 text") from None


def _setting_line(taskfile: Path, group_line: int) -> int:
    """The line that sets `template`: the group's hint, else the front matter's, else the heading.
    Looked for only to say where a template is wrong."""
    try:
        lines = taskfile.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return group_line
    front_end = 0
    if lines and lines[0].strip() == "---":
        front_end = next((n for n in range(1, len(lines)) if lines[n].strip() in ("---", "...")), 0)
    for number in range(group_line, len(lines)):
        text = lines[number].strip()
        if text.startswith("#"):
            break
        if text.startswith("<!--") and text[4:].lstrip().startswith("template"):
            return number + 1
    for number in range(1, front_end):
        if lines[number].startswith("template"):
            return number + 1
    return group_line


def _checked(template: Template) -> Template:
    from . import sandbox  # Jinja2 only where a template is checked or rendered: a listing needs neither

    try:
        tree = sandbox.environment().parse(template.source)
    except sandbox.TemplateSyntaxError as error:
        raise TaskFileError(template.name, error.lineno, f"template error: {error.message}") from None
    for kind, verb in sandbox.NOT_ALLOWED.items():
        for node in tree.find_all(kind):
            raise TaskFileError(template.name, node.lineno, f"a template cannot {verb} other templates: put it all in one")
    sandbox.compiled(template.source)
    return template


def render(template: Template, context: Mapping[str, Any]) -> str:
    """The prompt; raises BatchError when the template asks for what is not there, or too much."""
    from . import sandbox

    try:
        return sandbox.compiled(template.source).render(context).strip() + "\n"
    except sandbox.TemplateError as error:
        raise BatchError(f"template {template.name}: {error}") from None
    except (ArithmeticError, MemoryError, RecursionError, TypeError, ValueError) as error:
        raise BatchError(f"template {template.name}: {error.__class__.__name__}: {error}") from None
