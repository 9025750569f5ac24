"""When an attempt must stop, on a clock the test holds: no real timeout is waited out."""

from __future__ import annotations

import pytest

from batch_tasks.processes.process import RESULT_GRACE, START_ALLOWANCE, Limits

START = 1000.0


def limits(timeout=None, idle_timeout=None):
    return Limits(timeout=timeout, idle_timeout=idle_timeout, finished=lambda: False)


@pytest.mark.parametrize("timeout, idle, last_output, result_at, now, reason", [
    (None, None, None, None, START + 10**6, None),  # no limits: never
    (10, None, None, None, START + 10, None),  # a limit is exceeded only past it
    (10, None, None, None, START + 10.01, "timed out after 10s"),
    (10, 2, START + 10, None, START + 10.01, "timed out after 10s"),  # the timeout is said first
    (None, 2, START + 5, None, START + 7, None),
    (None, 2, START + 5, None, START + 7.01, "no output for 2s"),
    (None, 2.5, START + 5, None, START + 7.6, "no output for 2.5s"),
    # Before the first output: idle_timeout plus the start-up allowance.
    (None, 1, None, None, START + 1 + START_ALLOWANCE, None),
    (None, 1, None, None, START + 1.01 + START_ALLOWANCE, f"no output in its first {1 + START_ALLOWANCE:g}s"),
    (None, 1, START + 30, None, START + 31, None),  # it printed: the allowance is over, the idle clock runs
    # After its final result an agent has RESULT_GRACE to exit.
    (None, None, None, START + 3, START + 3 + RESULT_GRACE, None),
    (None, None, None, START + 3, START + 3.01 + RESULT_GRACE, "still running after its final result"),
])
def test_an_attempt_stops_for_the_first_limit_it_passed(timeout, idle, last_output, result_at, now, reason):
    assert limits(timeout, idle).exceeded(START, last_output, result_at, now) == reason


def test_the_start_up_allowance_is_thirty_seconds():
    assert START_ALLOWANCE == 30.0
    assert RESULT_GRACE == 5.0
