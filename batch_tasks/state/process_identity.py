"""Whether a process recorded by its pid and start time is still that process (pids get
reused): what the run lock's holder, and the processes an attempt recorded, are judged by.
Reads /proc through psutil; touches nothing.
"""

from __future__ import annotations

import psutil


def is_same_process(pid: int, create_time: float) -> bool:
    """True if `pid` is still the process that was started at `create_time`, and not a zombie."""
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - create_time) < 0.01 and is_alive(process)
    except psutil.Error:
        return False


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
