"""The batch's state folder: one folder per item, records written atomically, one run at a time.

    .batch/<task file stem>/
        run.lock                  held (flock) by the run in progress; says its pid
        doit.sqlite               doit's own dependency records
        items/<group>/<module>/
            prompt.md             the prompt of the latest attempt
            output.log            everything the agent printed, appended live
            events.jsonl          what it did, one normalized event a line, appended live
            running.json          the attempt in progress (left behind only by a killed run)
            result.json           the success record: the item's doit target; set aside as
                                  result.previous.json when an attempt starts
            failure.json          why the last attempt failed or was interrupted
            forgotten.json        `doit forget` was used; the result it had is in result.forgotten.json
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psutil

from .attempt_processes import is_same_process
from .errors import BatchError

RESULT = "result.json"
FAILURE = "failure.json"
RUNNING = "running.json"
FORGOTTEN = "forgotten.json"


@lru_cache(maxsize=None)
def safe_name(name: str) -> str:
    """A folder name for any module or group name, never leaving its parent folder.

    Names that are not already plain get a short hash, so that distinct names
    never share a folder (`src/auth` and `src-auth` differ).
    """
    plain = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:80] or "item"
    if plain == name:
        return plain
    return f"{plain}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def write_json_atomic(path: Path | str, data: Any, durable: bool = False) -> None:
    """Write a record whole or not at all (temp file, rename); `durable` also survives
    a crash of the machine (fsync), for records that stand for money spent."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.replace(temporary, path)  # visible to the next run at once...
            if durable:
                os.fsync(stream.fileno())  # ...and then safe from a crash of the machine
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path | str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as stream:
            data = json.loads(stream.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return None  # unreadable records count as absent: the item simply runs again
    return data if isinstance(data, dict) else None


class ItemState:
    """The state folder of one item. Its paths are strings: a big batch makes tens of
    thousands of them on every load, and pathlib would take a third of that time."""

    def __init__(self, folder: str):
        self.folder = folder
        self.prompt = f"{folder}/prompt.md"
        self.log = f"{folder}/output.log"
        self.events = f"{folder}/events.jsonl"
        self.result = f"{folder}/{RESULT}"
        self.failure = f"{folder}/{FAILURE}"
        self.running = f"{folder}/{RUNNING}"
        self.forgotten = f"{folder}/{FORGOTTEN}"

    def files(self) -> frozenset[str]:
        try:
            return frozenset(os.listdir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()

    def read_result(self) -> dict[str, Any] | None:
        return read_json(self.result)

    def forget(self) -> None:
        """Set the result aside, so the item runs again and says why."""
        if os.path.exists(self.result):
            os.replace(self.result, f"{self.folder}/result.forgotten.json")
            write_json_atomic(self.forgotten, {"forgotten_at": time.time()})

    def set_result_aside(self) -> None:
        """An attempt starts: its result, if any, is no longer the latest word."""
        try:
            os.replace(self.result, f"{self.folder}/result.previous.json")
        except FileNotFoundError:
            pass

    def remove_temporary_files(self) -> None:
        """What write_json_atomic left behind when its run was killed mid-write."""
        self.remove(*(f"{self.folder}/{name}" for name in self.files() if name.startswith(".") and name.endswith(".tmp")))

    def remove(self, *paths: str) -> None:
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


class BatchState:
    """The state folder of one task file."""

    def __init__(self, taskfile: Path):
        self.taskfile = taskfile
        self.root = taskfile.parent / ".batch" / safe_name(taskfile.stem)
        self._items = str(self.root / "items")
        self.db = self.root / "doit.sqlite"
        self.lock_file = self.root / "run.lock"
        self.tick_lock = self.root / "tick.lock"

    def item(self, group: str, module: str) -> ItemState:
        return ItemState(f"{self._items}/{safe_name(group)}/{safe_name(module)}")

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BatchError(f"cannot create the state folder {self.root}: {error.strerror}") from None

    @contextmanager
    def run_lock(self):
        """Held for a whole run; the kernel frees it when the holder dies, so it is never stale.

        Yields whether the run before was killed: a run that ends clears the file,
        so a holder still named in it died without ending."""
        self.ensure()
        stream = open(self.lock_file, "a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = lock_holder(self)
                raise BatchError(
                    f"another run ({holder['text'] if holder else 'pid unknown'}) is running "
                    f"{self.taskfile.name}; wait for it to end, or stop it, then run again"
                ) from None
            stream.seek(0)
            killed_before = bool(stream.read().strip())
            stream.seek(0)
            stream.truncate()
            me = psutil.Process()
            stream.write(json.dumps({"pid": me.pid, "create_time": me.create_time(), "started": time.time()}))
            stream.flush()
            try:
                yield killed_before
            finally:
                stream.seek(0)
                stream.truncate()
        finally:
            stream.close()


def lock_holder(state: BatchState) -> dict[str, Any] | None:
    """The run that holds the batch now, or None. Read without locking, so that
    looking never gets in a run's way: a holder that died is no holder."""
    holder = read_json(state.lock_file)
    try:
        if not is_same_process(holder["pid"], holder["create_time"]):
            return None
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
    except (TypeError, KeyError, ValueError):
        return None
    return {**holder, "text": f"pid {holder['pid']}, started {started}"}


@contextmanager
def file_lock(path: Path):
    """An exclusive lock between threads and processes of this batch."""
    with open(path, "a", encoding="utf-8") as stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)
