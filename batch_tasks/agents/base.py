"""What an agent adapter is: how one CLI is started headless, and how its output is read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import SettingError
from ..events import AgentEvent

# Why an attempt failed decides what happens next (see the README, "When things go wrong").
TRANSIENT = "transient"  # worth retrying: 429/529/5xx, network, a hang, killed by a signal it did not choose
WAIT = "wait"  # a usage or rate limit that resets at a known time: pause, then go on
PERMANENT = "permanent"  # retrying as it was cannot help: authentication, billing, invalid request, max turns, budget

# What went wrong, when an agent's output says more than its class: each may be met by an
# adjusted next attempt (see retry.py).
CONTEXT_OVERFLOW = "context_overflow"  # the prompt or the conversation too long for the model's window
MAX_TURNS = "max_turns"  # the agent used all the turns it was given
TOOL_LOOP = "tool_loop"  # the same tool failed the same way again and again
HANG = "hang"  # stopped for its `timeout` or `idle_timeout`
# The APIs' own words for an overflow: Anthropic's 400 "prompt is too long: N tokens > M maximum"
# (Claude Code: "Prompt is too long"), OpenAI's `context_length_exceeded` ("Your input exceeds the
# context window of this model"; Codex: "ran out of room in the model's context window"), Gemini's
# 400 "The input token count (N) exceeds the maximum number of tokens allowed (M)".
OVERFLOW = re.compile(r"prompt is too long|context.window|context_length_exceeded"
                      r"|input token count.{0,40}exceeds the maximum number of tokens", re.IGNORECASE | re.DOTALL)


@dataclass
class Outcome:
    """How one attempt ended, as the agent tells it."""

    ok: bool
    reason: str = ""  # for people, when not ok
    failure_class: str | None = None  # TRANSIENT, WAIT or PERMANENT when not ok
    retry_at: float | None = None  # with WAIT: the epoch time the limit resets
    result_text: str = ""  # the agent's final answer (the command agent: its last lines of output)
    cause: str | None = None  # CONTEXT_OVERFLOW, MAX_TURNS, TOOL_LOOP or HANG, when the output says so
    # As the agent reports them: session_id, model, cost_usd, num_turns, and
    # tokens {input, output, cache_read, cache_write}.
    data: dict[str, Any] = field(default_factory=dict)


SHORT = 100  # characters of an event's one line for people


def short(text: Any, limit: int = SHORT) -> str:
    """The first non-blank line, trimmed to `limit` characters."""
    line = next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


# Tools whose subject is a path: shown as `Write notes/auth.md`; the others as `Bash: pytest -q`.
FILE_TOOLS = {"Edit", "Write", "Read", "NotebookEdit", "Delete"}


def tool_text(name: str, subject: Any) -> str:
    """A tool call in one line, the same for every agent (their tools are named alike)."""
    if not subject:
        return name
    return f"{name} {short(subject)}" if name in FILE_TOOLS else f"{name}: {short(subject)}"


class CostEstimate:
    """An attempt's cost estimated from its tokens, for agents that report none (Codex,
    Gemini), held to the item's budget as Claude's --max-budget-usd is: their tokens come
    with the session's end, and an attempt whose estimate passes the budget fails for good."""

    def __init__(self, budget_usd: float | None):
        self.budget_usd = budget_usd
        self.usd: float | None = None  # None: not known (no tokens yet, or a model without a price)

    def data(self) -> dict[str, Any]:
        return {} if self.usd is None else {"cost_usd": self.usd, "cost_estimated": True}

    def over_budget(self) -> str | None:
        """Why the attempt fails, if its estimate passed the budget."""
        if self.budget_usd is None or self.usd is None or self.usd <= self.budget_usd:
            return None
        return f"reached max budget (${self.budget_usd:g}): estimated ${self.usd:.4f}"

    def error_event(self) -> list[AgentEvent]:
        reason = self.over_budget()
        return [AgentEvent("error", reason, {"failure_class": PERMANENT, "message": reason})] if reason else []


class ToolLoop:
    """Watches an attempt's events for a tool failing the same way again and again: the same
    call (`Bash: pytest -q`) with the same error, `repeats` times in a row."""

    def __init__(self, repeats: int):
        self.repeats = repeats
        self.call = ""  # the last tool call, as its event says it
        self.last: tuple[str, str] | None = None
        self.run = 0  # how many times in a row the last failure came

    def see(self, event: AgentEvent) -> None:
        if event.kind == "tool_use":
            self.call = event.text
        elif event.kind == "tool_result":
            failure = (self.call, event.text) if event.data.get("is_error") else None
            self.run = self.run + 1 if failure is not None and failure == self.last else int(failure is not None)
            self.last = failure

    @property
    def seen(self) -> bool:
        return self.run >= self.repeats


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


# The settings that are options of an agent (batch_tasks/plan/settings.py FIELDS); each adapter
# says which it honours, and any other one set is refused when task.md is read.
AGENT_OPTIONS = ("model", "allowed_tools", "permission_mode", "max_turns", "extra_args", "item_budget_usd",
                 "command", "transient_exit_codes")


def is_set(value: Any) -> bool:
    """Given in task.md, not left at its default (None, or no exit codes)."""
    return value is not None and value != ()


class Agent:
    """An adapter for one agent CLI (or any command)."""

    name: str = ""
    executable: str | None = None  # the CLI it needs on PATH
    state_paths: tuple[str, ...] = ()  # its own folders and files in the home folder, writable in a sandbox
    supports: frozenset[str] = frozenset()  # the AGENT_OPTIONS it honours
    # For an option it does not honour: what to do instead, when there is something.
    instead: Mapping[str, str] = {}

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Raise SettingError if the settings cannot run this agent: by default, when an
        agent option it does not honour is set. Adapters add their own checks."""
        for name in AGENT_OPTIONS:
            if name not in self.supports and is_set(settings.get(name)):
                why = self.instead.get(name) or (f"it has no such option; leave it out, or unset it for "
                                                 f"the group with <!-- {name}: null -->")
                raise SettingError(f"agent {self.name!r} does not take {name!r}: {why}", setting=name)

    def argv(self, settings: Mapping[str, Any], context: Mapping[str, str]) -> list[str]:
        """The command line. `context` has module, group, prompt_file and session_id, and
        resume_session: the earlier session to continue ("" for a fresh one; see resumes).
        The prompt also goes to the CLI's standard input."""
        raise NotImplementedError

    def resumes(self, settings: Mapping[str, Any]) -> bool:
        """Whether this CLI, so set, can continue an earlier attempt's session (in the same folder)."""
        return False

    def resumed_session_id(self, earlier: str, ours: str) -> str:
        """The id a continued session goes by: the earlier one's, as the CLI keeps it, unless the
        adapter has it forked under `ours`."""
        return earlier

    def environment(self, settings: Mapping[str, Any]) -> dict[str, str]:
        """Variables the agent's process needs beyond the run's own environment."""
        return {}

    def reader(self, settings: Mapping[str, Any] | None = None) -> OutputReader:
        """A reader for one attempt's output; `settings` are the item's (Codex takes its model from them)."""
        raise NotImplementedError
