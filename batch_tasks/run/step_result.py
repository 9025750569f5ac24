"""What one step of an item's run tells the runner: the item is over, or to come back for
another attempt (review.AwaitingReview is the third: parked until its review is decided).
Plain data; touches nothing."""

from __future__ import annotations

from dataclasses import dataclass

from ..agents import retry


@dataclass(frozen=True)
class Finished:
    """The item is over: `failure` is None on success, else why it failed."""

    failure: str | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class Again:
    """Come back for another attempt: at `decision.at`, after a pause of its agent if WAIT."""

    decision: retry.Decision
