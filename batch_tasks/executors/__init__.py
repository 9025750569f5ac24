"""Where an item's attempts run: the executor, chosen once per run and held by the Run.

An executor is reached only through what the lifecycle passes it (the ItemRun, the attempt's
number, its prompt context, what running.json is to hold, the session to go on with) and
returns the attempt, its agent run to its end; the lifecycle lands it (check, merge queue, record, tick) the same way
whatever ran it, on this machine.

    local   (executors/local.py) today's path: the agent runs here, in the batch's workdir
            (workdir.py) or the same folder of the item's own worktree
    dask    (executors/dask_cluster.py) the agent runs on a Dask worker (on_worker.py), in the
            same folder of a worktree of its own fetched from the git remote; its branch is pushed, fetched back
            and landed here (fetched.py)

`choose` reads the settings and run-batch's options; a wrong choice is one BatchError (exit 3)
before anything is written. Touches nothing itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ..errors import BatchError
from ..settings import scheduler_address, SettingError

if TYPE_CHECKING:
    from ..lifecycle import ItemRun
    from ..records import Attempt


class Executor(Protocol):
    def attempt(self, item_run: "ItemRun", number: int, context: Mapping[str, Any], running: Mapping[str, Any],
                continues: str | None = None) -> "Attempt":
        """One attempt of the item, its agent run to its end (going on with the session
        `continues`, where the executor can); after a success the item's work is where
        `item_run.workspace` says (when isolated). Raises BatchError when the attempt could not
        be set up (its worktree, its setup): the item fails, saying so."""
        ...

    def close(self) -> None: ...


def scheduler_of(settings: Mapping[str, Any], executor_option: str, scheduler_option: str) -> str | None:
    """The Dask scheduler this run is to use, or None to run here; `--executor` and
    `--scheduler` (which alone means dask) win over the front matter's `executor:`."""
    name = executor_option or ("dask" if scheduler_option or isinstance(settings.get("executor"), dict) else "local")
    if name not in ("local", "dask"):
        raise BatchError(f"--executor must be local or dask, not {name!r}")
    if name == "local":
        if scheduler_option:
            raise BatchError("--scheduler is for --executor dask")
        return None
    configured = settings.get("executor")
    address = scheduler_option or (configured["dask"] if isinstance(configured, dict) else None)
    if not address:
        raise BatchError("--executor dask needs --scheduler tcp://HOST:8786 (or executor: {dask: tcp://HOST:8786} "
                         "in the front matter)")
    try:
        return scheduler_address(address)
    except SettingError as error:
        raise BatchError(f"--scheduler {error}") from None


def choose(batch, scheduler: str | None, run) -> "Executor":
    """The run's executor. For Dask: every group that runs must be isolated, `distributed`
    installed, and the scheduler reachable."""
    from .local import LocalExecutor

    if scheduler is None:
        return LocalExecutor()
    from .dask_cluster import DaskExecutor

    return DaskExecutor.connect(batch, scheduler, run)
