"""A doit dependency database that survives a killed run.

doit's own backends keep changes in memory until the run ends (and dbm's lock
breaks when the run is killed). This one writes every change through to SQLite
at once, in WAL mode: a task recorded is recorded, whatever happens next.
"""

from __future__ import annotations

import os
import sqlite3
import time

from doit.dependency import DatabaseException, SqliteDB


class DurableSqliteDB(SqliteDB):
    desc = "SQLite, every change committed at once (survives kill -9)"

    def __init__(self, name, codec, *, module_name=None):
        try:
            super().__init__(name, codec, module_name=module_name)
        except DatabaseException:
            # The records are doit's bookkeeping, not the batch's: results live in the
            # state folder. A damaged file is set aside rather than stopping the batch.
            os.replace(name, f"{name}.damaged-{int(time.time())}")
            super().__init__(name, codec, module_name=module_name)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        self._conn.execute("pragma busy_timeout=10000")

    def set(self, task_id, dependency, value):
        super().set(task_id, dependency, value)
        self._write(task_id)

    def remove(self, task_id):
        super().remove(task_id)
        self._conn.commit()

    def remove_all(self):
        super().remove_all()
        self._conn.commit()

    def _write(self, task_id):
        self._conn.execute(
            "insert or replace into doit values (?,?)", (task_id, self.codec.encode(self._cache[task_id]))
        )
        self._conn.commit()
        self._dirty.discard(task_id)

    def dump(self):
        try:
            super().dump()
        except sqlite3.ProgrammingError:
            pass  # already closed
