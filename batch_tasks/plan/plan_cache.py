"""The plan cache: a parsed plan kept as data, so that an unchanged task.md is not parsed again.

It touches one file, `plan.json` in the task file's state folder (reached and
written without following any symbolic link), and one secret of the user's,
`$XDG_CACHE_HOME/batch-tasks/plan-cache.key` (else `~/.cache/…`), made once.

- Data only: JSON, read back into the plan's own dataclasses (those of plan.py,
  by name) and plain values; nothing in it is ever run or imported, whatever it says.
  A field added to them is carried as it is, if it holds plain data (text, numbers,
  tuples, lists, dicts, paths, plan.py's dataclasses); anything else leaves the plan
  uncached (parsed every time) until it gets an encoding here.
- Keyed on everything that shapes a plan: every .py file of the package by lstat (agents
  included), its version, the task file's real path, and the file's bytes with
  every item's checkbox mark masked. A tick changes a mark only, so the cache
  survives the ticks of a run: each item's `done` and line as written are read
  from its mark in the file as it is now.
- Signed (HMAC) with the user's secret, kept outside the workspace, so that a state
  folder made by someone else (shared, committed) is never taken. An agent runs as
  the user and can read that secret: so the cache only ever serves what runs nothing
  (listing, `doit info`, `--dry-run`, the graph, deciding there is nothing to run);
  a `run-batch` that runs anything parses task.md afresh (taskfile.load_plan's
  `trust_cache`), and its plan replaces the cache.
- Anything wrong with it (missing, damaged, crafted, made by other code, a link)
  only means that the plan is parsed afresh.
- Never kept for a task.md that names a secret of the environment (see redaction):
  the plan holds its commands, and plan.json would keep the secret in clear.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import hmac
import json
import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..signing import code_digest, sign, signing_key
from ..redaction import Redactor
from . import plan as plan_mod
from .plan import Item, Plan, mark_column

NAME = "plan.json"
FORMAT = 1
MAX_CACHE_BYTES = 256 * 2**20
MASK = 0  # no task file holds a NUL byte (it is refused), so a masked mark is told from any text
LINE_END = re.compile(rb"\r\n|\r|\n")
BOM = b"\xef\xbb\xbf"
MARKS = frozenset(b" xX")

# The dataclasses a cache may name; anything else in it makes it unusable.
CLASSES = {
    name: value for name, value in vars(plan_mod).items() if isinstance(value, type) and dataclasses.is_dataclass(value)
}


# --- where each item's mark is -------------------------------------------------------


def locate_marks(plan: Plan, data: bytes) -> None:
    """Set each item's `mark_offset`: the byte of task.md's DATA between its brackets.

    Done once, on the plan just parsed from DATA and before anyone sees it (hence the
    frozen dataclass is set in place, as its own __post_init__ does)."""
    starts = [3 if data.startswith(BOM) else 0]
    starts += [match.end() for match in LINE_END.finditer(data, starts[0])]
    for item in plan.items():
        column = mark_column(item.source_line)
        if column is None or item.line > len(starts):
            continue
        offset = starts[item.line - 1] + len(item.source_line[:column].encode("utf-8"))
        if data[offset - 1 : offset] == b"[" and data[offset + 1 : offset + 2] == b"]":
            object.__setattr__(item, "mark_offset", offset)


# --- the key ---------------------------------------------------------------------------


def _key(path: Path, data: bytes, marks: list[int]) -> str | None:
    """The key of DATA with the marks at MARKS masked; None if one is not a checkbox mark.
    (The brackets around each are not masked: the key covers them.)"""
    if marks and (min(marks) < 1 or max(marks) >= len(data) or not MARKS.issuperset(map(data.__getitem__, marks))):
        return None
    masked = bytearray(data)
    for offset in marks:
        masked[offset] = MASK
    digest = hashlib.sha256(code_digest())
    digest.update(os.path.realpath(path).encode("utf-8", "surrogateescape") + b"\0")
    digest.update(masked)
    return digest.hexdigest()


def _marks_now(data: bytes, marks: list[int]) -> str:
    return bytes(map(data.__getitem__, marks)).decode("ascii")


def _signature(secret: bytes, key: str, marks_then: str, body: bytes) -> str:
    return sign(secret, f"{key}\0{marks_then}", body)


# --- reading and writing ---------------------------------------------------------------


def load(cache_dir: Path, path: Path, data: bytes) -> Plan | None:
    """The plan cached for task.md's DATA (marks aside), or None."""
    secret = signing_key()
    if secret is None:
        return None
    try:
        folder = _open_folder(cache_dir, path, create=False)
    except OSError:
        return None
    try:
        raw = _read(folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    header_end = raw.find(b"\n")
    try:
        header = json.loads(raw[:header_end])
        marks = header["marks"]
        if header["format"] != FORMAT or not all(type(offset) is int for offset in marks):
            return None
        key = _key(path, data, marks)
        body = raw[header_end + 1 :]
        if key is None or key != header["key"]:
            return None
        marks_then = str(header["marks_then"])
        if not hmac.compare_digest(_signature(secret, key, marks_then, body), str(header["signature"])):
            return None
        # The marks ticked (or unticked) since: those items are read from the file as it is now.
        ticked = {offset for offset, now, then in zip(marks, _marks_now(data, marks), marks_then) if now != then}
        collecting = gc.isenabled()
        gc.disable()  # tens of thousands of new objects, none of them garbage: a collection only costs
        try:
            plan = json.loads(body, object_hook=lambda value: _decode(value, data, ticked))
        finally:
            if collecting:
                gc.enable()
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return None  # damaged, or made by other code: parse afresh
    return plan if isinstance(plan, Plan) and plan.path == path else None


def store(cache_dir: Path, path: Path, data: bytes, plan: Plan) -> None:
    """Keep PLAN, parsed from DATA, for the next load; a cache that cannot be written only costs time."""
    marks = [item.mark_offset for item in plan.items()]
    if Redactor(os.environ)(data) != data:
        return  # task.md names a secret of the environment: it is never kept in clear
    secret = signing_key()
    key = _key(path, data, marks) if all(offset > 0 for offset in marks) else None
    if secret is None or key is None:
        return
    try:
        body = json.dumps(_encode(plan), ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return  # something in the plan that is not plain data: no cache
    marks_then = _marks_now(data, marks)
    signature = _signature(secret, key, marks_then, body)
    header = json.dumps({"format": FORMAT, "key": key, "marks": marks, "marks_then": marks_then, "signature": signature})
    try:
        folder = _open_folder(cache_dir, path, create=True)
    except OSError:
        return
    temporary = f".{NAME}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as stream:
            stream.write(header.encode() + b"\n" + body)
        os.replace(temporary, NAME, src_dir_fd=folder, dst_dir_fd=folder)  # replaces a link, never follows it
    except OSError:
        try:
            os.unlink(temporary, dir_fd=folder)
        except OSError:
            pass
    finally:
        os.close(folder)


def _open_folder(cache_dir: Path, path: Path, create: bool) -> int:
    """A descriptor of CACHE_DIR, reached from the task file's folder without following a link."""
    try:
        parts = cache_dir.relative_to(path.parent).parts
        base = path.parent
    except ValueError:
        parts, base = (cache_dir.name,), cache_dir.parent
    folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, dir_fd=folder)
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
    except BaseException:
        os.close(folder)
        raise
    return folder


def _read(folder: int) -> bytes:
    fd = os.open(NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)  # a FIFO: no wait
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
            raise OSError("not a cache")
        return stream.read()


# --- the generic serializer: dataclasses and plain values, nothing else ----------------
#
# Fields that other code adds to the plan's dataclasses are carried without a change here.
# A tuple is {"~": [...]}, a Path {"~path": "..."}, a dict whose keys are not all plain
# words {"~dict": [[k, v], ...]}, one dataclass {"~Name": [its public fields, in order]},
# and a tuple of dataclasses of one class (a group's items) {"~rows:Name": [one column per
# field]}, a column of tuples {"~tuples": [[...], ...]}: JSON's reader then calls back here
# a few times per group rather than several times per item, which keeps a load of
# 10,000 items as fast as unpickling them was.


@lru_cache(maxsize=None)
def _public_fields(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls) if not field.name.startswith("_"))


@lru_cache(maxsize=None)
def _init_fields(cls: type) -> frozenset[str] | None:
    """The fields to make CLS again with, if it has private fields that its __init__ derives."""
    fields = dataclasses.fields(cls)
    if not any(field.name.startswith("_") for field in fields):
        return None
    return frozenset(field.name for field in fields if field.init and not field.name.startswith("_"))


def _is_rows(value: Any) -> bool:
    return type(value) is tuple and bool(value) and CLASSES.get(type(value[0]).__name__) is type(value[0]) and all(
        type(element) is type(value[0]) for element in value
    )


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if kind is tuple:
        if _is_rows(value):
            cls = type(value[0])
            columns = [_column([getattr(row, name) for row in value]) for name in _public_fields(cls)]
            return {f"~rows:{cls.__name__}": columns}
        return {"~": [_encode(element) for element in value]}
    if kind is list:
        return [_encode(element) for element in value]
    if kind is dict:
        if all(type(name) is str and not name.startswith("~") for name in value):
            return {name: _encode(element) for name, element in value.items()}
        return {"~dict": [[_encode(name), _encode(element)] for name, element in value.items()]}
    if isinstance(value, Path):
        return {"~path": str(value)}
    if CLASSES.get(kind.__name__) is kind:
        return {f"~{kind.__name__}": [_encode(getattr(value, name)) for name in _public_fields(kind)]}
    raise TypeError(f"{kind.__name__} is not plain data")


def _column(values: list[Any]) -> Any:
    if all(type(value) is tuple and not _is_rows(value) for value in values):
        return {"~tuples": [[_encode(element) for element in value] for value in values]}
    return [_encode(value) for value in values]


def _decode(value: dict, data: bytes, ticked: set[int]) -> Any:
    if len(value) != 1:
        return value
    ((tag, content),) = value.items()
    if tag[:1] != "~":
        return value
    if tag == "~":
        return tuple(content)
    if tag == "~tuples":
        return [tuple(element) for element in content]
    if tag == "~path":
        return Path(content)
    if tag == "~dict":
        return {name: element for name, element in content}
    if tag.startswith("~rows:"):
        cls = CLASSES[tag[6:]]
        names = _public_fields(cls)
        if type(content) is not list or len(content) != len(names):
            raise ValueError(f"cached {cls.__name__}s of another shape")
        if cls is Item and ticked:
            _read_marks(dict(zip(names, content)), data, ticked)
        if _init_fields(cls) is not None:
            return tuple(_make(cls, dict(zip(names, row))) for row in zip(*content))
        rows = []
        for row in zip(*content):  # as _make does, inline: this is the loop over every item
            made = cls.__new__(cls)
            made.__dict__.update(zip(names, row))
            rows.append(made)
        return tuple(rows)
    cls = CLASSES[tag[1:]]
    names = _public_fields(cls)
    if type(content) is not list or len(content) != len(names):
        raise ValueError(f"a cached {cls.__name__} of another shape")
    return _make(cls, dict(zip(names, content)))


def _make(cls: type, fields: dict[str, Any]) -> Any:
    init = _init_fields(cls)
    if init is not None:
        return cls(**{name: element for name, element in fields.items() if name in init})
    # Made by this very code (the key says so): its derived fields are as __post_init__ made them.
    made = cls.__new__(cls)
    made.__dict__.update(fields)
    return made


def _read_marks(columns: dict[str, list], data: bytes, ticked: set[int]) -> None:
    """Items as the file has them now, where their marks were ticked since they were cached."""
    lines, done = columns["source_line"], columns["done"]
    for row, offset in enumerate(columns["mark_offset"]):
        if offset in ticked:
            mark = chr(data[offset])
            column = mark_column(lines[row])
            lines[row] = lines[row][:column] + mark + lines[row][column + 1 :]
            done[row] = mark != " "
