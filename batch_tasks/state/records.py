"""An item's records, as they are written: its attempts, its success (then its tick), its
failure or interruption. Touches the item's state folder and, to tick, task.md."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..agents import Outcome
from ..plan.plan import Group, Item
from . import checkbox
from .state import BatchState, ItemState, rewrite_in_place, write_atomic, write_json_atomic

# A success record leads with its tick flag, so that the tick flips it where it is: one
# write and no new file (a file made and deleted per item is, on ext4 without a journal,
# the costliest thing an item does: each new file is searched for past the deleted ones).
UNTICKED, TICKED = b'{"ticked": false', b'{"ticked": true '


@dataclass
class Attempt:
    """One run of the item's agent, as recorded in its result or failure record."""

    number: int
    session_id: str
    started: float
    run_id: str
    finished: float = 0.0
    exit_status: int | None = None
    outcome: Outcome | None = None  # None: the run was stopped under it
    extra: dict[str, Any] = field(default_factory=dict)  # what else the attempt says of itself

    def record(self) -> dict[str, Any]:
        outcome = self.outcome or Outcome(ok=False, reason="interrupted")
        return {
            "attempt": self.number,
            "run_id": self.run_id,
            "session_id": outcome.data.get("session_id", self.session_id),
            "started": self.started,
            "finished": self.finished,
            "exit_status": self.exit_status,
            "ok": outcome.ok,
            "reason": outcome.reason,
            "failure_class": outcome.failure_class,
            "cause": outcome.cause,
            "cost_usd": outcome.data.get("cost_usd"),
            "cost_estimated": bool(outcome.data.get("cost_estimated")),
            "tokens": outcome.data.get("tokens"),
            **self.extra,
        }


@dataclass(frozen=True)
class RecordedAttempt:
    """An attempt of a killed or stopped run, as its record has it."""

    fields: dict[str, Any]

    @property
    def number(self) -> int:
        return self.fields.get("attempt", 0)

    def record(self) -> dict[str, Any]:
        return self.fields


def success_record(run: Mapping[str, Any], settings, attempts: list[dict], outcome: Outcome, key: str) -> dict[str, Any]:
    finished = time.time()
    return {
        "item": key,
        "run_id": run["run_id"],
        "agent": settings["agent"],
        "model": outcome.data.get("model") or settings.get("model"),
        "model_source": outcome.data.get("model_source"),
        "session_id": attempts[-1]["session_id"],
        "exit_status": attempts[-1]["exit_status"],
        "started": run["started"],
        "finished": finished,
        "duration_s": round(finished - run["started"], 3),
        "attempts": attempts,
        "cost_usd": total(a["cost_usd"] for a in attempts),
        "tokens": sum_tokens(a["tokens"] for a in attempts),
        "fingerprint": dict(run["fingerprint"]),
        "upstream": run["upstream"],
        "result_text": outcome.result_text,
        "ticked": False,
    }


def write_result(folder: ItemState, record: dict[str, Any]) -> None:
    """The paid-for success, first and durably, unticked; `tick` then flips it. If the tick
    cannot be written (the item's line changed, task.md is read-only), the next run writes it
    from the result (see recovery)."""
    rest = json.dumps({name: value for name, value in record.items() if name != "ticked"}, sort_keys=True)
    write_atomic(folder.result, f"{UNTICKED.decode()}, {rest[1:]}\n", durable=True)
    # Its running.json stays: beside a result it says nothing (see item_status), and a
    # deleted file is what every item's new files would be searched past.
    folder.remove(folder.failure, folder.forgotten)


def tick(taskfile: Path, group: Group, item: Item, state: BatchState, record: dict[str, Any],
         moves: checkbox.Moves | None = None) -> bool:
    if not checkbox.set_checkbox(taskfile, group, item, True, state.tick_lock, moves):
        return False
    result = state.item(item.group, item.module).result
    if not rewrite_in_place(result, UNTICKED, TICKED):  # a record from before the flag led
        write_json_atomic(result, {**record, "ticked": True})
    return True


def failure_record(key: str, reason: str, attempts: list[Attempt], interrupted: bool = False) -> dict[str, Any]:
    records = [a.record() for a in attempts]
    return {
        "item": key,
        "reason": reason,
        "interrupted": interrupted,
        "attempts": records,
        "cost_usd": total(a["cost_usd"] for a in records),
        "finished": time.time(),
    }


def record_failure(folder: ItemState, record: dict[str, Any]) -> None:
    write_json_atomic(folder.failure, record)
    folder.remove(folder.running)


def total(values) -> float | None:
    known = [value for value in values if value is not None]
    return round(sum(known), 6) if known else None


def sum_tokens(per_attempt) -> dict[str, int] | None:
    totals: dict[str, int] = {}
    for tokens in per_attempt:
        for name, count in (tokens or {}).items():
            totals[name] = totals.get(name, 0) + (count or 0)
    return totals or None


def files_of(record: Mapping[str, Any]) -> list[str]:
    """The files a result or failure record says its attempts changed: what each committed
    (landing's `changed`), what their merges landed, and what a merge conflicted on. Each
    once; nothing from a damaged record."""
    found: dict[str, None] = {}
    attempts = record.get("attempts")
    for attempt in attempts if isinstance(attempts, list) else ():
        if not isinstance(attempt, dict):
            continue
        merge = attempt.get("merge") if isinstance(attempt.get("merge"), dict) else {}
        files = merge.get("files") if isinstance(merge.get("files"), list) else []
        paths = [change.get("path") for change in files if isinstance(change, dict)]
        for listed in (attempt.get("changed"), merge.get("conflicts")):
            paths += listed if isinstance(listed, list) else []
        for path in paths:
            if isinstance(path, str) and path:
                found.setdefault(path, None)
    return list(found)
