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

from . import settings as settings_mod
from .plan import Item, Plan, digest
from .state import FAILURE, FORGOTTEN, RUNNING, BatchState, read_json

DONE_BY_HAND = "done by hand"
# A killed run left these behind; the next run repairs them (see recovery).
TICK_PENDING = "done (its tick is still to be written)"
KILLED_MID_RUN = "interrupted last time (its run was killed)"


@dataclass(slots=True)
class Verdict:
    """Whether an item runs, and why. doit takes it as the item's `uptodate` value."""

    runs: bool
    reason: str
    spent_usd: float = 0.0  # what its current result cost
    duration_s: float | None = None  # how long its last success took: what to expect next time

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
    """Every item's verdict; reads each item's state folder once."""
    verdicts: dict[str, Verdict] = {}
    stamps: dict[str, str] = {}
    # Items of one group share their upstream: what it says is worked out once per group.
    upstream_news: dict[int, tuple[list[str], str]] = {}
    for group in plan.groups:
        for item in group.items:
            folder = state.item(item.group, item.module)
            record = read_json(folder.result)
            # A result is set aside when an attempt starts, so one that is there is the
            # latest attempt's: only an item without one needs its folder looked at.
            files = folder.files() if record is None else frozenset()
            stamps[item.key] = stamp(record, item)
            reason = _own_reason(item, record, files, folder, fingerprints[item.key])
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


def _own_reason(item, record, files, folder, current: dict[str, str]) -> str | None:
    if record is None:
        if FORGOTTEN in files:
            return "forgotten"
        if item.done:
            return None  # ticked by hand: the user says it is done
        if FAILURE in files:
            return _failure_reason(folder)
        if RUNNING in files:
            return KILLED_MID_RUN
        return "new"
    previous = record.get("fingerprint") or {}
    changed = [part for part, digest in current.items() if previous.get(part) != digest]
    if changed:
        return f"changed: {', '.join(changed)}"
    if not item.done and record.get("ticked"):
        return "unticked by hand"
    return None


def _failure_reason(folder) -> str:
    failure = read_json(folder.failure) or {}
    if failure.get("interrupted"):
        return "interrupted last time"
    return f"failed last time ({failure.get('reason', 'see its log')})"


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
    if not item.done:
        return TICK_PENDING
    return "done"
