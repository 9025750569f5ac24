"""Retrying by cause: what follows a failed attempt, and the batch-wide pauses for limits.

- transient (429/529/5xx, network, a hang, killed by a signal it did not choose):
  retried up to `retries` times, after an exponential backoff with jitter;
- wait (a usage or rate limit that resets at a known time): every new attempt of
  that agent, in the whole batch, waits until the reset, then the batch goes on.
  One limit makes one pause, not a storm of retries;
- permanent (authentication, billing, invalid request, max turns, budget, a
  command's non-zero exit unless listed in `transient_exit_codes`): no retry.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .agents import PERMANENT, TRANSIENT, WAIT, Outcome
from .scheduler import SUPERVISOR

MAX_WAITS = 5  # an item that hits a limit more often than this fails, so no batch waits forever

_pauses: dict[str, float] = {}  # agent name → epoch time its limit resets
_pauses_lock = threading.Lock()


@dataclass
class Decision:
    retry: bool
    delay: float = 0.0  # seconds before the next attempt
    why: str = ""  # for the log and the live view


def failure_class(outcome: Outcome, exit_status: int | None, settings: Mapping[str, Any]) -> str:
    if exit_status in settings.get("transient_exit_codes", ()) and outcome.failure_class != WAIT:
        return TRANSIENT
    return outcome.failure_class or PERMANENT


def decide(outcome: Outcome, failure: str, transient_retries: int, waits: int, settings: Mapping[str, Any]) -> Decision:
    if failure == WAIT and outcome.retry_at is not None and waits < MAX_WAITS:
        delay = max(0.0, outcome.retry_at - time.time())
        return Decision(True, delay, f"limit resets at {time.strftime('%H:%M:%S', time.localtime(outcome.retry_at))}")
    if failure in (TRANSIENT, WAIT) and transient_retries < settings["retries"]:
        ceiling = min(settings["retry_cap"], settings["retry_base"] * 2**transient_retries)
        delay = random.uniform(ceiling / 2, ceiling)
        return Decision(True, delay, f"retry {transient_retries + 1} of {settings['retries']} in {delay:.1f}s")
    return Decision(False)


def pause(agent: str, until: float) -> None:
    with _pauses_lock:
        _pauses[agent] = max(until, _pauses.get(agent, 0.0))


def paused_until(agent: str) -> float | None:
    with _pauses_lock:
        until = _pauses.get(agent)
    return until if until and until > time.time() else None


def wait(seconds: float, agent: str) -> bool:
    """Sleep `seconds`, and on until the agent's pause is over; False if the run stops first."""
    deadline = time.time() + seconds
    while True:
        until = max(deadline, paused_until(agent) or 0.0)
        left = until - time.time()
        if left <= 0:
            return True
        if SUPERVISOR.stopping.wait(min(left, 1.0)):
            return False
