"""The repository's own git settings, as a run found them: what an attempt changed there is undone.

An agent runs as the user, so it can change the repository's configuration, its
attributes, its excludes and its hooks (`.git/config`, `config.worktree`,
`info/attributes`, `info/exclude`, `hooks/`), which steer every git the user runs
afterwards (and what the runner's git commits). The run notes them when it
starts (`note`); after each attempt, whatever differs is put back as the run found it
and named (`ended`), and the lifecycle fails the attempt: for good if it ran alone;
if others ran beside it, no file says which one did it, so each of them fails as a
transient failure (and runs again).

Touches only those files, and only to put them back.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .git import git

# info/exclude: a file it lists is neither committed nor shown, yet the check sees it.
WATCHED_FILES = ("config", "config.worktree", "info/attributes", "info/exclude")
WATCHED_FOLDERS = ("hooks",)


@dataclass(frozen=True)
class Changed:
    names: list[str]  # `.git/config`, `.git/hooks/pre-commit`
    alone: bool  # no other attempt ran beside this one since the files were last as the run found them


@dataclass
class AdminFiles:
    """The watched files of a repository's git folder (relative name → (mode, bytes)), and the
    attempts running: those that ran beside a change are its suspects."""

    folder: Path
    files: dict[str, tuple[int, bytes]]
    running: set[str] = field(default_factory=set)
    suspects: dict[str, list[str]] = field(default_factory=dict)  # attempt → what changed beside it
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def started(self, attempt: str) -> None:
        with self.lock:
            self.running.add(attempt)

    def ended(self, attempt: str) -> Changed | None:
        """Put every watched file back as noted; what had changed, if anything did while ATTEMPT ran."""
        with self.lock:
            self.running.discard(attempt)
            now = _read(self.folder)
            changed = sorted(name for name in set(now) | set(self.files) if now.get(name) != self.files.get(name))
            for name in changed:
                _put_back(self.folder / name, self.files.get(name))
            names = [f".git/{name}" for name in changed]
            beside = self.suspects.pop(attempt, None)  # a change found while it ran, at another's end
            for other in self.running if names else ():
                self.suspects[other] = sorted({*self.suspects.get(other, ()), *names})
            if not names and beside is None:
                return None
            return Changed(sorted({*names, *(beside or ())}), alone=beside is None and not self.running)


def note(top: Path) -> AdminFiles:
    """The watched files of the repository at TOP, as they are now."""
    folder = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=top).text)
    return AdminFiles(folder, _read(folder))


def _read(folder: Path) -> dict[str, tuple[int, bytes]]:
    names = list(WATCHED_FILES)
    for watched in WATCHED_FOLDERS:
        try:
            names += [f"{watched}/{entry}" for entry in os.listdir(folder / watched)]
        except OSError:
            pass
    found = {}
    for name in names:
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as error:
            if not isinstance(error, FileNotFoundError):
                found[name] = (0, b"")  # a link, a folder, unreadable: something that was not there
            continue
        with os.fdopen(fd, "rb") as stream:
            found[name] = (os.fstat(stream.fileno()).st_mode, stream.read())
    return found


def _put_back(path: Path, was: tuple[int, bytes] | None) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    if was is None:
        path.unlink(missing_ok=True)
        return
    mode, data = was
    temporary = path.with_name(f".{path.name}.batch-tasks.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode & 0o7777)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(temporary, mode & 0o7777)
    os.replace(temporary, path)  # replaces a link planted there, never follows it
