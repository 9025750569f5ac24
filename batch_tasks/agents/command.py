"""The generic `command` agent: any program, run without a shell; exit 0 is success."""

from __future__ import annotations

from collections import deque
from typing import Any, Mapping

from ..events import AgentEvent
from ..errors import SettingError
from .base import Agent, Outcome, OutputReader

# How much of the end of a command's output becomes its result, for the next group's prompt.
RESULT_LINES = 40


class CommandReader(OutputReader):
    def __init__(self):
        self.tail: deque[str] = deque(maxlen=RESULT_LINES)

    def feed(self, line: str) -> list[AgentEvent]:
        self.tail.append(line)
        return [AgentEvent("output", line)]

    def outcome(self, exit_status: int) -> Outcome:
        result = "\n".join(self.tail)
        if exit_status == 0:
            return Outcome(ok=True, result_text=result)
        if exit_status < 0:
            return Outcome(ok=False, reason=f"killed by signal {-exit_status}", result_text=result)
        return Outcome(ok=False, reason=f"exit status {exit_status}", result_text=result)


class CommandAgent(Agent):
    name = "command"

    def check_settings(self, settings: Mapping[str, Any]) -> None:
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

    def reader(self) -> OutputReader:
        return CommandReader()
