"""The errors a user can cause, each reported as one line and a non-zero exit."""


class BatchError(Exception):
    """Something about the user's batch is wrong; shown as one line, never a traceback."""


class TaskFileError(BatchError):
    """A mistake at one line of task.md (or of its settings)."""

    def __init__(self, path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


class SettingError(ValueError):
    """A setting's value is of the wrong type or out of range; the caller adds the line."""
