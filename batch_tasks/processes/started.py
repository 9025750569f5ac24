"""When this process began: what a run's summary and its history count its time from.

Its own module, light to import: a no-op answered from its stamp says its time too, and
imports none of the machinery that runs agents. Reads /proc, touches nothing.
"""

from __future__ import annotations

import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_started() -> float:
    """When this process began (epoch seconds), from its start in clock ticks since boot
    (psutil's create_time adds the boot time in whole seconds, so it can be a second off)."""
    with open("/proc/self/stat", "rb") as stream:
        fields = stream.read().rsplit(b")", 1)[1].split()
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / CLOCK_TICKS
    return time.time() - age
