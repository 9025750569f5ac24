"""Nothing to do: a batch unchanged since a run that found nothing to do says so at once.

A `run-batch` that finds every item done (nothing to run, repair or skip) leaves a stamp,
`nothing-to-do.json` in the state folder: digests of all it read, and what it said. The
next `run-batch` without a selection or a flag that changes what runs compares them
before it loads anything; when all is as the stamp has it, it gives the same answer
without parsing task.md, reading every record or building a doit task per item.

What is compared (any difference, or anything that cannot be read: the full load):
- the code (every .py file of the package: signing's code digest), doit's and Python's
  versions, the command's doit configuration, the task file's real path and bytes;
- each template the groups use: where it is, its lstat and its bytes' digest;
- doit's database (`doit ignore`, `forget`): its lstat and SQLite's own count of the writes
  committed to it (the file change counter of its header);
- the state folder: every group and item folder, every result record, and every file
  of an item that has none: its lstat (kind, inode, size, mtime, ctime), walked without
  following a link; and run.lock empty (no run in progress, none killed).

A run that ran items and ended with every one of them done leaves the stamp too, with the
answer a full load would give, when it can tell that nothing but itself changed anything
since it began: task.md differs only by the ticks of the items it ran, the rest of the
inputs are as they were, every record of an item it did not run is as it was, no item is
`doit ignore`d, and the record of each item it ran says done. Records younger than
RACY_SECONDS (its own, just written), and doit's database when it is, are kept in the stamp
by their bytes' digest, and compared by their bytes too: a change within the clock's
granularity shows there. The first answer given once they are older stamps them again
without their bytes: a steady no-op reads no record.

A stamp is signed with the user's key (see signing): a state folder someone else made
is never taken. An agent (the same user) could read the key and forge a stamp; that
only keeps items from running, as ticking task.md itself would: a stamp runs nothing. A time from
lstat is trusted only when it is older than RACY_SECONDS at the stamp's writing, since
a change within the file system's clock granularity could leave it as it was: a run
right after records were written leaves no stamp, and the next one does.

It touches the stamp (written by a full load that found nothing to do, written again without
its young files once they are old, removed when stale) and reads the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import marshal
import os
import stat
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import doit

from ..doit_bridge import changed_options, dependency_records_hold_an_ignore
from ..errors import BatchError
from ..plan import outside_settings
from ..plan.prompt import DEFAULT_TEMPLATE
from ..signing import code_digest, sign, signing_key
from ..state.item_status import done_record_bytes
from ..state.state import BatchState, ItemState, open_to_read, write_atomic

if TYPE_CHECKING:
    from ..plan.plan import Item

NAME = "nothing-to-do.json"
FORMAT = 1
RACY_SECONDS = 2.0  # coarser than any file system's clock (FAT's is 2 s)
SQLITE_HEADER = b"SQLite format 3\0"
# The options that change nothing when nothing is to run; with any other one set, or a
# selection, the batch is loaded in full.
HARMLESS_OPTIONS = frozenset({"num_process", "continue", "joblog", "taskfile"})


def may_answer(params, selection: list[str]) -> bool:
    """Whether the command is a plain `run-batch`, whose answer a stamp can give."""
    changed = changed_options(params)
    return not selection and changed is not None and changed <= HARMLESS_OPTIONS


@dataclass(frozen=True)
class Look:
    """What a run-batch sees before it loads: the digests of its inputs and of the state folder."""

    inputs: str  # the code, doit's configuration, the task file's path and bytes
    state: str  # the state folder as lstat sees it
    newest_ns: int  # the latest mtime or ctime in it
    database: str  # doit's records (which a run writes itself, as it closes them)
    database_ns: int = 0  # their mtime or ctime, the later
    others: str = ""  # the inputs but the task file's bytes
    taskfile: bytes = b""
    walked: tuple[tuple, ...] = ()  # (name, its item's folder or None, lstat fields...) of each entry

    @cached_property
    def entries(self) -> dict[str, tuple]:
        """Each entry by name: (its item's folder or None, its lstat fields)."""
        return {entry[0]: (entry[1], entry[2:]) for entry in self.walked if len(entry) > 2}


def look(state: BatchState, config: Mapping[str, Any], holding_the_lock: bool = False) -> Look | None:
    """None if something cannot be read, or a run is in progress (or was killed), unless
    it is the caller's own."""
    try:
        lock = _lstat(str(state.lock_file))
        if not holding_the_lock and lock is not None and lock.st_size:
            return None
        data = Path(state.real_taskfile).read_bytes()
        database, database_ns = _database_identity(str(state.db))
        walked_digest, newest, walked = _state_digest(str(state.root / "items"))
    except (OSError, ValueError):
        return None
    inputs = hashlib.sha256(code_digest())
    inputs.update(f"{doit.__version__}\0{sys.version}\0{state.real_taskfile}\0".encode())
    inputs.update(json.dumps(config, sort_keys=True, default=str).encode() + b"\0")
    try:
        inputs.update(outside_settings.digest(state.taskfile))  # settings from beside the plan change it too
    except (OSError, BatchError):
        return None
    others = inputs.hexdigest()
    inputs.update(hashlib.sha256(data).digest())
    return Look(inputs.hexdigest(), walked_digest, newest, database, database_ns, others, data, walked)


def answer(state: BatchState, seen: Look) -> dict[str, Any] | None:
    """What the last run that found nothing to do said, if nothing changed since; else None."""
    stamp = _read(state)
    if stamp is None:
        return None
    if [stamp.get("inputs"), stamp.get("state"), stamp.get("database")] != [seen.inputs, seen.state, seen.database]:
        return None
    if not all(_template_now(state.taskfile, entry) == entry for entry in stamp.get("templates", ())):
        return None
    young = stamp.get("young", {})
    if not isinstance(young, dict) or not all(_file_digest(name) == digest for name, digest in young.items()):
        return None
    said = stamp.get("said")
    if not isinstance(said, dict):
        return None
    if young and time.time() - max(seen.newest_ns, seen.database_ns) / 1e9 > RACY_SECONDS:
        # Their times now tell any later change: the next answers need not read them.
        _stamp(state, seen, stamp["templates"], said, {})
    return said


def write(state: BatchState, config: Mapping[str, Any], before: Look | None,
          templates: Iterable[tuple[str | None, str]], said: dict[str, Any]) -> None:
    """Keep the answer of a run that found nothing to do, if nothing changed while it ran
    and the state folder is old enough to be told from a later change by its times.
    `templates`: each template setting the groups use (None: the default) and the source read."""
    after = look(state, config, holding_the_lock=True)
    changed = after is None or before is None or (after.inputs, after.state) != (before.inputs, before.state)
    if changed or time.time() - after.newest_ns / 1e9 < RACY_SECONDS:
        forget(state)
        return
    entries = []
    for setting, source in templates:
        entry = _template_entry(state.taskfile, setting)
        if entry is None or entry["digest"] != _digest(source.encode("utf-8")):
            forget(state)
            return
        entries.append(entry)
    _stamp(state, after, entries, said, {})


def write_after_run(state: BatchState, config: Mapping[str, Any], before: Look | None, ran: Iterable[Item],
                    templates: Iterable[tuple[str | None, str]], said: dict[str, Any]) -> None:
    """Keep the answer a full load would give after a run that ran the items RAN and ended with
    all of them done (see the module's docstring), if the run can tell that nothing else changed."""
    ran = list(ran)
    after = look(state, config, holding_the_lock=True)
    folders = {state.item(item.group, item.module).folder for item in ran}
    young = _own_records(folders, after, before) if after is not None and before is not None else None
    if (young is None or after.others != before.others
            or not _only_ticked(before.taskfile, after.taskfile, [item.mark_offset for item in ran])
            or _ignores(str(state.db))):
        forget(state)
        return
    again = look(state, config, holding_the_lock=True)  # nothing moved while the records were read
    entries = [_template_entry(state.taskfile, setting) for setting, _ in templates]
    if (again is None or (again.state, again.inputs) != (after.state, after.inputs)
            or any(entry is None or entry["digest"] != _digest(source.encode("utf-8"))
                   for entry, (_, source) in zip(entries, templates))):
        forget(state)
        return
    _stamp(state, after, entries, said, young)


def _own_records(folders: set[str], after: Look, before: Look) -> dict[str, str] | None:
    """The digests of the young records of the items the run ran (FOLDERS), each read and found
    done; None if any is not, or if anything of another item changed, or is too young to tell."""
    racy_ns = time.time_ns() - int(RACY_SECONDS * 1e9)
    for name in {*after.entries, *before.entries}:
        owner, fields = after.entries.get(name) or before.entries[name]
        if owner is None or owner in folders:
            continue  # a group's folder changes as its items' do
        if after.entries.get(name) != before.entries.get(name) or max(fields[-2:]) > racy_ns:
            return None
    young = {}
    for folder in folders:
        data = done_record_bytes(ItemState(folder))  # the bytes found done are the bytes kept
        if data is None:
            return None
        _, fields = after.entries.get(folder, (None, None))
        if fields is None or max(fields[-2:]) > racy_ns:
            young[f"{folder}/result.json"] = _digest(data)
    return young


def _only_ticked(before: bytes, after: bytes, marks: list[int]) -> bool:
    """Whether AFTER is BEFORE with some of the boxes at MARKS ticked, and nothing else changed."""
    if len(before) != len(after) or any(mark < 0 for mark in marks):
        return False
    untick = bytearray(after)
    for mark in marks:
        if before[mark:mark + 1] == b" ":
            untick[mark:mark + 1] = b" "
    return untick == before


def _file_digest(path: str) -> str | None:
    try:
        with open_to_read(path) as stream:
            return _digest(stream.read())
    except OSError:
        return None


def _stamp(state: BatchState, after: Look, templates: list, said: dict[str, Any], young: dict[str, str]) -> None:
    secret = signing_key()
    if secret is None:
        return
    if time.time() - after.database_ns / 1e9 <= RACY_SECONDS:  # just written, as a run closes it
        database = str(state.db)
        digest = _file_digest(database)
        try:
            unchanged = digest is not None and _database_identity(database)[0] == after.database
        except (OSError, ValueError):
            unchanged = False
        if not unchanged:
            forget(state)
            return
        young = {**young, database: digest}
    body = {"format": FORMAT, "inputs": after.inputs, "state": after.state, "database": after.database,
            "templates": templates, "said": said, "young": young}
    text = json.dumps(body, sort_keys=True)
    try:
        write_atomic(str(state.root / NAME), json.dumps({"body": text, "signature": _sign(secret, text)}) + "\n")
    except OSError:
        pass  # without a stamp the next run only loads in full


def forget(state: BatchState) -> None:
    try:
        os.remove(state.root / NAME)
    except OSError:
        pass


# --- reading the stamp -----------------------------------------------------------------


def _read(state: BatchState) -> dict[str, Any] | None:
    secret = signing_key()
    if secret is None:
        return None
    try:
        with open_to_read(str(state.root / NAME)) as stream:
            outer = json.loads(stream.read(1 << 20))
        text = outer["body"]
        if not isinstance(text, str) or not hmac.compare_digest(_sign(secret, text), str(outer["signature"])):
            return None
        body = json.loads(text)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return body if isinstance(body, dict) and body.get("format") == FORMAT else None


def _sign(secret: bytes, text: str) -> str:
    return sign(secret, "nothing-to-do", text.encode())


# --- what is compared ------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _template_entry(path: Path, setting: str | None) -> dict[str, Any] | None:
    """Where a group's template is read from, as lstat sees it, and its bytes' digest."""
    if setting is None:
        source = resources.files("batch_tasks.templates").joinpath(DEFAULT_TEMPLATE)
        try:
            return {"setting": None, "file": None, "stat": None, "digest": _digest(source.read_bytes())}
        except OSError:
            return None
    target = os.path.realpath(os.path.join(os.path.realpath(path.parent), setting))
    try:
        info = os.lstat(target)
        with open(target, "rb") as stream:
            data = stream.read(1 << 21)
    except OSError:
        return None
    return {"setting": setting, "file": target, "stat": _fields(info), "digest": _digest(data)}


def _template_now(path: Path, entry: Any) -> dict[str, Any] | None:
    """A stamp's entry for a template, made again from the file as it is now."""
    if not isinstance(entry, dict) or not (entry.get("setting") is None or isinstance(entry.get("setting"), str)):
        return None
    return _template_entry(path, entry["setting"])


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _fields(info: os.stat_result) -> list[int]:
    return [info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _database_identity(database: str) -> tuple[str, int]:
    """doit's records as lstat sees them, with SQLite's file change counter (bumped by every
    write committed in its rollback-journal mode: a write within the clock's granularity
    shows there), and their newest time. A journal beside them means a write is under way.
    Raises ValueError if they are not a SQLite file of their own in that mode."""
    for suffix in ("-journal", "-wal"):
        if os.path.lexists(database + suffix):
            raise ValueError("doit's database is being written")
    try:
        fd = os.open(database, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "none", 0
    try:
        info, header = os.fstat(fd), os.pread(fd, 100, 0)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("doit's database is not a file")
    # Bytes 18 and 19: the write and read versions, 1 for a rollback journal (2, WAL, counts no write).
    if header and (not header.startswith(SQLITE_HEADER) or header[18:20] != b"\1\1"):
        raise ValueError("doit's database is not SQLite in rollback-journal mode")
    counter = int.from_bytes(header[24:28], "big")
    return f"{_fields(info)} {counter}", max(info.st_mtime_ns, info.st_ctime_ns)


def _ignores(database: str) -> bool:
    """Whether doit's records may hold a `doit ignore` (then a full load would say an item is skipped)."""
    if _lstat(database) is None:
        return False
    import sqlite3

    try:
        return dependency_records_hold_an_ignore(database)
    except sqlite3.Error:
        return True


def _state_digest(items: str) -> tuple[str, int, tuple[tuple, ...]]:
    """Every group and item folder, result record, and file of an item without one, by lstat,
    each as (name, the item folder it belongs to or None, lstat's fields); their digest; and the
    newest time among them. One plain loop, no call per record, each record's lstat relative
    to its group's folder: it is most of a no-op's own work."""
    walked = [_walked(items, None, _lstat(items))]
    if len(walked[0]) > 2 and stat.S_ISDIR(walked[0][2]):
        lstat = os.lstat
        for group in sorted(os.listdir(items)):
            group_path = f"{items}/{group}"
            info = lstat(group_path)
            walked.append(_walked(group, None, info))
            if not stat.S_ISDIR(info.st_mode):
                continue
            fd = os.open(group_path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                for name in sorted(os.listdir(fd)):
                    path = f"{group_path}/{name}"
                    try:
                        info = lstat(f"{name}/result.json", dir_fd=fd)
                    except FileNotFoundError:
                        # No result: what it has instead (forgotten, failed, running) decides.
                        walked.append(_walked(path, path, lstat(name, dir_fd=fd)))
                        walked += [_walked(entry.path, path, entry.stat(follow_symlinks=False))
                                   for entry in sorted(os.scandir(path), key=lambda entry: entry.name)]
                        continue
                    except NotADirectoryError:  # a file where an item's folder would be
                        info = lstat(name, dir_fd=fd)
                    walked.append((path, path, info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns,
                                   info.st_ctime_ns))
            finally:
                os.close(fd)
    seen = [entry for entry in walked if len(entry) > 2]
    newest = max([entry[5] for entry in seen] + [entry[6] for entry in seen], default=0)  # no call per entry
    # marshal's bytes at a third of repr's cost; its version 2 writes no back-references,
    # which would follow the objects' sharing: equal walks, equal bytes.
    return _digest(marshal.dumps(walked, 2)), newest, tuple(walked)


def _walked(name: str, owner: str | None, info: os.stat_result | None) -> tuple:
    if info is None:
        return (name, owner)
    return (name, owner, info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
