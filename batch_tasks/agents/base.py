"""What an agent adapter is: how one CLI is started headless, and how its output is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..events import AgentEvent


@dataclass
class Outcome:
    """How one attempt ended, as the agent tells it."""

    ok: bool
    reason: str = ""  # for people, when not ok
    result_text: str = ""  # the agent's final answer (the command agent: its last lines of output)
    data: dict[str, Any] = field(default_factory=dict)  # cost, tokens, session id... as the agent reports


class OutputReader:
    """Reads one attempt's output line by line into events; then says how it ended."""

    def feed(self, line: str) -> list[AgentEvent]:
        raise NotImplementedError

    def outcome(self, exit_status: int) -> Outcome:
        raise NotImplementedError


class Agent:
    """An adapter for one agent CLI (or any command)."""

    name: str = ""

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Raise SettingError if the settings cannot run this agent."""

    def argv(self, settings: Mapping[str, Any], substitutions: Mapping[str, str]) -> list[str]:
        raise NotImplementedError

    def reader(self) -> OutputReader:
        raise NotImplementedError
