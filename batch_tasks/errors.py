"""The errors a user can cause, each reported as one line and a non-zero exit."""

import os


class BatchError(Exception):
    """Something about the user's batch is wrong; shown as one line, never a traceback."""


class TaskFileError(BatchError):
    """A mistake at one line of task.md (or of its settings)."""

    def __init__(self, path, line: int, message: str):
        super().__init__(f"{_as_typed(path)}:{line}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


def _as_typed(path) -> str:
    """A path below the current folder as the user would type it, others whole."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


class SettingError(ValueError):
    """A setting's value is of the wrong type or out of range; the caller adds the line.
    `setting` names the setting at fault, when the caller cannot tell which it is."""

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting
