"""An item's `services:` and `services_down:`: the user's commands (argv, never a shell) that
start what the item's work needs beside it (a database, a dev server) once, before its first
agent, and stop it when the item is over. Both get the item's BATCH_PORT and BATCH_SLOT (see
ports), its BATCH_GROUP, BATCH_MODULE and BATCH_ITEM, and BATCH_WORKTREE when it is isolated.

They run outside the sandbox, in the batch's workdir (task.md's own settings, not the
agent's doing), to their end: what they start is theirs to keep running (`docker compose
up -d`, `pg_ctl start`), not one of the agent's processes, which are stopped with it. Their
output goes to the item's log, masked.

While they are up (from just before `services:` runs until `services_down:` has run), the
item's state folder holds services.json: the BATCH_PORT, BATCH_SLOT, ports and BATCH_WORKTREE
they were started with, nothing else (the environment is the run's, and its secrets are never
kept). A killed run leaves it, and the next run's recovery stops what it names (see
leftover_services). Touches only that record.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import BatchError
from ..redaction import Redactor
from ..repository.git import environment_for_worktrees
from ..state import item_log
from ..state.state import write_json_atomic

if TYPE_CHECKING:
    from ..state.state import ItemState
    from .run import Run

TIMEOUT = 600.0


class ServicesFailed(BatchError):
    """`services:` did not start: the item fails, its worktree kept."""


class ItemServices:
    """An item's own ports and slot (see ports), leased when first asked for, and its services,
    started once before its first agent; both given back when the item is over or its run stops
    (`release`, once its processes are gone: each step waits for those it started)."""

    def __init__(self, settings: Mapping[str, Any], workdir: Path, run: "Run", folder: "ItemState",
                 item: Mapping[str, str]):
        self.settings, self.workdir, self.run, self.folder = settings, workdir, run, folder
        self.item = item  # BATCH_GROUP, BATCH_MODULE and BATCH_ITEM
        self.lease = None
        self.started = False

    def environment(self, worktree: Path | None) -> dict[str, str]:
        """The run's environment, with the item's names, BATCH_PORT and BATCH_SLOT and, isolated, BATCH_WORKTREE."""
        if self.lease is None:
            self.lease = self.run.ports.lease(self.settings["ports_per_item"])
        return environment(self.settings, self.run.environ, self.item, self.lease.environment(), worktree)

    def start(self, worktree: Path | None) -> None:
        """`services:`, the first time (ServicesFailed fails the item, as a failed worktree_setup does).
        Recorded first: a run killed while they start or run leaves them for the next to stop."""
        if self.settings.get("services") and not self.started:
            env = self.environment(worktree)
            if os.path.lexists(self.folder.services):
                raise ServicesFailed("services: those a killed run started for this item may still be up, and "
                                     "were not stopped (the run said why, in a line `recovered: ...`)")
            write_json_atomic(self.folder.services, record(self.lease, worktree), durable=True)
            try:
                with self.folder.open_log() as log:
                    start(self.settings["services"], self.workdir, env, log, self.run.redactor)
            except BaseException:
                self.folder.remove(self.folder.services)  # as before: a failed `services:` is not stopped
                raise
            self.started = True

    def release(self, worktree: Path | None) -> None:
        if self.started:
            if self.settings.get("services_down"):
                with self.folder.open_log() as log:
                    stop(self.settings["services_down"], self.workdir, self.environment(worktree), log,
                         self.run.redactor)
            self.folder.remove(self.folder.services)
        self.started = False
        if self.lease is not None:
            self.lease.release()
            self.lease = None


def item_names(item) -> dict[str, str]:
    """BATCH_GROUP, BATCH_MODULE and BATCH_ITEM of a plan's item."""
    return {"BATCH_GROUP": item.group, "BATCH_MODULE": item.module, "BATCH_ITEM": item.key}


def environment(settings: Mapping[str, Any], environ: Mapping[str, str], names: Mapping[str, str],
                ports: Mapping[str, str], worktree: Path | str | None) -> dict[str, str]:
    """What services (and the item's agent and check) run under: the run's environment (`environ`,
    or git's clean one for a worktree), the item's names, its ports and, isolated, its worktree."""
    isolated = settings["isolation"] == "worktree"
    env = {**(environment_for_worktrees() if isolated else environ), **names, **ports}
    if worktree is not None:
        env["BATCH_WORKTREE"] = str(worktree)
    return env


def record(lease, worktree: Path | None) -> dict[str, Any]:
    """services.json: what the next run needs to stop them as they were started, and no more."""
    return {**lease.environment(), "ports": lease.count, **({"BATCH_WORKTREE": str(worktree)} if worktree else {})}


def start(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log, redactor: Redactor) -> None:
    ended = _run("services", argv, cwd, env, log, redactor)
    if ended is not None:
        raise ServicesFailed(f"services: {ended}; its output is in the item's log")


def stop(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log, redactor: Redactor) -> str | None:
    """services_down: how it failed is noted in the log (and returned); the item's result stands."""
    return _run("services_down", argv, cwd, env, log, redactor)


def _run(name: str, argv, cwd, env, log, redactor: Redactor) -> str | None:
    """Run it to its end; None if it succeeded, else how it failed."""
    log.write(item_log.note_header(f"{name}: {redactor.text(' '.join(argv))}"))
    try:
        done = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired as expired:
        how, output = f"timed out after {TIMEOUT:g}s", expired.output or b""
    except OSError as error:
        how, output = f"cannot start {argv[0]!r}: {error.strerror or error}", b""
    else:
        how, output = (None if done.returncode == 0 else f"exit status {done.returncode}"), done.stdout
    log.write(redactor.text(output.decode("utf-8", "replace")).encode())
    if how is not None:
        log.write(item_log.note_header(f"{name} failed: {how}"))
    log.flush()
    return how
