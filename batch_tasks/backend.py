"""A doit dependency database that survives a killed run.

doit's own backends keep changes in memory until the run ends, and dbm's lock
breaks when the run is killed. This one writes every change to SQLite as it
comes (in WAL mode, which a kill cannot corrupt) and commits at most once a
second and at the end: a killed run loses at most its last second of doit's
bookkeeping. What an item did is never at stake here: its result record in its
state folder is the truth, written before its tick (see item_run).
"""

from __future__ import annotations

import os
import sqlite3
import time

from doit.dependency import DatabaseException, SqliteDB

COMMIT_EVERY = 1.0  # seconds: a commit costs an fsync or more


class DurableSqliteDB(SqliteDB):
    desc = "SQLite, changes written as they come and committed every second (survives kill -9)"

    def __init__(self, name, codec, *, module_name=None):
        try:
            super().__init__(name, codec, module_name=module_name)
        except DatabaseException:
            # The records are doit's bookkeeping, not the batch's: a damaged file is
            # set aside rather than stopping the batch.
            os.replace(name, f"{name}.damaged-{int(time.time())}")
            super().__init__(name, codec, module_name=module_name)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        self._conn.execute("pragma busy_timeout=10000")
        self._committed = time.monotonic()

    def set(self, task_id, dependency, value):
        super().set(task_id, dependency, value)
        self._conn.execute(
            "insert or replace into doit values (?,?)", (task_id, self.codec.encode(self._cache[task_id]))
        )
        self._dirty.discard(task_id)
        self._commit_now_and_then()

    def remove(self, task_id):
        super().remove(task_id)
        self._commit_now_and_then()

    def remove_all(self):
        super().remove_all()
        self._conn.commit()

    def _commit_now_and_then(self):
        if time.monotonic() - self._committed >= COMMIT_EVERY:
            self._conn.commit()
            self._committed = time.monotonic()

    def dump(self):
        try:
            super().dump()
        except sqlite3.ProgrammingError:
            pass  # already closed
