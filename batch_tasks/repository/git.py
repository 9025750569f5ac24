"""Running git: argv lists, never a shell, and one clear line when git fails (after a few
tries, when what failed was another run's worktree, half made).

May touch: only the repository a call's `cwd` is in, and only as the call says.
Every call runs with no program that git configuration names (hooks, fsmonitor,
filters, drivers…: see git_config_guard; nothing an agent plants runs through us),
without automatic gc (six worktrees committing at once must not
start six repacks), without prompts, and deaf to GIT_DIR and its kin, which
would point it at another repository than the folder it is given.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import BatchError
from . import git_config_guard

# Options for every call, beside git_config_guard's (which also keeps commits unsigned: the
# runner's own commits must never hang on a passphrase prompt or fail to keep work).
OPTIONS = (
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "core.quotePath=false",
    # Two task files of one repository run at once: wait for the other's lock on a ref or on
    # packed-refs (git gives up after 0.1 s and 1 s), rather than fail an item.
    "-c", "core.filesRefLockTimeout=30000",
    "-c", "core.packedRefsTimeout=30000",
)
# These would make git work on another repository, index or object store than cwd's.
LOCATION_VARIABLES = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
)
COMMITTING = ("commit", "merge", "commit-tree")
# Another process's `git worktree add` (a second task file's run in the same repository) has
# made its entry in .git/worktrees but not yet written all of it: for that moment, every git
# that lists the worktrees fails. Worth another try, a few times (about 5 s in all).
HALF_MADE_WORKTREE = re.compile(r"failed to read .*worktrees/.*/(commondir|gitdir|HEAD)")
HALF_MADE_TRIES = 14
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "batch-tasks", "GIT_AUTHOR_EMAIL": "batch-tasks@localhost",
    "GIT_COMMITTER_NAME": "batch-tasks", "GIT_COMMITTER_EMAIL": "batch-tasks@localhost",
}


class GitError(BatchError):
    """A git command failed; its message is git's own last word."""

    def __init__(self, args: tuple[str, ...], cwd: Path | str, status: int, stderr: str):
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        said = lines[-1].removeprefix("fatal: ").removeprefix("error: ") if lines else f"exit status {status}"
        super().__init__(f"git {' '.join(args[:2])} failed in {cwd}: {said}")
        self.status = status
        self.stderr = stderr


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out.strip()

    def fields(self) -> list[str]:
        """The NUL-separated fields of a `-z` output."""
        return [field for field in self.out.split("\0") if field]


def git(*args: str, cwd: Path | str, allowed: tuple[int, ...] = (0,), input: bytes | None = None,
        secret_config: tuple[tuple[str, str], ...] = ()) -> Result:
    """Run `git ARGS` in `cwd`; raise GitError unless its exit status is `allowed`.
    `secret_config` (key, value) pairs reach git through its environment, not its argv.

    Output is decoded with surrogate escapes, so that any path git prints goes back
    to the file system unchanged."""
    for waited in range(HALF_MADE_TRIES):
        env = git_config_guard.environment(args, cwd, _environment(cwd if args[0] in COMMITTING else None))
        try:
            done = subprocess.run(
                ["git", *OPTIONS, *args],
                cwd=cwd,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                env=git_config_guard.with_settings(env, list(secret_config)) if secret_config else env,
            )
        except FileNotFoundError:
            raise BatchError("isolation: worktree needs git on PATH") from None
        result = Result(done.returncode, done.stdout.decode("utf-8", "surrogateescape"),
                        done.stderr.decode("utf-8", "replace"))
        if result.status in allowed:
            return result
        if not HALF_MADE_WORKTREE.search(result.err):
            break
        time.sleep(0.05 * (waited + 1))  # another run's `git worktree add` finishes its entry meanwhile
    raise GitError(args, cwd, result.status, result.err)


def environment_for_worktrees() -> dict[str, str]:
    """The environment for what runs in a worktree (setup, check, agent): its git must find
    the worktree it runs in, whatever GIT_DIR the runner was started with."""
    return {name: value for name, value in os.environ.items() if name not in LOCATION_VARIABLES}


def _environment(committing_in: Path | str | None) -> dict[str, str]:
    env = environment_for_worktrees()
    env["GIT_TERMINAL_PROMPT"] = "0"
    if committing_in is not None:
        env.update(_missing_identity(str(committing_in)))
    return env


@lru_cache(maxsize=256)
def _missing_identity(cwd: str) -> dict[str, str]:
    """A name for the runner's commits where git has none (CI, a fresh machine):
    without one, `git commit` refuses, and the work it should keep is not kept."""
    if "GIT_AUTHOR_EMAIL" in os.environ or "EMAIL" in os.environ:
        return {}
    found = subprocess.run(["git", "config", "--get", "user.email"], cwd=cwd, capture_output=True,
                           env=environment_for_worktrees())
    if found.returncode == 0:
        return {}
    return {name: value for name, value in FALLBACK_IDENTITY.items() if name not in os.environ}


def rev(ref: str, cwd: Path | str) -> str | None:
    """The commit `ref` names, or None if it names none."""
    found = git("rev-parse", "-q", "--verify", "--end-of-options", f"{ref}^{{commit}}", cwd=cwd, allowed=(0, 1))
    return found.text or None


def present_at(commit: str, paths: list[str], cwd) -> list[str]:
    """Those of PATHS (repository-relative files or folders) that COMMIT holds."""
    if not paths:
        return []
    return git("ls-tree", "-z", "--name-only", commit, "--", *paths, cwd=cwd).fields()


def changed_paths(base: str, tip: str, cwd: Path | str) -> list[str]:
    """The paths (repository-relative) that differ between two commits, a rename as both its names."""
    return git("diff", "--name-only", "-z", "--no-renames", "--no-textconv", "--no-ext-diff", base, tip, "--",
               cwd=cwd).fields()


def is_ancestor(commit: str, of: str, cwd: Path | str) -> bool:
    return git("merge-base", "--is-ancestor", commit, of, cwd=cwd, allowed=(0, 1)).status == 0


def trailers(commit: str, cwd: Path | str) -> dict[str, str]:
    """The `Key: value` trailers of a commit's message (the last of each key wins)."""
    text = git("log", "-1", "--format=%(trailers:only,unfold)", commit, "--", cwd=cwd).out
    return parse_trailers(text)


def parse_trailers(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            found[key.strip()] = value.strip()
    return found


def worktrees(cwd: Path | str) -> list[dict[str, str]]:
    """`git worktree list`: one dict per worktree (`worktree`, `HEAD`, `branch`, `locked`, `prunable`…)."""
    entries, entry = [], {}
    for line in git("worktree", "list", "--porcelain", "-z", cwd=cwd).out.split("\0"):
        if not line:
            if entry:
                entries.append(entry)
            entry = {}
            continue
        key, _, value = line.partition(" ")
        entry[key] = value
    if entry:
        entries.append(entry)
    return entries


def worktree_at(cwd: Path | str, path: Path | str) -> dict[str, str] | None:
    """The worktree registered at `path`, if any."""
    wanted = os.path.realpath(path)
    return next((entry for entry in worktrees(cwd) if os.path.realpath(entry["worktree"]) == wanted), None)


@lru_cache(maxsize=64)
def common_dir(top: Path) -> str:
    """The repository's own .git folder (every worktree's shared one), absolute: asked once a
    process, as a repository's does not move under a run."""
    return git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=top).text


def admin_folder(worktree: Path | str) -> Path:
    """A worktree's own folder inside the repository's .git (index, HEAD, MERGE_HEAD)."""
    return Path(git("rev-parse", "--absolute-git-dir", cwd=worktree).text)
