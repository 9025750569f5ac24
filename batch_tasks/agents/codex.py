"""The OpenAI Codex CLI, run headless: `codex exec --json -`, the prompt on standard input.

Its output is one JSON event a line (with stderr merged in). The shapes followed are
codex-cli 0.169.0's (codex-rs/exec/src/exec_events.rs, docs/exec.md), recorded in
tests/fixtures/codex/. Codex reports tokens but no cost, and names no model: the model is
the `model` setting (recorded as such), and the cost is estimated from it (batch_tasks.agents.pricing).
"""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime
from typing import Any, Mapping

from ..errors import SettingError
from ..events import AgentEvent
from .base import (CONTEXT_OVERFLOW, OVERFLOW, PERMANENT, TRANSIENT, WAIT, Agent, CostEstimate, JsonLinesReader,
                   Outcome, short, tool_text)
from .pricing import estimated_cost

# `permission_mode` is codex's --sandbox. Alone, `codex exec` is read-only; a batch edits
# the project, so workspace-write is the default.
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_SANDBOX = "workspace-write"

# Codex retries a dropped or refused stream itself and says so in a top-level error event:
# "Reconnecting... 1/5 (We're currently experiencing high demand, ...)".
RECONNECTING = re.compile(r"^Reconnecting\.\.\. (\d+)/(\d+)")
# With the network down it says so every ~10 s, for as long as it stays down: never silent,
# so only `timeout` ends such an attempt.
WAITING_FOR_NETWORK = re.compile(r"^Reconnecting\.\.\. waiting for network")
# A tool call codex refused before running it leaves no item, only a line in its log on
# stderr: "... ERROR codex_core::tools::router: error=patch rejected: writing is blocked by
# read-only sandbox; ...".
TOOL_REFUSED = re.compile(r"\bcodex_core::tools::router: error=(.+)$")
# A usage limit says when it resets, in local time: "... or try again at 2:00 PM." for
# today, else "... at Nov 25th, 2026 2:00 PM." (codex-rs/core/src/error.rs).
RESET_AT = re.compile(r"try again at (?:([A-Z][a-z]{2}) (\d{1,2})(?:st|nd|rd|th), (\d{4}) )?(\d{1,2}:\d\d [AP]M)")
# Messages no retry can fix: HTTP 400-404 ("unexpected status 401 Unauthorized: ..."),
# credentials, billing ("Quota exceeded. Check your plan and billing details."), a
# conversation too long for the model.
PERMANENT_ERRORS = re.compile(
    r"\b40[0-4]\b|unauthori[sz]ed|forbidden|api key|authenticat|permission|invalid request|bad request"
    r"|billing|missing environment variable|refresh token|context window",
    re.IGNORECASE,
)
# Messages worth another attempt: rate limits, overload, 5xx, the network.
TRANSIENT_ERRORS = re.compile(
    r"\b429\b|\b5\d\d\b|rate.?limit|too many requests|quota|high demand|overloaded|capacity"
    r"|disconnected|connection|network|timed? ?out|server response|temporar",
    re.IGNORECASE,
)

# Thread items that are tool calls, and how a file_change's kinds read.
TOOL_ITEMS = {"command_execution", "file_change", "mcp_tool_call", "web_search", "collab_tool_call"}
CHANGE_TOOLS = {"add": "Write", "update": "Edit", "delete": "Delete"}



def classify(message: str) -> tuple[str, float | None]:
    """A codex error message's failure class, and with WAIT the epoch time to go on.

    A reset time already past (codex repeats one) is no limit to wait for: transient,
    so backoff spaces the attempts."""
    if "usage limit" in message:
        reset = _reset_time(message)
        return (WAIT, reset) if reset is not None and reset > time.time() else (TRANSIENT, None)
    if PERMANENT_ERRORS.search(message):
        return PERMANENT, None
    if TRANSIENT_ERRORS.search(message):
        return TRANSIENT, None
    return PERMANENT, None


def _reset_time(message: str) -> float | None:
    match = RESET_AT.search(message)
    if not match:
        return None
    month, day, year, clock = match.groups()
    date = datetime.strptime(f"{month} {day} {year}", "%b %d %Y").date() if month else datetime.now().date()
    # Codex words the reset to the minute, rounded down: read the end of that minute, never early.
    return datetime.combine(date, datetime.strptime(clock, "%I:%M %p").time()).timestamp() + 60


def _unwrapped(command: str) -> str:
    """`pytest -q` from `/bin/bash -lc 'pytest -q'`: codex runs each command through a shell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    return words[2] if len(words) == 3 and words[1] in ("-c", "-lc") else command


def _tool_use(name: str, summary: Any) -> AgentEvent:
    return AgentEvent("tool_use", tool_text(name, summary), {"name": name})


def _tool_uses(item: dict) -> list[AgentEvent]:
    """One tool_use per command, per changed file, per MCP call or web search."""
    kind = item.get("type")
    if kind == "command_execution":
        return [_tool_use("Bash", _unwrapped(item.get("command") or ""))]
    if kind == "file_change":
        return [_tool_use(CHANGE_TOOLS.get(change.get("kind"), "Edit"), change.get("path"))
                for change in item.get("changes") or []]
    if kind == "mcp_tool_call":
        return [_tool_use(f"mcp__{item.get('server')}__{item.get('tool')}", "")]
    if kind == "collab_tool_call":  # a sub-agent spawned, told, waited for or closed
        return [_tool_use("Agent", f"{item.get('tool')} {item.get('prompt') or ''}".strip())]
    return [_tool_use("WebSearch", item.get("query"))]  # web_search


class CodexReader(JsonLinesReader):
    def __init__(self, model: str | None = None, budget_usd: float | None = None):
        self.model = model  # the `model` setting: codex's stream names none
        self.cost = CostEstimate(budget_usd)
        self.session_id: str | None = None
        self.tokens: dict[str, int] | None = None
        self.result_text = ""  # the last agent message
        self.completed = False  # turn.completed came
        self.failure: str | None = None  # the message the turn failed with
        self.started: set[str] = set()  # tool items already shown by item.started
        self.last_output = ""  # the last stray line, which may explain an early exit

    def stray(self, line: str) -> list[AgentEvent]:
        refused = TOOL_REFUSED.search(line)
        if refused:
            name = "Edit" if refused[1].startswith("patch rejected") else "tool"
            return [AgentEvent("output", line), AgentEvent("tool_use", f"{name} (refused)", {"name": name}),
                    AgentEvent("tool_result", short(refused[1]), {"is_error": True})]
        self.last_output = line  # stderr: why codex stopped, when it says
        return [AgentEvent("output", line)]

    def _model_data(self) -> dict[str, Any]:
        if not self.model:
            return {"model": None}
        return {"model": self.model, "model_source": "settings"}


    def _on_thread_started(self, event: dict) -> list[AgentEvent]:
        self.session_id = event["thread_id"]
        # Codex names no model in its events: the setting's, if any, is the one it was asked for.
        text = f"session {self.session_id}" + (f" ({self.model})" if self.model else "")
        return [AgentEvent("started", text, {"session_id": self.session_id, **self._model_data()})]

    def _on_item_started(self, event: dict) -> list[AgentEvent]:
        item = event["item"]
        if item.get("type") not in TOOL_ITEMS:
            return []
        self.started.add(item["id"])
        return _tool_uses(item)

    # turn.started and item.updated (a to-do list ticked off, a patch on its way) need no event.

    def _on_item_completed(self, event: dict) -> list[AgentEvent]:
        item = event["item"]
        kind = item.get("type")
        if kind == "agent_message":
            self.result_text = item.get("text") or ""
            if not self.result_text.strip():
                return []
            return [AgentEvent("assistant", short(self.result_text), {"text": self.result_text})]
        if kind == "error":  # a warning codex goes on after, such as an unknown model or setting
            return [AgentEvent("output", item.get("message") or "")]
        if kind not in TOOL_ITEMS:  # reasoning, to-do lists, plans
            return []
        # A file_change may come completed only, without item.started.
        events = [] if item["id"] in self.started else _tool_uses(item)
        self.started.discard(item["id"])
        is_error = item.get("status", "completed") != "completed"
        detail = (item.get("error") or {}).get("message") or item.get("aggregated_output") or item.get("status")
        return events + [AgentEvent("tool_result", short(detail) if is_error else "", {"is_error": is_error})]

    def _on_turn_completed(self, event: dict) -> list[AgentEvent]:
        # The usage counts the whole thread. OpenAI's input_tokens include the cached ones;
        # here `input` counts only the rest, as Claude reports it.
        usage = event.get("usage") or {}
        cached = usage.get("cached_input_tokens") or 0
        written = usage.get("cache_write_input_tokens") or 0
        self.tokens = {
            "input": max((usage.get("input_tokens") or 0) - cached - written, 0),
            "output": usage.get("output_tokens") or 0,
            "cache_read": cached,
            "cache_write": written,
        }
        self.completed = True
        self.cost.usd = estimated_cost("openai", self.model, self.tokens)
        over_budget = self.cost.over_budget()
        data = {"ok": not over_budget, "text": self.result_text, "tokens": dict(self.tokens),
                "session_id": self.session_id, **self.cost.data()}
        return [AgentEvent("usage", "", {"tokens": dict(self.tokens), **self.cost.data()}), *self.cost.error_event(),
                AgentEvent("result", over_budget or short(self.result_text), data)]

    def _on_turn_failed(self, event: dict) -> list[AgentEvent]:
        message = (event.get("error") or {}).get("message") or "turn failed"
        # The same message usually came just before as a top-level error event.
        events = [] if message == self.failure else [self._error(message)]
        self.failure = message
        data = {"ok": False, "text": self.result_text, "session_id": self.session_id}
        return events + [AgentEvent("result", short(message), data)]

    def _on_error(self, event: dict) -> list[AgentEvent]:
        message = event.get("message") or ""
        if WAITING_FOR_NETWORK.match(message):
            return [AgentEvent("retry", short(message), {"error_class": TRANSIENT})]
        retry = RECONNECTING.match(message)
        if retry:
            data = {"attempt": int(retry[1]), "max_retries": int(retry[2]), "error_class": classify(message)[0]}
            return [AgentEvent("retry", short(message), data)]
        self.failure = message
        return [self._error(message)]

    def _error(self, message: str) -> AgentEvent:
        return AgentEvent("error", short(message), {"failure_class": classify(message)[0], "message": message})

    def outcome(self, exit_status: int) -> Outcome:
        data: dict[str, Any] = {"session_id": self.session_id, **self._model_data(), **self.cost.data()}
        if self.tokens is not None:
            data["tokens"] = dict(self.tokens)
        if self.cost.over_budget():
            return Outcome(ok=False, reason=self.cost.over_budget(), failure_class=PERMANENT,
                           result_text=self.result_text, data=data)
        if self.completed and exit_status == 0:
            return Outcome(ok=True, result_text=self.result_text, data=data)
        if self.failure:
            failure_class, retry_at = classify(self.failure)
            # "Codex ran out of room in the model's context window": the API's context_length_exceeded.
            cause = CONTEXT_OVERFLOW if OVERFLOW.search(self.failure) else None
            return Outcome(ok=False, reason=short(self.failure, 200), failure_class=failure_class,
                           retry_at=retry_at, result_text=self.result_text, data=data, cause=cause)
        return self.unexplained_end(exit_status, "codex ended before its turn completed", data)


class CodexAgent(Agent):
    name = "codex"
    state_paths = (".codex",)
    executable = "codex"
    # item_budget_usd: codex has no budget of its own; the reader holds the estimate to it.
    supports = frozenset({"model", "permission_mode", "extra_args", "item_budget_usd"})
    instead = {
        "allowed_tools": "permission_mode (its --sandbox) limits what it may do",
        "max_turns": "codex has no turn limit; timeout bounds an attempt",
    }

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        mode = settings.get("permission_mode")
        if mode is not None and mode not in SANDBOX_MODES:
            raise SettingError(f"agent 'codex' takes permission_mode {', '.join(SANDBOX_MODES)} "
                               f"(its --sandbox), not {mode!r}", setting="permission_mode")

    def argv(self, settings: Mapping[str, Any], context: Mapping[str, str]) -> list[str]:
        """`-` (last, so extra_args stay options) makes codex read the prompt from stdin.

        Codex picks its own session id (the thread id, read from the stream), so
        context["session_id"] is not used; `exec resume THREAD -` continues a thread under its
        id, exec's options before it still honoured. --skip-git-repo-check: a batch may run outside git.
        """
        argv = [self.executable, "exec", "--json", "--skip-git-repo-check",
                "--sandbox", settings.get("permission_mode") or DEFAULT_SANDBOX]
        if settings.get("model"):
            argv += ["--model", settings["model"]]
        resume = ["resume", context["resume_session"]] if context.get("resume_session") else []
        return argv + list(settings.get("extra_args") or ()) + resume + ["-"]

    def resumes(self, settings: Mapping[str, Any]) -> bool:
        return "--ephemeral" not in (settings.get("extra_args") or ())

    def reader(self, settings: Mapping[str, Any] | None = None) -> JsonLinesReader:
        settings = settings or {}
        return CodexReader(model=settings.get("model"), budget_usd=settings.get("item_budget_usd"))
