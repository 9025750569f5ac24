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
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .agents import PERMANENT, TRANSIENT, WAIT, Outcome

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
) -> Decision:
    """What follows a failure of class `failure`. `jitter` (0..1) replaces the random draw."""
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
    if failure == CONFLICT and counts.transient < settings["retries"]:
        return Decision(True, CONFLICT, now, f"retry {counts.transient + 1} of {settings['retries']} from the new tip")
    if failure in (TRANSIENT, WAIT) and counts.transient < settings["retries"]:
        ceiling = min(settings["retry_cap"], settings["retry_base"] * 2**counts.transient)
        delay = ceiling / 2 + (ceiling / 2) * (random.random() if jitter is None else jitter)
        return Decision(True, TRANSIENT, now + delay, f"retry {counts.transient + 1} of {settings['retries']} in {delay:.1f}s")
    return Decision(False)
