"""The one reader of an item's state folder: what its records say, as a typed status.

Staleness, the board, `doit batch-status` and recovery all read an item through
`read_status`, so that they never disagree. A record that is there but cannot be
read is never taken as absent (that would run, and pay for, a finished item again):
it is UNREADABLE, and loading the batch stops with one error naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import BatchError
from .state import FAILURE, FORGOTTEN, RUNNING, ItemState, open_to_read

DONE, FAILED, INTERRUPTED, RUNNING_NOW, FORGOTTEN_NOW, ABSENT, UNREADABLE = (
    "done", "failed", "interrupted", "running", "forgotten", "absent", "unreadable",
)


@dataclass(frozen=True, slots=True)
class ItemStatus:
    kind: str  # one of the names above
    result: dict[str, Any] | None = None  # result.json: the latest success
    failure: dict[str, Any] | None = None  # failure.json: why the latest attempt failed
    running: dict[str, Any] | None = None  # running.json: the attempt a killed run left
    problem: str = ""  # with UNREADABLE: which file, and why


class Unreadable(Exception):
    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def _record(path: str) -> dict[str, Any] | None:
    """A JSON object record, None if there is none; raises Unreadable if it is damaged."""
    try:
        with open_to_read(path) as stream:
            data = stream.read()
    except (FileNotFoundError, NotADirectoryError):
        return None  # no record: where the state folder should be, the lock says what is wrong
    except OSError as error:
        raise Unreadable(path, error.strerror or str(error)) from None
    try:
        record = json.loads(data)
    except ValueError:
        raise Unreadable(path, "it is not valid JSON") from None
    if not isinstance(record, dict):
        raise Unreadable(path, "it is not a record (a JSON object)")
    return record


def read_status(folder: ItemState) -> ItemStatus:
    """What the item's records say. Its result, when there is one, is the latest word: a
    result is set aside when an attempt starts, so only an item without one needs more."""
    try:
        result = _record(folder.result)
        if result is not None:
            return ItemStatus(DONE, result=result)
        files = folder.files()
        if FORGOTTEN in files:
            return ItemStatus(FORGOTTEN_NOW)
        running = _record(folder.running) if RUNNING in files else None
        if running is not None:
            return ItemStatus(RUNNING_NOW, running=running)
        failure = _record(folder.failure) if FAILURE in files else None
        if failure is not None:
            return ItemStatus(INTERRUPTED if failure.get("interrupted") else FAILED, failure=failure)
    except Unreadable as error:
        return ItemStatus(UNREADABLE, problem=f"{error.path} cannot be read: {error.why}")
    return ItemStatus(ABSENT)


def done_record_bytes(folder: ItemState) -> bytes | None:
    """result.json's bytes if read_status would say DONE from them (a record there), else None:
    one read, for what must both be found done and be told later by its bytes."""
    try:
        with open_to_read(folder.result) as stream:
            data = stream.read()
        return data if isinstance(json.loads(data), dict) else None
    except (OSError, ValueError):
        return None


def read_statuses(folders: Mapping[str, ItemState]) -> dict[str, ItemStatus]:
    """read_status of many items, with one listing of each group's folder: an item whose folder
    is not there has no records, and a big batch's new items cost no open each."""
    listed: dict[str, frozenset[str] | None] = {}
    statuses = {}
    for key, folder in folders.items():
        parent, _, name = folder.folder.rpartition("/")
        if parent not in listed:
            try:
                listed[parent] = frozenset(os.listdir(parent))
            except (FileNotFoundError, NotADirectoryError):
                listed[parent] = frozenset()
            except OSError:
                listed[parent] = None  # cannot be listed: each item is read, and says why
        names = listed[parent]
        statuses[key] = ItemStatus(ABSENT) if names is not None and name not in names else read_status(folder)
    return statuses


def unreadable_error(key: str, status: ItemStatus) -> BatchError:
    return BatchError(f"{status.problem}; to run {key} again, `doit forget {key}` (or remove the file)")

