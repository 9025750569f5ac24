"""An item's `check`: the command whose exit 0 says the item's work is good.

May touch: nothing itself; it runs the user's command (argv, never a shell) in the
folder it is given, with the whole process tree stopped when `check_timeout` passes.
Its output goes to the log stream it is given, and its last lines are kept.

    check = Check.from_settings(settings, group="extract", module="auth")
    if check is not None:
        result = check.run(worktree=workspace.path, cwd=workspace.workdir, supervisor=run_supervisor, log=log)
        result.passed, result.exit_status, result.duration_s, result.tail, result.timed_out

Without isolation, `worktree` and `cwd` are both the batch's workdir (see isolation/workdir.py).
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..redaction import Redactor
from ..repository.git import environment_for_worktrees
from . import process

TAIL_LINES = 40
TAIL_BYTES = 8192
PLACEHOLDER = re.compile(r"\{(module|group|worktree)\}")


@dataclass(frozen=True)
class CheckResult:
    exit_status: int | None  # None: it could not start; negative: the signal that ended it
    duration_s: float
    tail: str  # the last TAIL_LINES lines it printed, at most TAIL_BYTES
    timed_out: bool

    @property
    def passed(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    @property
    def reason(self) -> str:
        if self.timed_out:
            return f"check timed out after {self.duration_s:.0f}s"
        if self.exit_status is None:
            return "check could not start"
        return "check passed" if self.passed else f"check failed with exit status {self.exit_status}"

    def record(self) -> dict[str, Any]:
        return {"exit_status": self.exit_status, "duration_s": self.duration_s, "tail": self.tail,
                "timed_out": self.timed_out, "passed": self.passed}


@dataclass(frozen=True)
class Check:
    argv: tuple[str, ...]
    timeout: float | None
    group: str
    module: str

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], group: str, module: str) -> "Check | None":
        if not settings.get("check"):
            return None
        return cls(tuple(settings["check"]), settings.get("check_timeout"), group, module)

    def command(self, worktree: Path) -> list[str]:
        """Each argument with {module}, {group} and {worktree} replaced, once, and still one argument."""
        values = {"module": self.module, "group": self.group, "worktree": str(worktree)}
        return [PLACEHOLDER.sub(lambda match: values[match.group(1)], argument) for argument in self.argv]

    def run(
        self,
        worktree: Path,
        cwd: Path,
        supervisor: process.Supervisor | None = None,
        log=None,
        env: Mapping[str, str] | None = None,
        redact: Redactor | None = None,
        on_start=None,
        sandbox=None,
    ) -> CheckResult:
        """Run the check to its end (or its timeout), as one of `supervisor`'s processes (the run's:
        it stops with the run; raises process.StoppedError if the run is stopping). `on_start` gets
        what identifies its processes, to record: a run killed meanwhile leaves them to the next.
        In `sandbox`, if given: the agent's (see agent_sandbox)."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        environment = {
            **(environment_for_worktrees() if env is None else env),
            "BATCH_GROUP": self.group,
            "BATCH_MODULE": self.module,
            "BATCH_WORKTREE": str(worktree),
        }
        sink = log if log is not None else NullLog()
        started = time.monotonic()
        try:
            ended = (supervisor or process.Supervisor()).run(
                self.command(worktree), cwd=cwd, env=environment, stdin=b"", log=sink,
                on_line=tail.append, timeout=self.timeout, redact=redact, on_start=on_start or (lambda processes: None),
                sandbox=sandbox,
            )
        except OSError as error:
            message = f"cannot start the check {self.argv[0]!r}: {error.strerror or error}"
            sink.write(message.encode() + b"\n")
            return CheckResult(None, round(time.monotonic() - started, 3), message, timed_out=False)
        return CheckResult(ended.status, round(time.monotonic() - started, 3), _clip("\n".join(tail)),
                           timed_out=ended.stopped_for is not None)


def _clip(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= TAIL_BYTES:
        return text
    return data[-TAIL_BYTES:].decode("utf-8", "ignore")


class NullLog:
    """A log stream that keeps nothing."""

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass
