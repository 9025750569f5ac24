"""What an agent adapter is: how one CLI is started headless, and how its output is read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..events import AgentEvent

# Why an attempt failed decides what happens next (see the README, "When things go wrong").
TRANSIENT = "transient"  # worth retrying: 429/529/5xx, network, a hang, killed by a signal it did not choose
WAIT = "wait"  # a usage or rate limit that resets at a known time: pause, then go on
PERMANENT = "permanent"  # retrying cannot help: authentication, billing, invalid request, max turns, budget


@dataclass
class Outcome:
    """How one attempt ended, as the agent tells it."""

    ok: bool
    reason: str = ""  # for people, when not ok
    failure_class: str | None = None  # TRANSIENT, WAIT or PERMANENT when not ok
    retry_at: float | None = None  # with WAIT: the epoch time the limit resets
    result_text: str = ""  # the agent's final answer (the command agent: its last lines of output)
    # As the agent reports them: session_id, model, cost_usd, num_turns, and
    # tokens {input, output, cache_read, cache_write}.
    data: dict[str, Any] = field(default_factory=dict)


SHORT = 100  # characters of an event's one line for people


def short(text: Any, limit: int = SHORT) -> str:
    """The first non-blank line, trimmed to `limit` characters."""
    line = next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


class OutputReader:
    """Reads one attempt's output line by line into events; then says how it ended."""

    def feed(self, line: str) -> list[AgentEvent]:
        raise NotImplementedError

    def outcome(self, exit_status: int) -> Outcome:
        raise NotImplementedError


class JsonLinesReader(OutputReader):
    """A CLI that prints one JSON event a line: each goes to `_on_<its type>`.

    Unknown types are skipped (newer CLIs add some); lines that are no JSON object
    (stderr is merged in) go to `stray`; a malformed event must not end the run."""

    def event_type(self, event: dict) -> str:
        return str(event.get("type"))

    def stray(self, line: str) -> list[AgentEvent]:
        return [AgentEvent("output", line)]

    result_text = ""  # the CLI's final answer, as its events tell it
    last_output: str | None = None  # its last line that was no event (stderr), if a reader keeps it

    def unexplained_end(self, exit_status: int, silent_end: str, data: dict[str, Any]) -> Outcome:
        """An end the events do not explain: killed (transient), or an exit with the CLI's own
        status and perhaps its last word on stderr (permanent)."""
        if exit_status < 0:
            return Outcome(ok=False, reason=f"killed by signal {-exit_status}", failure_class=TRANSIENT,
                           result_text=self.result_text, data=data)
        reason = f"exit status {exit_status}" if exit_status else silent_end
        if self.last_output:
            reason += f": {short(self.last_output, 200)}"
        return Outcome(ok=False, reason=reason, failure_class=PERMANENT, result_text=self.result_text, data=data)

    def feed(self, line: str) -> list[AgentEvent]:
        if not line.strip():
            return []
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return self.stray(line)
        handler = getattr(self, "_on_" + self.event_type(event).replace(".", "_"), None)
        if handler is None:
            return []
        try:
            return handler(event)
        except (AttributeError, TypeError, KeyError, ValueError):
            return [AgentEvent("output", line)]


class Agent:
    """An adapter for one agent CLI (or any command)."""

    name: str = ""
    executable: str | None = None  # the CLI it needs on PATH

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Raise SettingError if the settings cannot run this agent."""

    def argv(self, settings: Mapping[str, Any], context: Mapping[str, str]) -> list[str]:
        """The command line. `context` has module, group, prompt_file and session_id.
        The prompt also goes to the CLI's standard input."""
        raise NotImplementedError

    def environment(self, settings: Mapping[str, Any]) -> dict[str, str]:
        """Variables the CLI needs in its environment, beside the runner's own."""
        return {}

    def reader(self) -> OutputReader:
        raise NotImplementedError
