"""Review before it lands: an item whose group says `review: human` stops after its check,
awaiting a decision, and merges only once that decision approves the very commit it waits with.

The lifecycle's review steps (see item_machine: ASK_REVIEW, then APPROVE) come here:

    ask      the item waits: its record says so (a failure record marked `awaiting_review`,
             with where to resume: the next run goes on from here, its agent not run again),
             its step says who waits and the command; the runner parks it without a slot
    approve  a decision for the item's current tip, signed with the user's key: approved, it
             merges; rejected, its attempt fails as a failed check does (counted against
             `check_retries`), the session told why; none yet, it goes on waiting

A decision is `review.json` in the item's state folder, written by `doit batch-review`
(see review_command). Its signature (HMAC-SHA256 with the user's key, see signing, under
this module's own label) binds the item, the decision and the commit: a decision file
written by anything without the key is ignored, and an approval of one commit never lands
another (work changed after its approval waits again). What it does not hold against: a
process that can read the key (an agent running as you, outside a sandbox) can sign, or
run `doit batch-review --approve` itself (which refuses from inside an attempt, by its
BATCH_ATTEMPT_ID: an agent that unsets it gets past).

Touches the item's review.json (removed once its decision is taken) and, through the
lifecycle, its records and events.jsonl.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..agents import retry
from ..signing import sign, signing_key
from ..state.item_machine import AWAITING_REVIEW
from ..state.records import failure_record, record_failure
from ..state.state import ItemState, open_to_read, write_json_atomic
from . import pull_request

if TYPE_CHECKING:
    from ..state.records import Attempt
    from .landing_item import ReviewedItem  # what these steps need of an item's run

DECISION = "review.json"
APPROVE, REJECT = "approve", "reject"


@dataclass(frozen=True)
class AwaitingReview:
    """What an item's step returns while it waits for its review: the runner parks it, holding
    no slot, until `decided` says a decision is there."""

    key: str


@dataclass(frozen=True)
class Decision:
    verdict: str  # APPROVE or REJECT
    commit: str
    why: str = ""


def review_command(key: str, bin_name: str = "doit") -> str:
    return f"{'batch-tasks review' if bin_name == 'batch-tasks' else 'doit batch-review'} {key}"


# --- decisions, signed ---------------------------------------------------------------------


def _signature(secret: bytes, body: str) -> str:
    return sign(secret, "batch-tasks review decision", body.encode())


def write_decision(folder: ItemState, key: str, decision: Decision) -> None:
    """Sign and keep a decision for the run (this one, or the next) to take."""
    secret = signing_key()
    if secret is None:
        raise OSError("no key to sign the decision with (~/.cache/batch-tasks/plan-cache.key cannot be made)")
    body = json.dumps({"item": key, "verdict": decision.verdict, "commit": decision.commit, "why": decision.why,
                       "at": time.time()}, sort_keys=True)
    write_json_atomic(os.path.join(folder.folder, DECISION), {"body": body, "signature": _signature(secret, body)})


def read_decision(folder: ItemState, key: str, commit: str) -> Decision | None:
    """The signed decision on `key` at `commit`; None if there is none, or none that holds."""
    secret = signing_key()
    try:
        with open_to_read(os.path.join(folder.folder, DECISION)) as stream:
            outer = json.loads(stream.read(1 << 20))
        body = outer["body"]
        if secret is None or not isinstance(body, str) \
                or not hmac.compare_digest(_signature(secret, body), str(outer["signature"])):
            return None
        said = json.loads(body)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if said.get("item") != key or said.get("commit") != commit or said.get("verdict") not in (APPROVE, REJECT):
        return None
    return Decision(said["verdict"], commit, str(said.get("why") or ""))


def forget_decision(folder: ItemState) -> None:
    try:
        os.remove(os.path.join(folder.folder, DECISION))
    except OSError:
        pass


# --- the lifecycle's review steps -------------------------------------------------------------


class NotYet(Exception):
    """No decision on the item's work yet: it waits."""


def work_tip(item_run: "ReviewedItem") -> str:
    """The commit that waits for review: the item branch's tip, what the merge queue merges."""
    return item_run.workspace.tip() or ""


def approve_step(item_run: "ReviewedItem", attempt: "Attempt") -> tuple[str, str] | None:
    """The APPROVE step: None when the work is approved; why it failed (a rejection, told to its
    session as a failed check is); NotYet when no decision holds for its tip."""
    key, commit = item_run.job.item.key, work_tip(item_run)
    if item_run.job.settings.get("land") == "pr":
        return pull_request.approve_step(item_run, attempt, NotYet)
    decision = read_decision(item_run.folder, key, commit)
    if decision is None and item_run.job.settings["review"]["by"] == "agent" \
            and not attempt.extra.get("review", {}).get("undecided"):  # once: then a person decides
        from .reviewer import review as ask_reviewer

        found, attempt.extra["review"] = ask_reviewer(item_run, attempt, commit)
        if found is not None:
            decision = Decision(APPROVE if found[0] == "approve" else REJECT, commit, found[1])
            write_decision(item_run.folder, key, decision)  # signed as a person's is: the merge proves it so
    if decision is None:
        raise NotYet()
    attempt.extra["review"] = {**attempt.extra.get("review", {}), "verdict": decision.verdict,
                               "commit": decision.commit, "why": decision.why}
    if decision.verdict == APPROVE:
        return None  # kept until it merged: a resumed merge proves its approval again (see `approved`)
    forget_decision(item_run.folder)
    return f"rejected in review: {decision.why or 'no reason given'}", retry.CHECK


def approved(item_run: "ReviewedItem") -> bool:
    """Whether the work about to merge holds a signed approval: asked again when an item resumes
    as approved, since the state its events.jsonl notes (which the agent can write) is no decision."""
    if item_run.job.settings.get("land") == "pr":
        return False  # merged on GitHub is recorded at once, never resumed from: GitHub is asked again
    decision = read_decision(item_run.folder, item_run.job.item.key, work_tip(item_run))
    return decision is not None and decision.verdict == APPROVE


def decided(item_run: "ReviewedItem") -> bool:
    """Whether a parked item has a decision to take (the runner hands it back then); asked from
    the review watch's thread (see review_watch), never the runner's loop."""
    if item_run.job.settings.get("land") == "pr":
        return pull_request.due(item_run, time.time()) and \
            pull_request.poll(item_run, item_run.current, work_tip(item_run))
    return read_decision(item_run.folder, item_run.job.item.key, work_tip(item_run)) is not None


def park(item_run: "ReviewedItem", attempt: "Attempt") -> AwaitingReview:
    """The item waits for its review: recorded so (its worktree kept as it is), and said."""
    key = item_run.job.item.key
    record = failure_record(key, AWAITING_REVIEW, item_run.attempts)
    record["awaiting_review"] = {
        "since": time.time(), "branch": item_run.workspace.branch, "commit": work_tip(item_run),
        "check": attempt.extra.get("check"), "claim": attempt.extra.get("claim", ""),
        "cost_usd": attempt.record()["cost_usd"], "reviewer": attempt.extra.get("review"),
    }
    record["resume"] = item_run.resume_record(item_run.machine.state)
    waits_for = (pull_request.waiting_text(attempt) if item_run.job.settings.get("land") == "pr"
                 else review_command(key))
    record["awaiting_review"].update(waits_for=waits_for, pull_request=attempt.extra.get("pull_request"))
    record_failure(item_run.folder, record)
    item_run.tell_step(attempt.number, AWAITING_REVIEW, waits_for)  # the step it waits at
    item_run.run.hub.publish("item_awaiting_review", key, record["awaiting_review"])
    return AwaitingReview(key)


def awaiting(failure: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an item's failure record says of the review it waits for, if it waits for one."""
    said = (failure or {}).get("awaiting_review")
    return said if isinstance(said, dict) else None
