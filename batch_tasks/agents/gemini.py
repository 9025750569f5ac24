"""The Google Gemini CLI, run headless: `gemini --output-format stream-json`, the prompt on standard input.

Its output is one JSON event a line (with stderr merged in): init, message, tool_use,
tool_result, error, result. The shapes followed are gemini-cli 0.56.0's and 0.61.0's
(packages/core/src/output/types.ts, docs/cli/headless.md), recorded in
tests/fixtures/gemini/. --skip-trust and --session-id need 0.41.0 or later.
Gemini reports tokens but no cost: the cost is estimated from them (batch_tasks.agents.pricing).
"""

from __future__ import annotations

import re
import time
from typing import Any, Mapping

from ..errors import SettingError
from ..events import AgentEvent
from .base import (CONTEXT_OVERFLOW, OVERFLOW, PERMANENT, TRANSIENT, WAIT, Agent, CostEstimate, JsonLinesReader,
                   Outcome, short, tool_text)
from .pricing import estimated_cost

# `permission_mode` is gemini's --approval-mode. By default edits are approved and other
# tools are refused unless allowed_tools lets them, as Claude's acceptEdits does.
APPROVAL_MODES = ("default", "auto_edit", "yolo", "plan")
DEFAULT_APPROVAL = "auto_edit"

# Gemini's built-in tools (packages/core/src/tools/tool-names.ts) by the names the other
# agents give them, and the parameter that says what a call acts on.
TOOLS = {
    "run_shell_command": ("Bash", "command"),
    "replace": ("Edit", "file_path"),
    "write_file": ("Write", "file_path"),
    "read_file": ("Read", "file_path"),
    "glob": ("Glob", "pattern"),
    "grep_search": ("Grep", "pattern"),
    "google_web_search": ("WebSearch", "query"),
    "web_fetch": ("WebFetch", "prompt"),
}

# Gemini retries API errors itself and logs each attempt on stderr
# ("Attempt 2 failed: ...", packages/core/src/utils/retry.ts).
ATTEMPT = re.compile(r"^Attempt (\d+) failed\b")
# Rate limits come as "[API Error: You exceeded your current quota, ... Please retry in 58.8s.]".
# They mention billing too, so they are looked for first. Gemini retries a delay up to 5
# minutes itself (packages/core/src/utils/googleQuotaErrors.ts, MAX_RETRYABLE_DELAY_SECONDS):
# after such retries the limit is a transient one. A longer delay ends its run at once: a
# limit that resets then.
RATE_LIMITED = re.compile(r"\b429\b|RESOURCE_EXHAUSTED|rate.?limit|quota|too many requests", re.IGNORECASE)
RETRY_DELAY = re.compile(r"retry (?:in|after) ([\d.]+)(ms|s)\b")
LONGEST_RETRIED_DELAY = 300.0
# Messages no retry can fix: HTTP 400-404 and Google's names for them, credentials.
PERMANENT_ERRORS = re.compile(
    r"\b40[0-4]\b|INVALID_ARGUMENT|UNAUTHENTICATED|PERMISSION_DENIED|api key|unauthori[sz]ed|forbidden"
    r"|authenticat|permission|invalid request|bad request",
    re.IGNORECASE,
)
# Messages worth another attempt: overload, 5xx, the network.
TRANSIENT_ERRORS = re.compile(
    r"\b5\d\d\b|UNAVAILABLE|DEADLINE_EXCEEDED|overloaded|high demand|capacity|connection|network"
    r"|fetch failed|ECONNRESET|ETIMEDOUT|timed? ?out|temporar|stream ended without",
    re.IGNORECASE,
)



def classify(message: str, error_type: str = "") -> tuple[str, float | None]:
    """A gemini error's failure class, and with WAIT the epoch time to go on.

    `error_type` is the class name a result's error carries: the Fatal* errors (bad
    auth, input, config, turn limit...) end the run for good, but for Ctrl-C.
    """
    if error_type == "FatalCancellationError":
        return TRANSIENT, None
    if error_type.startswith("Fatal"):
        return PERMANENT, None
    if RATE_LIMITED.search(message):
        delays = [float(number) / (1000 if unit == "ms" else 1) for number, unit in RETRY_DELAY.findall(message)]
        if delays and max(delays) > LONGEST_RETRIED_DELAY:
            return WAIT, time.time() + max(delays)
        return TRANSIENT, None
    if PERMANENT_ERRORS.search(message):
        return PERMANENT, None
    if TRANSIENT_ERRORS.search(message):
        return TRANSIENT, None
    return PERMANENT, None


def _tokens(stats: Mapping[str, Any]) -> dict[str, int]:
    """`input` is what was not read from the cache (input_tokens less cached)."""
    return {"input": stats.get("input") or 0, "output": stats.get("output_tokens") or 0,
            "cache_read": stats.get("cached") or 0, "cache_write": 0}


class GeminiReader(JsonLinesReader):
    def __init__(self, budget_usd: float | None = None):
        self.session_id: str | None = None
        self.model: str | None = None
        self.pieces: list[str] = []  # the assistant message being streamed
        self.result_text = ""  # the last whole assistant message
        self.tokens: dict[str, int] | None = None
        self.duration_ms: int | None = None
        self.finished = False  # the result event came
        self.failure: tuple[str, str, float | None] | None = None  # message, failure class, retry_at
        self.last_output = ""  # the last stray line, which may explain an early exit
        self.cost = CostEstimate(budget_usd)

    def stray(self, line: str) -> list[AgentEvent]:
        attempt = ATTEMPT.match(line)
        if attempt:
            data = {"attempt": int(attempt[1]), "error_class": classify(line)[0]}
            return [AgentEvent("retry", short(line), data)]
        self.last_output = line
        return [AgentEvent("output", line)]

    def _flush(self) -> list[AgentEvent]:
        """The assistant message streamed so far, as one event, once something else comes."""
        text, self.pieces = "".join(self.pieces), []
        if not text.strip():
            return []
        self.result_text = text
        return [AgentEvent("assistant", short(text), {"text": text})]

    def _on_init(self, event: dict) -> list[AgentEvent]:
        self.session_id = event.get("session_id")
        self.model = event.get("model")
        data = {"session_id": self.session_id, "model": self.model}
        return [AgentEvent("started", f"session {self.session_id} ({self.model})", data)]

    def _on_message(self, event: dict) -> list[AgentEvent]:
        # Assistant text comes in pieces (delta: true); the user's is the prompt echoed back.
        if event.get("role") == "assistant":
            self.pieces.append(event.get("content") or "")
        return []

    def _on_tool_use(self, event: dict) -> list[AgentEvent]:
        tool_name = event.get("tool_name") or "tool"
        name, parameter = TOOLS.get(tool_name, (tool_name, None))
        summary = (event.get("parameters") or {}).get(parameter) if parameter else None
        return self._flush() + [AgentEvent("tool_use", tool_text(name, summary), {"name": name})]

    def _on_tool_result(self, event: dict) -> list[AgentEvent]:
        is_error = event.get("status") == "error"
        detail = (event.get("error") or {}).get("message") or event.get("output")
        return self._flush() + [AgentEvent("tool_result", short(detail) if is_error else "", {"is_error": is_error})]

    def _on_error(self, event: dict) -> list[AgentEvent]:
        message = event.get("message") or ""
        if event.get("severity") != "error":  # a warning such as "Loop detected, stopping execution"
            return self._flush() + [AgentEvent("output", message)]
        # An error can come before a result that still says success ("Maximum session turns exceeded").
        return self._flush() + [self._fail(message)]

    def _fail(self, message: str, error_type: str = "") -> AgentEvent:
        failure_class, retry_at = classify(message, error_type)
        self.failure = (message, failure_class, retry_at)
        return AgentEvent("error", short(message), {"failure_class": failure_class, "message": message})

    def _on_result(self, event: dict) -> list[AgentEvent]:
        self.finished = True
        events = self._flush()
        error = event.get("error") or {}
        if event.get("status") != "success" and (error or not self.failure):
            events.append(self._fail(error.get("message") or "gemini reported an error", error.get("type") or ""))
        stats = event.get("stats") or {}
        self.tokens = _tokens(stats)
        self.duration_ms = stats.get("duration_ms")
        self._read_models(stats.get("models"))
        cost = self.cost.data()
        events += [AgentEvent("usage", "", {"tokens": dict(self.tokens), **cost}), *self.cost.error_event()]
        over_budget = self.cost.over_budget()
        ok = self.failure is None and not over_budget
        data = {"ok": ok, "text": self.result_text, "tokens": dict(self.tokens), "session_id": self.session_id,
                "model": self.model, **cost}
        text = short(self.result_text) if ok else over_budget or short(self.failure[0])
        return events + [AgentEvent("result", text, data)]

    def _read_models(self, models: Any) -> None:
        """The model that answered (init says only `auto` when gemini chooses), and the cost
        at each model's price: a router's question goes to a small model."""
        per_model = {name: _tokens(stats) for name, stats in (models or {}).items() if isinstance(stats, dict)}
        if not per_model:
            return
        self.model = max(per_model, key=lambda name: sum(per_model[name].values()))
        costs = [estimated_cost("google", name, tokens) for name, tokens in per_model.items()]
        self.cost.usd = None if None in costs else round(sum(costs), 6)

    def outcome(self, exit_status: int) -> Outcome:
        data: dict[str, Any] = {"session_id": self.session_id, "model": self.model, **self.cost.data()}
        if self.tokens is not None:
            data.update(tokens=dict(self.tokens), duration_ms=self.duration_ms)
        if self.cost.over_budget():
            return Outcome(ok=False, reason=self.cost.over_budget(), failure_class=PERMANENT,
                           result_text=self.result_text, data=data)
        if self.failure:
            message, failure_class, retry_at = self.failure
            # The API's 400 "The input token count (N) exceeds the maximum number of tokens allowed (M)".
            cause = CONTEXT_OVERFLOW if OVERFLOW.search(message) else None
            return Outcome(ok=False, reason=short(message, 200), failure_class=failure_class,
                           retry_at=retry_at, result_text=self.result_text, data=data, cause=cause)
        if self.finished and exit_status == 0:
            return Outcome(ok=True, result_text=self.result_text, data=data)
        if not self.finished and exit_status in (0, 1) and not PERMANENT_ERRORS.search(self.last_output):
            # A SIGTERM from outside (not the batch's) makes gemini exit 0 mid-stream, or 1
            # while it starts, with no result: cut short, as a signal would.
            return Outcome(ok=False, reason=f"gemini was cut short (exit status {exit_status}, no result)",
                           failure_class=TRANSIENT, result_text=self.result_text, data=data)
        # Gemini exits early with its own status (41 authentication, 52 configuration...) and
        # says why on stderr.
        return self.unexplained_end(exit_status, "gemini ended without a result", data)


class GeminiAgent(Agent):
    name = "gemini"
    state_paths = (".gemini",)
    executable = "gemini"
    # item_budget_usd: gemini has no budget of its own; the reader holds the estimate to it.
    supports = frozenset({"model", "allowed_tools", "permission_mode", "extra_args", "item_budget_usd"})
    instead = {"max_turns": "set model.maxSessionTurns in .gemini/settings.json"}

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        mode = settings.get("permission_mode")
        if mode is not None and mode not in APPROVAL_MODES:
            raise SettingError(f"agent 'gemini' takes permission_mode {', '.join(APPROVAL_MODES)} "
                               f"(its --approval-mode), not {mode!r}", setting="permission_mode")

    def environment(self, settings: Mapping[str, Any]) -> dict[str, str]:
        """Headless, gemini reads the folder's .gemini/settings.json only from a trusted folder,
        and decides that before --skip-trust counts: the batch runs where its user chose."""
        return {"GEMINI_CLI_TRUST_WORKSPACE": "true"}

    def argv(self, settings: Mapping[str, Any], context: Mapping[str, str]) -> list[str]:
        """No -p: with stdin not a terminal gemini runs headless and takes the whole prompt
        from it (`cat file | gemini`, docs/cli/cli-reference.md); -p would only add text after it.

        --skip-trust: headless, an untrusted folder is a fatal error (docs/cli/trusted-folders.md),
        and the batch runs where its user chose. --session-id: ours, so a run can be found again;
        --resume ID continues one under its id (0.61 takes no --session-id with it), found only
        from the folder it ran in.
        """
        session = (["--resume", context["resume_session"]] if context.get("resume_session")
                   else ["--session-id", context["session_id"]])
        argv = [self.executable, "--output-format", "stream-json", "--skip-trust", *session,
                "--approval-mode", settings.get("permission_mode") or DEFAULT_APPROVAL]
        if settings.get("model"):
            argv += ["--model", settings["model"]]
        # One flag a tool; gemini splits each value at commas (deprecated for its policy
        # engine, but still honoured).
        for tool in settings.get("allowed_tools") or ():
            argv += ["--allowed-tools", tool]
        return argv + list(settings.get("extra_args") or ())

    def resumes(self, settings: Mapping[str, Any]) -> bool:
        return True

    def reader(self, settings: Mapping[str, Any] | None = None) -> JsonLinesReader:
        return GeminiReader(budget_usd=(settings or {}).get("item_budget_usd"))
