"""Making a fresh worktree ready: `worktree_copy`, then `worktree_setup`, and a note
of what the two left behind, so that it is never committed as the item's work.

May touch: the worktree it is given (files copied in, the setup's own doings), and
read the user's checkout (only the files `worktree_copy` names, inside the
repository, symlinks copied as links, never followed out of it).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import BatchError
from ..processes import process
from ..redaction import Redactor
from ..repository.git import environment_for_worktrees, git

SETUP_TAIL_LINES = 40


class SetupFailed(BatchError):
    """`worktree_setup` failed: the attempt fails, with the setup's last lines."""

    def __init__(self, message: str, tail: str):
        super().__init__(message)
        self.tail = tail


@dataclass
class Baseline:
    """What the worktree differed in from its commit right after copy and setup:
    path (relative to the worktree) -> what it held then."""

    paths: dict[str, str] = field(default_factory=dict)

    def untouched_since(self, root: Path, path: str) -> bool:
        return path in self.paths and _content(root / path) == self.paths[path]

    @classmethod
    def of(cls, worktree: Path) -> "Baseline":
        """What the worktree differs in from its commit now."""
        return cls({path: _content(worktree / path) for path in dirty_paths(worktree)})


def bootstrap(worktree: Path, *, folder: Path, source_folder: Path, top: Path, settings: Mapping[str, Any], log,
              supervisor: process.Supervisor, on_start=None, sandbox=None) -> Baseline:
    """Copy `worktree_copy` from the user's checkout (task.md's folder there is
    `source_folder`, its repository `top`), then run `worktree_setup` in `folder`
    (task.md's folder in the worktree; `on_start` gets what identifies its processes, to
    record), in `sandbox` if given (see agent_sandbox). Raises SetupFailed."""
    copied = copy_files(settings.get("worktree_copy") or (), source_folder, top, worktree)
    setup = settings.get("worktree_setup")
    if setup:
        run_setup(setup, worktree, folder, log, settings.get("timeout"), supervisor, on_start, sandbox)
    if not copied and not setup:
        return Baseline()
    return Baseline.of(worktree)


def copy_files(globs, source_folder: Path, top: Path, worktree: Path) -> list[str]:
    """Copy what the globs match (untracked or ignored files: what the worktree has already
    is never overwritten). Returns the paths copied, relative to the repository."""
    real_top = os.path.realpath(top)
    copied = []
    for pattern in globs:
        for match in sorted(glob.glob(os.path.join(glob.escape(str(source_folder)), pattern), recursive=True)):
            relative = os.path.relpath(os.path.normpath(match), top)
            if not inside(os.path.realpath(os.path.dirname(match)), real_top) or relative.startswith(".."):
                continue  # reached through a symlink, or `..`, out of the repository
            if relative.split(os.sep)[0] == ".git":
                continue
            for source, target in _walk(match, relative):
                if _copy(source, worktree, target):
                    copied.append(target)
    return copied


def _walk(match: str, relative: str):
    if os.path.isdir(match) and not os.path.islink(match):
        for folder, folders, files in os.walk(match):  # symlinked folders are listed, not entered
            for name in files + [name for name in folders if os.path.islink(os.path.join(folder, name))]:
                source = os.path.join(folder, name)
                yield source, os.path.normpath(os.path.join(relative, os.path.relpath(source, match)))
    else:
        yield match, relative


def _copy(source: str, worktree: Path, relative: str) -> bool:
    target = worktree / relative
    if os.path.lexists(target):
        return False  # tracked: the worktree's own version stays
    os.makedirs(target.parent, exist_ok=True)
    if not inside(os.path.realpath(target.parent), os.path.realpath(worktree)):
        return False  # a tracked symlink would lead the copy out of the worktree
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    else:
        shutil.copy2(source, target)
    return True


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def run_setup(argv, worktree: Path, folder: Path, log, timeout: float | None, supervisor: process.Supervisor,
              on_start=None, sandbox=None) -> None:
    tail: deque[str] = deque(maxlen=SETUP_TAIL_LINES)
    env = {**environment_for_worktrees(), "BATCH_WORKTREE": str(worktree)}
    log.write(f"=== worktree_setup: {Redactor(os.environ).text(' '.join(argv))} ===\n".encode())
    try:
        ended = supervisor.run(list(argv), cwd=folder, env=env, stdin=b"", log=log, on_line=tail.append, timeout=timeout,
                               on_start=on_start or (lambda processes: None), sandbox=sandbox)
    except OSError as error:
        raise SetupFailed(f"worktree_setup cannot start {argv[0]!r}: {error.strerror or error}", "") from None
    if ended.status != 0 or ended.stopped_for:
        how = ended.stopped_for or f"exit status {ended.status}"
        raise SetupFailed(f"worktree_setup failed ({how}); its output is in the item's log", "\n".join(tail))


def dirty_paths(worktree: Path) -> list[str]:
    """Paths (relative to the worktree) that differ from its HEAD commit, untracked ones included."""
    return [path for _, path in dirty_entries(worktree)]


def dirty_entries(worktree: Path) -> list[tuple[str, str]]:
    """dirty_paths, each with its status (`??` untracked, ` M` modified…), from one walk of the tree."""
    fields = git("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", cwd=worktree).fields()
    return [(entry[:2], entry[3:]) for entry in fields]


def dirty_or_ignored(worktree: Path) -> tuple[list[str], list[str]]:
    """dirty_paths, and the ignored files and folders there (a folder ends with `/`), from one walk of the tree."""
    fields = git("status", "--porcelain", "-z", "--untracked-files=all", "--ignored=matching", "--no-renames",
                 cwd=worktree).fields()
    return ([entry[3:] for entry in fields if not entry.startswith("!!")],
            [entry[3:] for entry in fields if entry.startswith("!!")])


def _content(path: Path) -> str:
    """What a path holds, in short: a digest of a file or a link's target; `gone` if absent."""
    try:
        if path.is_symlink():
            return "link:" + os.readlink(path)
        if path.is_dir():
            return "folder"
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        return "gone"
