"""Retrying by cause: what follows a failed attempt. Pure decisions on plain data; the
dispatcher carries them out (a backoff frees the item's slot; a limit pauses its agent).

- transient (429/529/5xx, network, a hang, killed by a signal it did not choose):
  retried up to `retries` times, after an exponential backoff with jitter;
- wait (a usage or rate limit that resets at a known time in the future): every new
  attempt of that agent, in the whole batch, waits until the reset, then the batch goes
  on. One limit makes one pause, not a storm of retries; at most MAX_WAITS per item.
  A reset time already past (or none) is no reset to wait for: it counts as transient;
- check (the item's `check` failed): retried at once, the agent told the check's
  output, up to `check_retries` times; conflict (its merge conflicted): retried at once
  from the new tip, counted against `retries`;
- permanent (authentication, billing, invalid request, max turns, budget, a
  command's non-zero exit unless listed in `transient_exit_codes`): no retry.

Some failures have a cause an adjusted attempt can meet (`adjust`): a context overflow, max
turns, a tool failing the same way again and again, the check failing the same way again, a
hang while the agent was still making progress. Then the next attempt runs with adjusted
settings and session (`Adjustment`), one that costs more only if the batch's budget can hold
it (`budget_holds`); a permanent failure so adjusted is retried at once, against `retries`.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import SettingError
from ..setting_values import duration_seconds, flag, positive_int
from . import AGENTS, CONTEXT_OVERFLOW, HANG, MAX_TURNS, PERMANENT, TOOL_LOOP, TRANSIENT, WAIT, Outcome

# With a `check` and isolation: the item's check failed (retried with the agent told why,
# `check_retries` times), or its merge conflicted (retried from the new tip, against `retries`).
CHECK, CONFLICT = "check", "conflict"
MAX_WAITS = 5  # an item that hits a limit more often than this fails, so no batch waits forever
MAX_PAUSE = 24 * 3600  # the longest one pause lasts, whatever reset time a limit names


@dataclass(frozen=True)
class Counts:
    """How often an item was retried so far, by kind of retry."""

    transient: int = 0
    waits: int = 0
    checks: int = 0


@dataclass(frozen=True)
class Decision:
    retry: bool
    kind: str = ""  # TRANSIENT (a backoff) or WAIT (a pause of the agent until `at`)
    at: float = 0.0  # epoch time of the next attempt
    why: str = ""  # for the log and the live view

    def counted(self, counts: Counts) -> Counts:
        """The counts after this retry: each kind counts only against its own limit."""
        if self.kind == WAIT:
            return Counts(counts.transient, counts.waits + 1, counts.checks)
        if self.kind == CHECK:
            return Counts(counts.transient, counts.waits, counts.checks + 1)
        return Counts(counts.transient + 1, counts.waits, counts.checks)


def failure_class(outcome: Outcome, exit_status: int | None, settings: Mapping[str, Any]) -> str:
    if exit_status in settings.get("transient_exit_codes", ()) and outcome.failure_class != WAIT:
        return TRANSIENT
    return outcome.failure_class or PERMANENT


def decide(
    failure: str,
    retry_at: float | None,
    counts: Counts,
    settings: Mapping[str, Any],
    now: float,
    jitter: float | None = None,
    adjusted: bool = False,
) -> Decision:
    """What follows a failure of class `failure`. `jitter` (0..1) replaces the random draw;
    `adjusted`: the next attempt is adjusted to its cause, so a permanent failure is retried too."""
    if failure == WAIT and retry_at is not None and retry_at > now:
        if counts.waits >= MAX_WAITS:
            return Decision(False, why=f"a limit was hit {counts.waits + 1} times")
        if retry_at > now + MAX_PAUSE:  # a limit years away (or a mistake) must not hold the batch that long
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(retry_at))
            return Decision(True, WAIT, now + MAX_PAUSE, f"limit resets at {when}, more than {MAX_PAUSE // 3600}h away: "
                                                         f"paused {MAX_PAUSE // 3600}h at most, then tried again")
        when = time.strftime("%H:%M:%S", time.localtime(retry_at))
        return Decision(True, WAIT, retry_at, f"limit resets at {when}")
    if failure == CHECK:
        if counts.checks < settings["check_retries"]:
            return Decision(True, CHECK, now, f"check retry {counts.checks + 1} of {settings['check_retries']}")
        return Decision(False)
    if failure == PERMANENT and adjusted and counts.transient < settings["retries"]:
        return Decision(True, PERMANENT, now, f"retry {counts.transient + 1} of {settings['retries']}, adjusted")
    if failure == CONFLICT and counts.transient < settings["retries"]:
        return Decision(True, CONFLICT, now, f"retry {counts.transient + 1} of {settings['retries']} from the new tip")
    if failure in (TRANSIENT, WAIT) and counts.transient < settings["retries"]:
        ceiling = min(settings["retry_cap"], settings["retry_base"] * 2**counts.transient)
        delay = ceiling / 2 + (ceiling / 2) * (random.random() if jitter is None else jitter)
        return Decision(True, TRANSIENT, now + delay, f"retry {counts.transient + 1} of {settings['retries']} in {delay:.1f}s")
    return Decision(False)


# --- adjusting the next attempt to what went wrong ---------------------------------------

SAME_CHECK = "same_check"  # the check failed the way it failed before (the same failing lines)
CAUSES = (CONTEXT_OVERFLOW, MAX_TURNS, TOOL_LOOP, SAME_CHECK, HANG)
# What is done for each cause unless `adjust:` says otherwise (`false`: retried as before):
DEFAULT_ADJUST: Mapping[str, Mapping[str, Any]] = {
    # a fresh session (never the overflowed one) on this model, if one is named (a larger
    # window); else on the same model, the shared context trimmed, the item's instruction whole
    CONTEXT_OVERFLOW: {"model": None},
    MAX_TURNS: {"factor": 2, "cap": 200},  # the same session goes on with max_turns times factor, up to cap
    TOOL_LOOP: {"repeats": 3},  # a fresh session, told the item's history
    # a fresh session told the item's history, on the next model of `escalate:` if there is one
    SAME_CHECK: {"escalate": True},
    # `timeout` times factor, up to cap, when its last output came within progress_s (at most
    # half the timeout) of the stop
    HANG: {"factor": 2, "cap": 7200.0, "progress_s": 30.0},
}
# The agents whose models genai-prices knows, by provider: a stronger model's cost is estimated so.
PROVIDERS = {"claude": "anthropic", "codex": "openai", "gemini": "google"}


def _number_above_one(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 1:
        raise SettingError(f"must be a number above 1, e.g. 2, not {value!r}")
    return float(value)


def _model(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SettingError(f"must name a model, not {value!r}")
    return value


KEYS = {
    CONTEXT_OVERFLOW: {"model": _model},
    MAX_TURNS: {"factor": _number_above_one, "cap": positive_int},
    TOOL_LOOP: {"repeats": positive_int},
    SAME_CHECK: {"escalate": flag},
    HANG: {"factor": _number_above_one, "cap": duration_seconds,
           "progress_s": duration_seconds},
}


def parse_adjust(value: Any) -> dict[str, Mapping[str, Any] | None]:
    """`adjust:` maps causes to `false` (retry as before) or to what to change of their
    defaults: `{max_turns: {cap: 50}, same_check: false}`. The result holds every cause."""
    if not isinstance(value, dict):
        raise SettingError(f"must map causes ({', '.join(CAUSES)}) to false or their options, "
                           f"e.g. {{max_turns: {{cap: 50}}}}, not {value!r}")
    policy: dict[str, Mapping[str, Any] | None] = dict(DEFAULT_ADJUST)
    for cause, given in value.items():
        if cause not in KEYS:
            raise SettingError(f"names an unknown cause {cause!r} (known: {', '.join(CAUSES)})")
        if given is False:
            policy[cause] = None
            continue
        if not isinstance(given, dict):
            raise SettingError(f"{cause}: must be false or a mapping of {', '.join(KEYS[cause])}, not {given!r}")
        options = dict(DEFAULT_ADJUST[cause])
        for key, option in given.items():
            if key not in KEYS[cause]:
                raise SettingError(f"{cause}: unknown option {key!r} (known: {', '.join(KEYS[cause])})")
            try:
                options[key] = KEYS[cause][key](option)
            except SettingError as error:
                raise SettingError(f"{cause}.{key} {error}") from None
        policy[cause] = options
    return policy


def describe_adjust(policy: Mapping[str, Mapping[str, Any] | None], escalate: tuple[str, ...] | None) -> list[str]:
    """What each cause gets, one line each, for --dry-run."""
    def seconds(value: float) -> str:
        return f"{value:g}s"

    lines = []
    for cause in CAUSES:
        options = policy.get(cause)
        if options is None:
            lines.append(f"{cause}: retried as before (adjust: {{{cause}: false}})")
        elif cause == CONTEXT_OVERFLOW:
            lines.append(f"{cause}: a fresh session on {options['model']}" if options["model"] else
                         f"{cause}: a fresh session, the shared context trimmed")
        elif cause == MAX_TURNS:
            lines.append(f"{cause}: the same session, max_turns x{options['factor']:g} up to {options['cap']}")
        elif cause == TOOL_LOOP:
            lines.append(f"{cause}: after {options['repeats']} same tool errors, a fresh session told the item's history")
        elif cause == SAME_CHECK:
            ladder = f", then the next model of escalate: {list(escalate)}" if escalate and options["escalate"] else ""
            lines.append(f"{cause}: a fresh session told the item's history{ladder}")
        else:
            lines.append(f"{cause}: timeout x{options['factor']:g} up to {seconds(options['cap'])}, when it had "
                         f"output in its last {seconds(options['progress_s'])} (at most half the timeout)")
    return lines


@dataclass(frozen=True)
class Failed:
    """A failed attempt, as far as adjusting the next one goes."""

    failure: str  # its class
    cause: str | None = None  # as its agent's output said (agents.base)
    turns: int | None = None  # the turns it took
    quiet_s: float | None = None  # with a hang: how long it had been silent when it was stopped
    check: str = ""  # with a failed check: the end of the check's output
    cost_usd: float | None = None
    tokens: Mapping[str, int] | None = None


@dataclass(frozen=True)
class Adjustment:
    """How the next attempt differs from the last, and why."""

    cause: str
    changes: Mapping[str, Any]  # settings it runs with instead: {"max_turns": 20}
    was: Mapping[str, Any]  # those settings as they were
    session: str  # "fresh" (never the last one's), "continue" (the last one's), or "" (as without)
    trim: bool = False  # the shared context (the group's text, the step before's result) left out
    history: bool = False  # told every earlier attempt: what was tried, what failed
    extra_usd: float | None = None  # what it may cost beyond an attempt as before, when it costs more

    def text(self) -> str:
        parts = [f"{name} {_shown(self.was.get(name))} -> {_shown(value)}" for name, value in self.changes.items()]
        parts += {"fresh": ["a fresh session"], "continue": ["the same session"]}.get(self.session, [])
        parts += ["the shared context trimmed"] * self.trim + ["told the item's history"] * self.history
        return f"adjusted for {self.cause.replace('_', ' ')}: {', '.join(parts)}"

    def record(self) -> dict[str, Any]:
        return {"cause": self.cause, "changes": dict(self.changes), "was": dict(self.was), "session": self.session,
                "trim": self.trim, "history": self.history, "extra_usd": self.extra_usd, "text": self.text()}


def _shown(value: Any) -> str:
    return "none" if value is None else f"{value:g}s" if isinstance(value, float) else str(value)


def check_signature(output: str) -> tuple[str, ...]:
    """What a check's failure comes down to: the lines of its output that name a failure (a
    test, a file and line), timings left out; else its last line."""
    lines = [DURATIONS.sub("", line).strip() for line in output.splitlines() if line.strip()]
    failing = sorted({line for line in lines if FAILING.search(line)})
    return tuple(failing) or tuple(lines[-1:])


FAILING = re.compile(r"\b(FAIL(ED|URE)?|ERROR|Error|error|failed|assert)", re.ASCII)
DURATIONS = re.compile(r"\b(in )?\d+(\.\d+)?\s*(ms|s|sec|seconds)\b")


def cause_of(attempts: list[Failed]) -> str | None:
    """Why the last attempt failed, when an adjustment can meet it: as its agent said, or the
    check failing as it failed the time before."""
    last = attempts[-1]
    if last.cause:
        return last.cause
    if last.failure == CHECK:
        before = next((a for a in reversed(attempts[:-1]) if a.failure == CHECK), None)
        if before is not None and check_signature(before.check) == check_signature(last.check):
            return SAME_CHECK
    return None


def adjust(attempts: list[Failed], settings: Mapping[str, Any]) -> Adjustment | None:
    """The next attempt's adjustment, after the last of `attempts` failed; `settings` are the
    ones it ran with (`adjust` and `escalate` among them). None: retried as before, if at all."""
    last, cause = attempts[-1], cause_of(attempts)
    policy = (settings.get("adjust") or DEFAULT_ADJUST).get(cause) if cause else None
    if policy is None:
        return None
    takes_model = "model" in AGENTS[settings.get("agent") or "command"].supports  # a command takes none
    if cause == CONTEXT_OVERFLOW:
        model = policy["model"] if takes_model and policy["model"] != settings.get("model") else None
        changes = {"model": model} if model else {}
        extra = _model_cost(last, settings, model) if model else None
        return Adjustment(cause, changes, _was(settings, changes), "fresh", trim=not changes, extra_usd=extra)
    if cause == MAX_TURNS:
        turns = settings.get("max_turns") or last.turns
        more = min(policy["cap"], int(turns * policy["factor"])) if turns else 0
        if more <= (turns or 0):
            return None  # at its cap
        extra = last.cost_usd * (more - turns) / turns if last.cost_usd else None
        return Adjustment(cause, {"max_turns": more}, _was(settings, {"max_turns": more}), "continue", extra_usd=extra)
    if cause == TOOL_LOOP:
        return Adjustment(cause, {}, {}, "fresh", history=True)
    if cause == SAME_CHECK:
        ladder = list(settings.get("escalate") or ()) if policy["escalate"] and takes_model else []
        current = settings.get("model")
        step = ladder.index(current) + 1 if current in ladder else 0
        changes = {"model": ladder[step]} if step < len(ladder) else {}
        extra = _model_cost(last, settings, changes["model"]) if changes else None
        return Adjustment(cause, changes, _was(settings, changes), "fresh", history=True, extra_usd=extra)
    # HANG: only one that was still making progress gets longer; a silent one is retried as before.
    timeout = settings.get("timeout")
    if not timeout or last.quiet_s is None or last.quiet_s > min(policy["progress_s"], timeout / 2):
        return None
    longer = min(policy["cap"], timeout * policy["factor"])
    if longer <= timeout:
        return None
    return Adjustment(cause, {"timeout": longer}, _was(settings, {"timeout": longer}), "")


def _was(settings: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: settings.get(name) for name in changes}


def _model_cost(last: Failed, settings: Mapping[str, Any], model: str) -> float | None:
    """The last attempt's cost on `model`: its tokens at that model's prices, where they are known,
    else the last attempt's cost."""
    from .pricing import estimated_cost

    provider = PROVIDERS.get(settings.get("agent"))
    priced = estimated_cost(provider, model, last.tokens) if provider and last.tokens else None
    return priced if priced is not None else last.cost_usd


def budget_holds(budget: Any, extra_usd: float | None) -> bool:
    """Whether the batch's budget (`budget_usd`, a budget.Budget) can hold an adjustment that may
    cost `extra_usd` more than an attempt as before: beside what is spent and what the running
    attempts (this item's among them) reserved. Of an unknown extra, only that something is left."""
    if extra_usd is None:
        left = budget.left()
        return left is None or left > 0
    return budget.can_hold(extra_usd)
