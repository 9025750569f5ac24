"""The generic `command` agent: any program, run without a shell; exit 0 is success.

A non-zero exit is a permanent failure, unless its status is listed in
`transient_exit_codes`; a killed command is a transient one; a command that
prints `batch-tasks: retry at TIME` hit a limit that resets at TIME; one that prints
`batch-tasks: cause CAUSE` (context_overflow, tool_loop) says why it failed, so that its
next attempt is adjusted to that (see retry.py).
"""

from __future__ import annotations

import re
import time
from collections import deque
from datetime import datetime
from typing import Any, Mapping

from ..errors import SettingError
from ..events import AgentEvent
from .base import CONTEXT_OVERFLOW, PERMANENT, TOOL_LOOP, TRANSIENT, WAIT, Agent, Outcome, OutputReader

# How much of the end of a command's output becomes its result, for the next group's prompt.
RESULT_LINES = 40
# A command that hit a limit says when it resets: `batch-tasks: retry at 1795480000` (or an ISO time).
RETRY_AT = re.compile(r"^batch-tasks: retry at (.+)$")
# A command says why it failed: `batch-tasks: cause context_overflow`.
CAUSE = re.compile(r"^batch-tasks: cause (\w+)\s*$")
CAUSES = (CONTEXT_OVERFLOW, TOOL_LOOP)


class CommandReader(OutputReader):
    def __init__(self):
        self.tail: deque[str] = deque(maxlen=RESULT_LINES)
        self.retry_at: float | None = None
        self.cause: str | None = None
        self.no_time: str | None = None  # a `retry at` line whose time is none to wait for

    def feed(self, line: str) -> list[AgentEvent]:
        self.tail.append(line)
        said = CAUSE.match(line)
        if said and said.group(1) in CAUSES:
            self.cause = said.group(1)
        limit = RETRY_AT.match(line)
        if limit:
            self.retry_at = _when(limit.group(1))
            if self.retry_at is None:
                self.no_time = line
                return [AgentEvent("output", line)]
            return [AgentEvent("error", line, {"failure_class": WAIT, "retry_at": self.retry_at})]
        return [AgentEvent("output", line)]

    def outcome(self, exit_status: int) -> Outcome:
        result = "\n".join(self.tail)
        if exit_status == 0:
            return Outcome(ok=True, result_text=result)
        if self.retry_at is not None:
            return Outcome(ok=False, reason=f"a limit, until {time.strftime('%H:%M:%S', time.localtime(self.retry_at))}",
                           failure_class=WAIT, retry_at=self.retry_at, result_text=result)
        if self.no_time is not None:
            return Outcome(ok=False, reason=f"it said `{self.no_time}`: not a time to wait for (Unix or ISO 8601 time)",
                           failure_class=PERMANENT, result_text=result)
        if exit_status < 0:
            return Outcome(ok=False, reason=f"killed by signal {-exit_status}", failure_class=TRANSIENT, result_text=result)
        return Outcome(ok=False, reason=f"exit status {exit_status}" + (f" ({self.cause})" if self.cause else ""),
                       failure_class=PERMANENT, result_text=result, cause=self.cause)


def _when(text: str) -> float | None:
    """Unix time, or an ISO 8601 time (local unless it says its zone); None for what is neither,
    or is no date of the calendar (`inf`, `1e20`)."""
    try:
        moment = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text.strip()).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    try:
        datetime.fromtimestamp(moment)
    except (ValueError, OverflowError, OSError):
        return None
    return moment


class CommandAgent(Agent):
    name = "command"
    supports = frozenset({"command", "transient_exit_codes"})

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        if not settings.get("command"):
            raise SettingError("agent 'command' needs a `command:` setting, e.g. command: [python3, tool.py, \"{module}\"]")

    def argv(self, settings: Mapping[str, Any], context: Mapping[str, str]) -> list[str]:
        """Each argument gets {module}, {group} and {prompt_file} replaced, and stays one argument."""
        argv = []
        for argument in settings["command"]:
            for name in ("module", "group", "prompt_file"):
                value = context[name]
                argument = argument.replace("{" + name + "}", value)
            argv.append(argument)
        return argv

    def reader(self, settings: Mapping[str, Any] | None = None) -> OutputReader:
        return CommandReader()
