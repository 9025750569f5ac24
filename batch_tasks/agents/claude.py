"""The Claude Code CLI (2.1.x), run headless: `claude -p --output-format stream-json --verbose`.

Its output is one JSON event a line (with stderr merged in); the final `result`
event says how the session ended. Stream shapes are pinned down by
tests/test_fake_anthropic_cli.py and recorded in tests/fixtures/claude/.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..events import AgentEvent
from .base import (CONTEXT_OVERFLOW, MAX_TURNS, OVERFLOW, PERMANENT, TRANSIENT, WAIT, Agent, JsonLinesReader, Outcome,
                   short, tool_text)

# The CLI's own names for API errors (the `error` field of its synthetic assistant message)
# that no retry can fix.
PERMANENT_ERRORS = {
    "authentication_failed", "oauth_org_not_allowed", "account_on_hold", "verification_required",
    "billing_error", "invalid_request", "model_not_found", "cloud_credential_error",
}

# The input field that says best what a tool call does; file tools read as `Edit src/auth.py`,
# the others as `Bash: pytest -q`.
TOOL_SUMMARY = {
    "Edit": "file_path", "Write": "file_path", "Read": "file_path", "NotebookEdit": "notebook_path",
    "Bash": "command", "Grep": "pattern", "Glob": "pattern", "WebFetch": "url", "WebSearch": "query",
    "Task": "description",
}



def _tokens(usage: Mapping[str, Any]) -> dict[str, int]:
    return {
        "input": usage.get("input_tokens") or 0,
        "output": usage.get("output_tokens") or 0,
        "cache_read": usage.get("cache_read_input_tokens") or 0,
        "cache_write": usage.get("cache_creation_input_tokens") or 0,
    }


def _result_tokens(result: Mapping[str, Any]) -> dict[str, int]:
    """The result's `usage` counts the main loop only; `modelUsage` (per model) also has subagents."""
    per_model = [usage for usage in (result.get("modelUsage") or {}).values() if isinstance(usage, dict)]
    if not per_model:
        return _tokens(result.get("usage") or {})
    names = {"input": "inputTokens", "output": "outputTokens",
             "cache_read": "cacheReadInputTokens", "cache_write": "cacheCreationInputTokens"}
    return {key: sum(usage.get(name) or 0 for usage in per_model) for key, name in names.items()}


def _first_text(content: Any) -> str:
    """The text of a message's content: a string, or the first text block of a list."""
    if isinstance(content, list):
        return next((block.get("text", "") for block in content if block.get("type") == "text"), "")
    return str(content or "")


def _summary(name: str, tool_input: Any) -> str:
    return tool_text(name, tool_input.get(TOOL_SUMMARY.get(name, "")) if isinstance(tool_input, dict) else None)


def _parenthesized(errors: Any) -> str:
    """` (1)` from the CLI's "Reached maximum number of turns (1)", or nothing."""
    match = re.search(r"\(([^()]*)\)\s*$", str(errors[0])) if errors else None
    return f" ({match.group(1)})" if match else ""


class ClaudeReader(JsonLinesReader):
    def __init__(self):
        self.session_id: str | None = None
        self.model: str | None = None
        self.tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
        self.message_ids: set[str] = set()
        self.api_error: dict[str, Any] | None = None  # the last synthetic API-error message
        self.retry_at: float | None = None  # when a rejected rate limit resets
        self.result: dict[str, Any] | None = None

    def event_type(self, event: dict) -> str:
        kind = str(event.get("type"))
        return f"system_{event.get('subtype')}" if kind == "system" else kind

    def _on_system_init(self, event: dict) -> list[AgentEvent]:
        self.session_id = event.get("session_id") or self.session_id
        self.model = event.get("model") or self.model
        data = {"session_id": self.session_id, "model": self.model}
        return [AgentEvent("started", f"session {self.session_id} ({self.model})", data)]

    def _on_assistant(self, event: dict) -> list[AgentEvent]:
        message = event.get("message") or {}
        if event.get("is_api_error_message") or event.get("error"):
            return [self._api_error(event, message)]
        events = []
        for block in message.get("content") or []:
            if block.get("type") == "text" and block.get("text", "").strip():
                events.append(AgentEvent("assistant", short(block["text"])))
            elif block.get("type") == "tool_use":
                name = block.get("name") or "tool"
                events.append(AgentEvent("tool_use", _summary(name, block.get("input")), {"name": name}))
        # Each content block of a message comes as its own event carrying the same usage:
        # count it once per message id.
        message_id = message.get("id")
        if message.get("usage") and message_id not in self.message_ids:
            self.message_ids.add(message_id)
            for key, value in _tokens(message["usage"]).items():
                self.tokens[key] += value
            events.append(AgentEvent("usage", "", {"tokens": dict(self.tokens)}))
        return events

    def _api_error(self, event: dict, message: dict) -> AgentEvent:
        text = _first_text(message.get("content"))
        self.api_error = {"error": event.get("error"), "status": event.get("api_error_status"), "message": text}
        failure_class = self._classify(event.get("error"), event.get("api_error_status"))
        return AgentEvent("error", short(text), {"failure_class": failure_class, "message": text})

    def _on_user(self, event: dict) -> list[AgentEvent]:
        content = (event.get("message") or {}).get("content")
        if not isinstance(content, list):  # a plain prompt echoed back, not tool results
            return []
        events = []
        for block in content:
            if block.get("type") == "tool_result":
                is_error = bool(block.get("is_error"))
                text = short(_first_text(block.get("content"))) if is_error else ""
                events.append(AgentEvent("tool_result", text, {"is_error": is_error}))
        return events

    def _on_system_api_retry(self, event: dict) -> list[AgentEvent]:
        delay_s = (event.get("retry_delay_ms") or 0) / 1000
        status = event.get("error_status")
        data = {
            "attempt": event.get("attempt"),
            "max_retries": event.get("max_retries"),
            "delay_s": delay_s,
            "error_class": self._classify(event.get("error"), status),
        }
        text = f"API retry {data['attempt']}/{data['max_retries']} in {delay_s:.1f} s: {event.get('error')} ({status})"
        return [AgentEvent("retry", text, data)]

    def _on_rate_limit_event(self, event: dict) -> list[AgentEvent]:
        # Sent for subscription limits on every request; only a rejected one says when to go on.
        info = event.get("rate_limit_info") or {}
        if info.get("status") == "rejected" and info.get("resetsAt"):
            self.retry_at = float(info["resetsAt"])
        return []

    # system/permission_denied needs no event: the tool_result that follows carries the
    # error, and the result event counts the denials.

    def _on_result(self, event: dict) -> list[AgentEvent]:
        self.result = event
        self.session_id = event.get("session_id") or self.session_id
        ok = not event.get("is_error")
        data = {
            "ok": ok,
            "text": event.get("result") or "",
            "cost_usd": event.get("total_cost_usd"),
            "tokens": _result_tokens(event),
            "num_turns": event.get("num_turns"),
            "session_id": self.session_id,
        }
        return [AgentEvent("result", short(data["text"]) if ok else self._failure(event)[0], data)]

    def _classify(self, error: str | None, status: int | None) -> str:
        """What an API error means for the next attempt."""
        if status == 429 or error == "rate_limit":
            return WAIT if self.retry_at else TRANSIENT
        if error in PERMANENT_ERRORS or (status and 400 <= status < 500 and status != 408):
            return PERMANENT
        return TRANSIENT  # overloaded, 5xx, network

    def _failure(self, result: dict) -> tuple[str, str]:
        """Why an is_error result failed, for people, and its failure class."""
        subtype, errors = result.get("subtype"), result.get("errors")
        if subtype == "error_max_turns":
            return "reached max turns" + _parenthesized(errors), PERMANENT
        if subtype == "error_max_budget_usd":
            return "reached max budget" + _parenthesized(errors), PERMANENT
        if subtype == "error_during_execution":
            return "error during execution: " + short((errors or ["no detail"])[0]), TRANSIENT
        # An API error: its subtype is still "success"; the synthetic message named the error.
        seen = self.api_error or {}
        error = seen.get("error") or result.get("api_error_type")
        status = result.get("api_error_status") or seen.get("status")
        label = (error or result.get("terminal_reason") or "error").replace("_", " ")
        message = short(result.get("result") or seen.get("message"), 200)
        return f"{label}{f' ({status})' if status else ''}: {message}", self._classify(error, status)

    def outcome(self, exit_status: int) -> Outcome:
        data = self._data()
        result = self.result
        if result is None:
            if exit_status < 0:
                reason = f"killed by signal {-exit_status}"
            else:
                reason = "no result event: the agent ended without a final result"
                if exit_status:
                    reason += f" (exit status {exit_status})"
            return Outcome(ok=False, reason=reason, failure_class=TRANSIENT, data=data)
        text = result.get("result") or ""
        if result.get("is_error"):
            reason, failure_class = self._failure(result)
            retry_at = self.retry_at if failure_class == WAIT else None
            return Outcome(ok=False, reason=reason, failure_class=failure_class,
                           retry_at=retry_at, result_text=text, data=data, cause=self._cause(result))
        if exit_status != 0:  # a good result, then the CLI failed or was killed on its way out
            reason = f"killed by signal {-exit_status}" if exit_status < 0 else f"exit status {exit_status}"
            return Outcome(ok=False, reason=reason, failure_class=TRANSIENT, result_text=text, data=data)
        return Outcome(ok=True, result_text=text, data=data)

    def _cause(self, result: dict) -> str | None:
        """Max turns, or an overflow: 2.1 ends one with terminal_reason `prompt_too_long` and the
        API's 400 reworded ("Prompt is too long · the request is ~208310 tokens (limit 200000) …")."""
        if result.get("subtype") == "error_max_turns":
            return MAX_TURNS
        said = f"{result.get('terminal_reason')} {result.get('result')} {(self.api_error or {}).get('message')}"
        return CONTEXT_OVERFLOW if result.get("terminal_reason") == "prompt_too_long" or OVERFLOW.search(said) else None

    def _data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"session_id": self.session_id, "model": self.model, "tokens": dict(self.tokens)}
        if self.result is not None:
            data.update(
                cost_usd=self.result.get("total_cost_usd"),
                num_turns=self.result.get("num_turns"),
                tokens=_result_tokens(self.result),
                duration_ms=self.result.get("duration_ms"),
            )
            if self.result.get("permission_denials"):
                data["permission_denials"] = len(self.result["permission_denials"])
        return data


class ClaudeAgent(Agent):
    name = "claude"
    state_paths = (".claude", ".claude.json")
    executable = "claude"
    supports = frozenset({"model", "allowed_tools", "permission_mode", "max_turns", "extra_args", "item_budget_usd"})

    def argv(self, settings: Mapping[str, Any], context: Mapping[str, str]) -> list[str]:
        """The prompt goes to standard input; the session id is ours, so a run can be found again.
        A continued session is forked under ours (2.1 takes --session-id with --resume only so):
        the earlier attempt's session stays as it ended."""
        argv = [self.executable, "-p", "--output-format", "stream-json", "--verbose"]
        if context.get("resume_session"):
            argv += ["--resume", context["resume_session"], "--fork-session"]
        argv += ["--session-id", context["session_id"]]
        if settings.get("model"):
            argv += ["--model", settings["model"]]
        if settings.get("permission_mode"):
            argv += ["--permission-mode", settings["permission_mode"]]
        if settings.get("allowed_tools"):
            # One argument: the CLI splits it on spaces and commas outside parentheses,
            # so "Bash(git commit:*)" stays whole.
            argv += ["--allowedTools", " ".join(settings["allowed_tools"])]
        if settings.get("max_turns"):
            argv += ["--max-turns", str(settings["max_turns"])]
        if settings.get("item_budget_usd") is not None:
            argv += ["--max-budget-usd", str(settings["item_budget_usd"])]
        return argv + list(settings.get("extra_args") or ())

    def resumes(self, settings: Mapping[str, Any]) -> bool:
        return "--no-session-persistence" not in (settings.get("extra_args") or ())

    def resumed_session_id(self, earlier: str, ours: str) -> str:
        return ours

    def reader(self, settings: Mapping[str, Any] | None = None) -> JsonLinesReader:
        return ClaudeReader()
