"""Where an item's agent and its check run: the project's folder, which is not always the plan's.

Plans written for other tools live deep in the repository (`specs/001-x/tasks.md`,
`.kiro/specs/x/tasks.md`, `docs/superpowers/plans/…`) and name every path from its top
(`Create: src/models/user.py`): their items run at the top of the git repository
holding them. A `batch` task.md names paths from its own folder, as the README has
always said: its items run there. `workdir:` in the settings chooses, relative to the
plan's folder. Asks git only where the plan's folder is; touches nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TaskFileError
from ..plan.plan import Plan

OWN_FOLDER = "the plan's folder"


def resolve(plan: Plan) -> tuple[Path, str]:
    """The folder the plan's items run in, and why, in words. A `workdir:` that is not a
    folder is an error at its line."""
    folder = plan.path.parent
    chosen = plan.settings.get("workdir")
    if chosen is not None:
        target = Path(os.path.normpath(folder / os.path.expanduser(chosen)))
        if not target.is_dir():
            raise TaskFileError(plan.path, plan.setting_lines.get("workdir", 1), f"workdir {chosen!r} is not a folder ({target})")
        return target, f"`workdir: {chosen}`"
    if plan.dialect == "batch":
        return folder, f"{OWN_FOLDER} (a batch task.md names paths from its folder)"
    top = repository_top(folder)
    if top is None:
        return folder, f"{OWN_FOLDER} (it is in no git repository)"
    return top, "the top of its git repository (the paths of a plan written for another tool start there)"


def repository_top(folder: Path) -> Path | None:
    """The top folder of the git checkout holding `folder`, or None (no repository, no git)."""
    from ..errors import BatchError
    from ..repository.git import git

    try:
        found = git("rev-parse", "--show-toplevel", cwd=folder, allowed=(0, 128))
    except BatchError:  # no git on PATH
        return None
    return Path(found.text) if found.status == 0 and found.text else None
