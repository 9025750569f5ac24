"""The plain values a setting can be (a whole number, a duration, a flag), each read or
refused with one SettingError: shared by settings.py and retry.py's `adjust:`. Touches nothing."""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from .errors import SettingError


def whole_number(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SettingError(f"must be a whole number from {minimum} up, not {value!r}")
        return value

    return parse


positive_int = whole_number(1)

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
SECONDS_PER = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def duration_seconds(value: Any) -> float:
    """`90s`, `30m`, `1.5h`, `500ms`, or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    match = DURATION.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise SettingError(f"must be a duration such as 90s, 30m or 2h, not {value!r}")
    return float(match.group(1)) * SECONDS_PER[match.group(2)]


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"must be true or false, not {value!r}")
    return value
