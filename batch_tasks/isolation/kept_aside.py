"""Names for what is kept aside rather than deleted: an earlier attempt's branch and worktree,
or something not ours where a worktree of ours goes, renamed with the time, never overwritten.

May touch: only the path it is given to move aside (a rename in its own folder).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..repository.git import rev


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def unused_branch(top: Path, name: str) -> str:
    candidate, number = name, 1
    while rev(f"refs/heads/{candidate}", top) is not None:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def unused_path(path: Path) -> Path:
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = Path(f"{path}-{number}")
    return candidate


def move_aside(path: Path) -> None:
    """Something not a worktree of ours is where one goes: rename it, never delete it."""
    if os.path.lexists(path):
        os.rename(path, unused_path(Path(f"{path}.{stamp()}")))
