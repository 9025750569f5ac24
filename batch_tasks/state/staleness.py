"""What is stale and why: the Makefile's honesty, per item.

An item runs when it is new, was unticked by hand, its instruction, template or
agent settings changed since its result, an item it depends on runs or ran again
since, it failed or was interrupted last time, or it was forgotten. All verdicts
are made in one pass in document order, before anything runs, so an item whose
upstream will run is known to be stale at once (as `make -n` knows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..plan import settings as settings_mod
from ..plan.plan import Item, Plan, digest
from .item_machine import AWAITING_REVIEW
from .item_status import FAILED, FORGOTTEN_NOW, INTERRUPTED, RUNNING_NOW, UNREADABLE, ItemStatus, read_statuses
from .state import BatchState

DONE_BY_HAND = "done by hand"
# A killed run left these behind; the next run repairs them (see recovery).
TICK_PENDING = "done (its tick is still to be written)"
KILLED_MID_RUN = "interrupted last time (its run was killed)"
UNREADABLE_REASON = "its records cannot be read"


@dataclass(slots=True)
class Verdict:
    """Whether an item runs, and why. doit takes it as the item's `uptodate` value."""

    runs: bool
    reason: str
    spent_usd: float = 0.0  # what its current result cost
    duration_s: float | None = None  # how long its last success took: what to expect next time
    problem: str = ""  # why its records cannot be read: nothing runs until that is mended

    def __bool__(self) -> bool:  # doit: true means up to date
        return not self.runs

    def __str__(self) -> str:
        return self.reason


def settings_digest(item_settings: Mapping[str, Any]) -> str:
    return digest(json.dumps(settings_mod.fingerprinted(item_settings), sort_keys=True))


def fingerprint(item: Item, settings_part: str, template_part: str) -> dict[str, str]:
    """What the item's result was made from, in parts, so that a change can be named.
    The template's and the settings' digests are made once per group by the caller."""
    return {"instruction": item.digest, "template": template_part, "agent settings": settings_part}


def stamp(record: dict[str, Any] | None, item: Item) -> str:
    """What an upstream item contributes to its dependents' `upstream` digest."""
    if record is not None:
        return str(record.get("run_id"))
    return "by hand" if item.done else "open"


def upstream_digest(stamps: Iterable[tuple[str, str]]) -> str:
    return digest(*(f"{key}={value}" for key, value in sorted(stamps)))


def assess(plan: Plan, state: BatchState, fingerprints: Mapping[str, dict[str, str]]) -> dict[str, Verdict]:
    """Every item's verdict, from its status (see item_status), in one pass in document order."""
    return assess_statuses(plan, read_statuses({item.key: state.item(item.group, item.module) for item in plan.items()}),
                           fingerprints)


def assess_statuses(plan: Plan, statuses: Mapping[str, ItemStatus], fingerprints: Mapping[str, dict[str, str]]) -> dict[str, Verdict]:
    """The verdicts, on plain data: what each item's records say, and what it is made of now."""
    verdicts: dict[str, Verdict] = {}
    stamps: dict[str, str] = {}
    # Items of one group share their upstream: what it says is worked out once per group.
    upstream_news: dict[int, tuple[list[str], str]] = {}
    for group in plan.groups:
        for item in group.items:
            status = statuses[item.key]
            record = status.result
            stamps[item.key] = stamp(record, item)
            if status.kind == UNREADABLE:
                verdicts[item.key] = Verdict(True, UNREADABLE_REASON, problem=status.problem)
                continue
            reason = _own_reason(item, status, fingerprints[item.key])
            if reason is None and record is not None:  # one ticked by hand stays done
                upstream = plan.upstream(item)
                if id(upstream) not in upstream_news:
                    running = [d.key for d in upstream if verdicts[d.key].runs]
                    upstream_news[id(upstream)] = (running, upstream_digest((d.key, stamps[d.key]) for d in upstream))
                reason = _upstream_reason(upstream, record, *upstream_news[id(upstream)])
            spent = (record or {}).get("cost_usd") or 0.0
            took = (record or {}).get("duration_s")
            if reason is None:
                verdicts[item.key] = Verdict(False, _done_reason(item, record), spent, took)
            else:
                verdicts[item.key] = Verdict(True, reason, spent, took)
    return verdicts


def _own_reason(item: Item, status: ItemStatus, current: dict[str, str]) -> str | None:
    record = status.result
    if record is None:
        if status.kind == FORGOTTEN_NOW:
            return "forgotten"
        if item.done:
            return None  # ticked by hand: the user says it is done
        if status.kind == RUNNING_NOW:
            return KILLED_MID_RUN
        if status.kind == INTERRUPTED:
            return "interrupted last time"
        if status.kind == FAILED and status.failure.get("awaiting_review"):
            return AWAITING_REVIEW
        if status.kind == FAILED:
            return f"failed last time ({status.failure.get('reason', 'see its log')})"
        return "new"
    previous = record.get("fingerprint") or {}
    changed = [part for part, digest in current.items() if previous.get(part) != digest]
    if changed:
        return f"changed: {', '.join(changed)}"
    if not item.done and not item.boxless and record.get("ticked"):
        return "unticked by hand"
    return None


def _upstream_reason(upstream: tuple[Item, ...], record, running: list[str], current_digest: str) -> str | None:
    if running:
        more = f" (and {len(running) - 1} more)" if len(running) > 1 else ""
        return f"upstream: {running[0]} will run{more}"
    if upstream and record.get("upstream") != current_digest:
        return f"upstream: group {upstream[0].group!r} ran again since"
    return None


def _done_reason(item: Item, record) -> str:
    if record is None:
        return DONE_BY_HAND
    if not item.done and not item.boxless:
        return TICK_PENDING
    return "done"
