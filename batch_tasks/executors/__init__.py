"""Where an item's attempts run: the executor, chosen once per run and held by the Run.

An executor is reached only through the seam (seam.py): it is given a read-only description
of each attempt and a narrow way to report, and returns the attempt, its agent run to its end;
the lifecycle lands it (check, merge queue, record, tick) the same way whatever ran it, on
this machine. attempt.py runs one attempt's agent, whichever executor holds it.

    local   (local.py) the agent runs here, in the batch's workdir (isolation/workdir.py)
            or the same folder of the item's own worktree
    dask    (dask_cluster.py) the agent runs on a Dask worker (on_worker.py), in the
            same folder of a worktree of its own fetched from the git remote; its branch is pushed, fetched back
            and landed here (fetched.py)
    NAME    any other: the `batch_tasks.executors` entry point NAME of an installed package, a
            callable given the batch and the run's tools (seam.RunTools) that returns an Executor

`check` reads the settings and run-batch's options and checks what the chosen executor needs
(seam.Needs): a wrong choice is one BatchError (exit 3) before anything is written; `choose`
makes it. Touches nothing itself. Imports tasks/ and below: never the landing, the run or the
lifecycle that call it.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Callable, Mapping

from ..errors import BatchError
from ..plan.settings import SettingError, scheduler_address
from .seam import Executor, Needs, RunTools, check_needs

ENTRY_POINTS = "batch_tasks.executors"


def scheduler_of(settings: Mapping[str, Any], executor_option: str, scheduler_option: str) -> str | None:
    """The Dask scheduler this run is to use, or None to run elsewhere; `--executor` and
    `--scheduler` (which alone means dask) win over the front matter's `executor:`."""
    name = name_of(settings, executor_option, scheduler_option)
    if name != "dask":
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


def name_of(settings: Mapping[str, Any], executor_option: str, scheduler_option: str) -> str:
    return executor_option or ("dask" if scheduler_option or isinstance(settings.get("executor"), dict) else "local")


def check(batch, executor_option: str, scheduler_option: str, will_run: set[str]) -> None:
    """What would stop the chosen executor in this batch: one BatchError, before anything is written."""
    name = name_of(batch.plan.settings, executor_option, scheduler_option)
    scheduler_of(batch.plan.settings, executor_option, scheduler_option)
    if name == "local":
        return
    if name == "dask":
        from .dask_cluster import DaskExecutor, check_installed  # only a Dask run needs what it brings

        check_installed()
        needs = DaskExecutor.needs
    else:
        needs = getattr(_plugin(name), "needs", Needs())
    check_needs(needs, name, batch, will_run)


def choose(batch, executor_option: str, scheduler_option: str, tools: RunTools) -> Executor:
    """The run's executor. For Dask: the scheduler reachable."""
    from .local import LocalExecutor

    name = name_of(batch.plan.settings, executor_option, scheduler_option)
    if name == "local":
        return LocalExecutor(tools.supervisor, tools.redactor)
    if name == "dask":
        from .dask_cluster import DaskExecutor

        return DaskExecutor.connect(batch, scheduler_of(batch.plan.settings, executor_option, scheduler_option), tools)
    return _plugin(name)(batch, tools)


def _plugin(name: str) -> Callable[[Any, RunTools], Executor]:
    found = metadata.entry_points(group=ENTRY_POINTS, name=name)
    if not found:
        known = sorted({"local", "dask", *(entry.name for entry in metadata.entry_points(group=ENTRY_POINTS))})
        raise BatchError(f"--executor must be one of {', '.join(known)}, not {name!r}")
    try:
        return next(iter(found)).load()
    except Exception as error:  # noqa: BLE001 - another package's import: whatever it raises is its fault, named
        raise BatchError(f"--executor {name}: cannot load it: {error!r}") from None
