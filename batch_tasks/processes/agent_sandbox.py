"""`sandbox: true`: an item's agent, setup and check run under bubblewrap, the file system
read-only but for what the item's work needs.

Writable inside: the item's worktree; its own folder in the repository's .git (index, HEAD:
but the files that say where the repository is, and batch-tasks' record, stay read-only);
the object store; the folder of refs that holds its branch, every other ref in it read-only
(a ref is replaced by a rename, which a read-only file inside a writable folder refuses);
its branch's reflog; a private /tmp; processes and System V IPC of its own (no process
outside is seen or signalled); the agent CLI's own state (`~/.claude`, `~/.codex`…,
see Agent.state_paths) and `sandbox_write`. Hidden: the plan cache's signing key. The rest,
the repository's config, hooks, other refs, the user's checkout, the batch's state folder
and the home folder among them, is read-only. `sandbox_network: false` cuts the network.

    sandbox = for_workspace(workspace, settings)     # None without `sandbox: true`; made per process
    argv = sandbox.argv(["python3", "agent.py"], cwd) # what the supervisor starts instead
    preflight(groups)                                 # before any agent: SandboxUnavailable

The sandbox always makes a user namespace, even for root: the same unprivileged path
everywhere. It touches nothing itself (`for_workspace` makes its branch's reflog if
missing, as git would).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from ..agents import AGENTS
from ..errors import BatchError
from ..repository.git import admin_folder


class Repository(Protocol):
    top: Path


class Worktree(Protocol):
    """What a sandbox needs of an attempt's worktree (a workspace.Worktree)."""

    path: Path
    branch: str
    isolation: Repository

# What git and the common tools print when the file system refuses a write.
REFUSED = re.compile(r"Read-only file system|Permission denied|EROFS|EACCES")
PRIVATE_TMP = "/tmp"  # a fresh one per process: TMPDIR points there, wherever it pointed outside
REFUSALS_KEPT = 20  # refused lines noted in the item's log after each process
EXCERPT = 240
# The files of a worktree's own .git folder that say where the repository is: rewritten, they
# would steer the runner's git. (The attempt's record is kept in the state folder, signed.)
ADMIN_PROTECTED = ("commondir", "gitdir", "config.worktree")


class SandboxUnavailable(BatchError):
    """`sandbox: true`, but this machine cannot make the sandbox."""


@dataclass(frozen=True)
class Sandbox:
    """What bwrap is told, as plain paths: read-only everywhere but `writable` (bound as
    they are; `writable_if_there` when they exist), with `protected` read-only again on
    top, `shown` (and the command's own folders in /tmp: temp_homes) bound back read-only
    over the private /tmp, and `hidden` replaced by an empty read-only folder."""

    bwrap: str
    writable: tuple[str, ...]
    writable_if_there: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    network: bool = True

    def argv(self, command: Sequence[str], cwd: Path | str) -> list[str]:
        # Processes of its own (--unshare-pid): the user's others, the runner, other items' agents
        # and checks are neither seen nor signalled, as any process of the same user could be.
        args = [self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", PRIVATE_TMP]
        for path in (*self.shown, *temp_homes(command, self.shown)):
            args += ["--ro-bind", path, path]
        for path in self.writable:
            args += ["--bind", path, path]
        for path in self.writable_if_there:
            args += ["--bind-try", path, path]
        for path in self.protected:
            args += ["--ro-bind-try", path, path]
        for path in self.hidden:
            args += ["--tmpfs", path, "--remount-ro", path]
        if not self.network:
            args.append("--unshare-net")
        return [*args, "--setenv", "TMPDIR", PRIVATE_TMP, "--chdir", str(cwd), "--", *command]


def plan(*, bwrap: str, worktree: str, admin: str, branch: str | None, ref_siblings: Iterable[str], agent: str,
         home: str, extra_writable: Iterable[str] = (), hidden: Iterable[str] = (), network: bool = True,
         outside_temp: Iterable[str] = ()) -> Sandbox:
    """The sandbox of one worktree, from plain facts: its own .git folder `admin`
    (`<common>/worktrees/<name>`), its `branch` (None: it commits nothing, and only the
    worktree is writable), the names beside the branch in its folder of refs, and the paths
    under /tmp that must stay visible (`outside_temp`: the repository, the home folder)."""
    common = os.path.dirname(os.path.dirname(admin))
    git_writable: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    if branch is not None:
        ref_folder = os.path.dirname(os.path.join(common, "refs", "heads", branch))
        own = os.path.basename(branch)
        git_writable = (admin, os.path.join(common, "objects"), ref_folder,
                        os.path.join(common, "logs", "refs", "heads", branch))
        protected = (*(os.path.join(admin, name) for name in ADMIN_PROTECTED), os.path.join(common, "objects", "info"),
                     *(os.path.join(ref_folder, name) for name in sorted(ref_siblings) if name != own))
    state = [os.path.join(home, path) for path in AGENTS[agent].state_paths]
    return Sandbox(
        bwrap=bwrap,
        writable=(worktree, *git_writable),
        writable_if_there=tuple(_unique([*state, *(os.path.expanduser(path) for path in extra_writable)])),
        protected=protected,
        shown=tuple(path for path in _unique(outside_temp) if _inside(path, PRIVATE_TMP)),
        hidden=tuple(hidden),
        network=network,
    )


def for_workspace(workspace: Worktree, settings: Mapping[str, Any]) -> Sandbox | None:
    """The sandbox the item's next process runs in, or None without `sandbox: true`. Made
    afresh for each: a branch made beside its own since the last is read-only too."""
    return for_worktree(workspace.path, workspace.isolation.top, settings, workspace.branch)


def for_merged_state(integration: Path, top: Path, settings: Mapping[str, Any]) -> Sandbox | None:
    """The sandbox of an item's setup and check on the merged state, in the runner's worktree
    of the integration branch: they run the item's work too, but commit nothing."""
    return for_worktree(integration, top, settings, None)


def for_worktree(path: Path, top: Path, settings: Mapping[str, Any], branch: str | None) -> Sandbox | None:
    if not settings.get("sandbox"):
        return None
    admin = str(admin_folder(path))
    common = os.path.dirname(os.path.dirname(admin))
    siblings: list[str] = []
    if branch is not None:
        reflog = Path(common, "logs", "refs", "heads", branch)
        reflog.parent.mkdir(parents=True, exist_ok=True)
        reflog.touch()  # git appends to it; a bound file must be there
        siblings = os.listdir(Path(common, "refs", "heads", branch).parent)
    home = os.path.expanduser("~")
    return plan(bwrap=bwrap_program(), worktree=str(path), admin=admin, branch=branch, ref_siblings=siblings,
                agent=settings["agent"], home=home, extra_writable=settings.get("sandbox_write") or (),
                hidden=[folder for folder in [key_folder()] if os.path.isdir(folder)],
                network=settings.get("sandbox_network", True), outside_temp=[str(top), common, home])


def key_folder() -> str:
    """Where the plan cache's signing key is kept (see signing.signing_key)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "batch-tasks")


def bwrap_program() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable("sandbox: true needs bubblewrap's bwrap on PATH: install the bubblewrap package "
                                 "(apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap)")
    return found


def preflight(groups) -> None:
    """Before any agent starts: every group with `sandbox: true` can have one, or one error."""
    wanted = [group for group in groups if group.settings.get("sandbox")]
    for group in wanted:
        if group.settings["isolation"] != "worktree":
            raise SandboxUnavailable(f"group {group.slug!r}: sandbox: true needs isolation: worktree "
                                     "(the sandbox leaves only the item's own worktree writable)")
        if group.settings.get("executor", "local") != "local":
            raise SandboxUnavailable(f"group {group.slug!r}: sandbox: true runs agents on this machine only "
                                     "(executor: local)")
    if wanted:
        _try_sandbox(bwrap_program())


@lru_cache(maxsize=4)
def _try_sandbox(bwrap: str) -> None:
    tried = subprocess.run(Sandbox(bwrap, writable=()).argv(["true"], "/"), capture_output=True, text=True)
    if tried.returncode != 0:
        raise SandboxUnavailable(why_refused(tried.stderr))


def why_refused(said: str) -> str:
    """bwrap's complaint, with what the system lacks."""
    said = " ".join(said.split()) or "no reason given"
    if re.search(r"namespace|Operation not permitted|setting up uid map", said, re.IGNORECASE):
        return ("sandbox: true needs unprivileged user namespaces, and this system refuses them "
                f"(bwrap said: {said}); allow them (sysctl user.max_user_namespaces=15000, "
                "kernel.unprivileged_userns_clone=1, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0), "
                "or leave sandbox out")
    return f"sandbox: true, but bwrap cannot make a sandbox here: {said}"


class Refusals:
    """What the sandbox refused one process, from the lines it printed: at most REFUSALS_KEPT,
    each cut to EXCERPT characters around the refusal (an agent CLI's line is a whole JSON event)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def hear(self, line: str) -> None:
        found = REFUSED.search(line) if len(self.lines) < REFUSALS_KEPT else None
        if found is not None:
            start = max(0, found.start() - EXCERPT // 2)
            self.lines.append(" ".join(line[start:start + EXCERPT].split()))

    def listening(self, on_line: Callable[[str], None]) -> Callable[[str], None]:
        """`on_line`, with each line heard here first."""
        def both(line: str) -> None:
            self.hear(line)
            on_line(line)
        return both


def temp_homes(command: Sequence[str], shown: Sequence[str] = ()) -> list[str]:
    """What the command needs from the /tmp it cannot see: the folder right under /tmp that
    holds its program, or a file it names (a script, a virtual environment), if there."""
    found: list[str] = []
    for argument in command:
        if _inside(argument, PRIVATE_TMP) and argument != PRIVATE_TMP:
            home = os.path.join(PRIVATE_TMP, os.path.relpath(argument, PRIVATE_TMP).split(os.sep)[0])
            if home not in found and home not in shown and os.path.exists(home):
                found.append(home)
    return found


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _unique(paths: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(paths))
