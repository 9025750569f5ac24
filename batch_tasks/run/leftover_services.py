"""Services a killed run left up, stopped by the next run's recovery before anything runs.

A run killed outright (`kill -9`, a power cut) runs no `services_down:`: the item's
services.json (see services) says its services were started and with what. `stop` runs
`services_down:` as task.md has it now (as the rest of recovery follows task.md as it is
now), in the batch's workdir, on this run's environment, with the item's names and the
recorded BATCH_PORT, BATCH_SLOT and BATCH_WORKTREE; its output goes to the item's log,
masked; the record is removed once it has run. What was done is one line for the user, and
in the item's log.

- The recorded block of ports is held by this run (Ports.hold) while services_down runs, so
  no other run leases it meanwhile. If another run holds any of it now, nothing is run on
  ports that are that run's: the user is told what to run by hand, and the record is kept for
  the next run to try again (the item, should it run now, fails at its `services:`, rather
  than start its services a second time beside the first; see services).
- No `services_down:` in task.md now: nothing can stop them; the record is dropped and the
  user told that they may still be up.
- A failing services_down (or one that times out) is noted in the log and said, and the
  record dropped all the same, as a live run does with a failing services_down: it was
  tried once, as it would have been. Kept, it would fail the item at its `services:` in
  every run from then on, for something only the user can mend: they are told once, with
  how it failed and where its output is.
- The record is the state folder's, so untrusted (an agent can write there): it is read
  as any record is (no link followed; not a regular file: absent), and all it can choose
  is values for task.md's own `services_down:` argv, each checked: BATCH_PORT the first
  port of a block within the ports' range, `ports` a size the range holds, BATCH_SLOT a
  whole number from 1, BATCH_WORKTREE the item's own worktree or absent. A record that is
  not such is removed, nothing run, and the user told.

Touches the items' services.json and output.log, and their blocks of ports while stopping.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..plan.plan import Group, Item
from ..processes.ports import FIRST_PORT, LAST_PORT, UNIT, Ports
from ..redaction import Redactor
from ..state import item_log
from ..state.state import ItemState, read_json
from ..tasks.batch import Batch
from . import services

_NUMBER = re.compile(r"[1-9][0-9]{0,5}")
MAX_SLOT = 1_000_000


def looked_at(batch: Batch, killed_before: bool) -> Iterator[tuple[Group, Item, ItemState]]:
    """The items whose services.json is looked for: those with services in task.md now, and all
    of them after a killed run (task.md may have lost its services since)."""
    for group in batch.plan.groups:
        if killed_before or group.settings.get("services") or group.settings.get("services_down"):
            for item in group.items:
                yield group, item, batch.state.item(item.group, item.module)


def left_up(batch: Batch, killed_before: bool) -> bool:
    return any(os.path.lexists(folder.services) for _, _, folder in looked_at(batch, killed_before))


def checked(record: Mapping[str, Any] | None, worktree: Path) -> tuple[dict[str, str], int] | str:
    """The BATCH_* values of a record and its count of ports, or why it is not one services.py
    wrote for this item (`worktree`: the item's own, where it is isolated)."""
    if record is None:
        return "it is not a record (a JSON object in a regular file)"
    port, slot, count = record.get("BATCH_PORT"), record.get("BATCH_SLOT"), record.get("ports")
    if not (isinstance(port, str) and _NUMBER.fullmatch(port) and isinstance(slot, str) and _NUMBER.fullmatch(slot)):
        return "its BATCH_PORT or BATCH_SLOT is not a whole number"
    if type(count) is not int or not 1 <= count <= LAST_PORT - FIRST_PORT + 1:
        return "its count of ports is not one the range holds"
    first, last = int(port), int(port) + -(-count // UNIT) * UNIT - 1
    if (first - FIRST_PORT) % UNIT or first < FIRST_PORT or last > LAST_PORT or int(slot) > MAX_SLOT:
        return f"its ports are not a block of the range {FIRST_PORT}-{LAST_PORT}"
    values = {"BATCH_PORT": port, "BATCH_SLOT": slot}
    if "BATCH_WORKTREE" in record:
        if record["BATCH_WORKTREE"] != str(worktree):
            return "its BATCH_WORKTREE is not the item's own worktree"
        values["BATCH_WORKTREE"] = str(worktree)
    if set(record) - {"BATCH_PORT", "BATCH_SLOT", "BATCH_WORKTREE", "ports"}:
        return "it holds more than BATCH_PORT, BATCH_SLOT, BATCH_WORKTREE and ports"
    return values, count


def stop_all(batch: Batch, killed_before: bool, ports: Ports) -> list[str]:
    """`stop` for each item looked at; `ports` closed at the end."""
    redactor, environ = Redactor(os.environ), dict(os.environ)
    try:
        said = []
        for group, item, folder in looked_at(batch, killed_before):
            line = stop(batch, group, item, folder, ports, redactor, environ)
            if line is not None:
                said.append(line)
                _note(folder, line)
    finally:
        ports.close()
    return said


def stop(batch: Batch, group: Group, item: Item, folder: ItemState, ports: Ports, redactor: Redactor,
         environ: Mapping[str, str]) -> str | None:
    """Stop what the item's services.json says a killed run left up; the line that says what was done."""
    if not os.path.lexists(folder.services):
        return None
    key, argv = item.key, group.settings.get("services_down")
    found = checked(read_json(folder.services), own_worktree(batch, item))
    if isinstance(found, str):
        try:
            folder.remove(folder.services)
        except OSError as error:  # a folder planted there
            return f"{folder.services} is not a record of its services ({found}), and cannot be removed: {error.strerror}"
        return f"removed {folder.services}, not a record of its services ({found}); nothing was run"
    if not argv:
        folder.remove(folder.services)
        return (f"the services a killed run started for {key} may still be up: {batch.plan.path.name} has no "
                "services_down for it now, to stop them")
    values, count = found
    port, slot = int(values["BATCH_PORT"]), int(values["BATCH_SLOT"])
    lease = ports.hold(port, count, slot)
    if lease is None:
        by_hand = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())
        return (f"did not stop the services a killed run left up for {key}: another run holds their ports "
                f"{port}-{port + count - 1} now; run again once it is over, or stop them yourself: "
                f"{by_hand} {redactor.text(shlex.join(argv))}")
    try:
        env = services.environment(group.settings, environ, services.item_names(item), lease.environment(),
                                   values.get("BATCH_WORKTREE"))
        with folder.open_log() as log:
            log.write(item_log.note_header("its services, left up when its run was killed, are stopped"))
            failed = services.stop(argv, batch.workdir, env, log, redactor)
    finally:
        lease.release()
    folder.remove(folder.services)
    if failed is not None:
        return (f"services_down of {key} failed ({failed}) stopping what a killed run left up: they may still "
                "be up; its output is in the item's log")
    return f"stopped the services a killed run left up for {key} (services_down on BATCH_PORT {port}, BATCH_SLOT {slot})"


def own_worktree(batch: Batch, item: Item) -> Path:
    """Where the item's worktree is: the only BATCH_WORKTREE its services had."""
    from ..isolation.worktree import Isolation  # where paths are named; no git is asked

    return Isolation(batch.plan.path, batch.plan.settings, workdir=batch.workdir, state=batch.state).item_path(
        item.group, item.module)


def _note(folder: ItemState, line: str) -> None:
    """What was done, in the item's log too; a log that cannot be written (a link planted there)
    leaves it said on the run's output alone."""
    try:
        with folder.open_log() as log:
            log.write(item_log.note_header(line))
    except OSError:
        pass
