"""An item's life as one state machine: its states, the events that move it, and the allowed
transitions as data. The live run (lifecycle) and the repair of a killed one (recovery) drive
the same machine, so that an item a run left half-way resumes at the step it reached, through
the same code, instead of a second road.

    machine = ItemMachine(route=Route(commits=True, checks=True, merges=True))
    machine.fire(START)                  # RUNNING
    machine.fire(AGENT_SUCCEEDED)        # AGENT_DONE: now machine.next_step() == COMMIT
    machine.fire(COMMIT) ...             # COMMITTED, then CHECKED, QUEUED, MERGED, RECORDED, TICKED
                                         # (reviewed: CHECKED, AWAITING_REVIEW, APPROVED, QUEUED, MERGED, …)
    machine.fire(STOPPED)                # from any state not over: INTERRUPTED

An event the table does not allow in the current state raises IllegalTransition: a step
taken out of order is a bug, never a silent tick. Each transition is told to `on_change`
(lifecycle writes it to the item's events.jsonl, see item_log), which is how the next run
knows where a killed one stopped. Plain data only: no files, no processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# States. PENDING: not started in this run; RUNNING: an attempt's agent works; WAITING: an
# attempt failed and another comes; AGENT_DONE … RECORDED: the landing steps, in order;
# TICKED, FAILED, INTERRUPTED: over. TICK_OWED: over, its result written but its checkbox not
# (its line changed while it ran): the next run writes it. AWAITING_REVIEW: checked, waiting for
# a person's (or a reviewer agent's) decision, holding no slot; APPROVED: that decision was yes.
# QUEUED: in the merge queue, its slot given back; the states the queue checks it in (with the
# items ahead, in a batch) are the queue's, never the item's: a run killed here discards them,
# and the item enters the queue again in the next run, its agent not run again.
PENDING, RUNNING, WAITING = "pending", "running", "waiting"
AGENT_DONE, COMMITTED, CHECKED, MERGED, RECORDED = "agent done", "committed", "checked", "merged", "recorded"
AWAITING_REVIEW, APPROVED, QUEUED = "awaiting review", "approved", "queued"
TICKED, TICK_OWED, FAILED, INTERRUPTED = "ticked", "tick owed", "failed", "interrupted"
STATES = (PENDING, RUNNING, WAITING, AGENT_DONE, COMMITTED, CHECKED, AWAITING_REVIEW, APPROVED, QUEUED, MERGED,
          RECORDED, TICKED, TICK_OWED, FAILED, INTERRUPTED)
OVER = frozenset({TICKED, TICK_OWED, FAILED, INTERRUPTED})
# The landing steps in the order an item reaches them; recovery resumes after the last reached.
LANDING = (AGENT_DONE, COMMITTED, CHECKED, AWAITING_REVIEW, APPROVED, QUEUED, MERGED, RECORDED)

# Events.
START, AGENT_SUCCEEDED, COMMIT, CHECK_PASSED, MERGE, RECORD, TICK, TICK_REFUSED = (
    "start", "agent succeeded", "commit", "check passed", "merge", "record", "tick", "tick refused")
ASK_REVIEW, APPROVE, ENQUEUE = "ask review", "approve", "enqueue"
RETRY, GIVE_UP, STOPPED = "retry", "give up", "stopped"
EVENTS = (START, AGENT_SUCCEEDED, COMMIT, CHECK_PASSED, ASK_REVIEW, APPROVE, ENQUEUE, MERGE, RECORD, TICK,
          TICK_REFUSED, RETRY, GIVE_UP, STOPPED)

# Steps: what the lifecycle does next, named for the event that ends it.
COMMITTED_STEP, CHECK_STEP, MERGE_STEP, RECORD_STEP, TICK_STEP = COMMIT, CHECK_PASSED, MERGE, RECORD, TICK
ASK_REVIEW_STEP, APPROVE_STEP = ASK_REVIEW, APPROVE

# A rejection in review is a retry (the session is told why), from AWAITING_REVIEW.
_IN_FLIGHT = (RUNNING, AGENT_DONE, COMMITTED, CHECKED, AWAITING_REVIEW, APPROVED, QUEUED, MERGED)
TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, START): RUNNING,
    (WAITING, START): RUNNING,
    (RUNNING, AGENT_SUCCEEDED): AGENT_DONE,
    (AGENT_DONE, COMMIT): COMMITTED,
    (AGENT_DONE, CHECK_PASSED): CHECKED,  # without isolation: nothing to commit
    (COMMITTED, CHECK_PASSED): CHECKED,
    (COMMITTED, MERGE): MERGED,  # isolated, no check
    (CHECKED, MERGE): MERGED,
    (COMMITTED, ASK_REVIEW): AWAITING_REVIEW,  # reviewed, no check
    (CHECKED, ASK_REVIEW): AWAITING_REVIEW,
    (AWAITING_REVIEW, APPROVE): APPROVED,
    (APPROVED, MERGE): MERGED,
    (APPROVED, RECORD): RECORDED,  # `land: pr`: merged on GitHub, not here
    # Its merge waits its turn without a slot (only when the merge is its route's next step: see
    # ItemMachine.allows); resumed after a kill, it enters the queue again.
    (COMMITTED, ENQUEUE): QUEUED,
    (CHECKED, ENQUEUE): QUEUED,
    (APPROVED, ENQUEUE): QUEUED,
    (QUEUED, ENQUEUE): QUEUED,
    (QUEUED, MERGE): MERGED,
    (AGENT_DONE, RECORD): RECORDED,  # neither isolated nor checked: nothing to land
    (CHECKED, RECORD): RECORDED,
    (MERGED, RECORD): RECORDED,
    (RECORDED, TICK): TICKED,
    (RECORDED, TICK_REFUSED): TICK_OWED,
    # An attempt can fail at its agent or at any landing step before its record.
    **{(state, RETRY): WAITING for state in _IN_FLIGHT},
    **{(state, GIVE_UP): FAILED for state in (*_IN_FLIGHT, PENDING, WAITING)},
    # A stop anywhere but over is one thing: interrupted. After its record the paid-for
    # success is safe; the tick is owed, not lost.
    **{(state, STOPPED): INTERRUPTED for state in (PENDING, WAITING, *_IN_FLIGHT) if state != AWAITING_REVIEW},
    (RECORDED, STOPPED): TICK_OWED,
    # A stop leaves a review that was asked for asked for: the decision is a person's, not the run's.
    (AWAITING_REVIEW, STOPPED): AWAITING_REVIEW,
}


class IllegalTransition(Exception):
    def __init__(self, state: str, event: str):
        super().__init__(f"{event!r} is not allowed in state {state!r}")
        self.state, self.event = state, event


@dataclass(frozen=True)
class Route:
    """Which landing steps an item takes: its work committed (isolated), checked, reviewed
    (isolated: what waits for review is a branch), merged (isolated)."""

    commits: bool = False
    checks: bool = False
    merges: bool = False
    reviews: bool = False

    @classmethod
    def of(cls, isolated: bool, checked: bool, reviewed: bool = False, pull_request: bool = False,
           own_check: bool = True) -> "Route":
        """`pull_request` (`land: pr`): the pull request's review and merge take the merge's place.
        Without `own_check`, work that goes straight to the merge queue is checked there alone (on
        the merged state); work that waits for a review or a pull request is checked first."""
        merges, reviews = isolated and not pull_request, (reviewed or pull_request) and isolated
        return cls(commits=isolated, checks=checked and (own_check or not merges or reviews), merges=merges,
                   reviews=reviews)

    @property
    def lands(self) -> bool:
        return self.commits or self.checks or self.merges

    def steps(self) -> tuple[str, ...]:
        """The steps from AGENT_DONE to the end, in order."""
        return tuple(step for step, taken in ((COMMITTED_STEP, self.commits), (CHECK_STEP, self.checks),
                                              (ASK_REVIEW_STEP, self.reviews), (APPROVE_STEP, self.reviews),
                                              (MERGE_STEP, self.merges), (RECORD_STEP, True), (TICK_STEP, True))
                     if taken)


# The state each step leads to, read from the table (a step leads to one state wherever it is taken).
LANDING_STEPS = (COMMITTED_STEP, CHECK_STEP, ASK_REVIEW_STEP, APPROVE_STEP, MERGE_STEP, RECORD_STEP, TICK_STEP)
_STATE_AFTER = {step: after for (_, step), after in TRANSITIONS.items() if step in LANDING_STEPS}


def next_step(state: str, route: Route) -> str | None:
    """The step an item in `state` takes next on `route`; None when it is not landing."""
    if state not in LANDING:
        return None
    reached = LANDING.index(state)
    for step in route.steps():
        after = _STATE_AFTER[step]
        if after == TICKED or LANDING.index(after) > reached:
            return step
    return None


def furthest(states, route: Route) -> str | None:
    """Of the landing states an attempt's log names, the furthest on its route (None: none)."""
    reached = [state for state in states if state in LANDING]
    return max(reached, key=LANDING.index) if reached else None


@dataclass
class ItemMachine:
    route: Route
    state: str = PENDING
    on_change: Callable[[str, str, str], None] | None = None  # (event, before, after)
    history: list[tuple[str, str]] = field(default_factory=list)  # (event, state reached)

    def allows(self, event: str) -> bool:
        if (self.state, event) not in TRANSITIONS:
            return False
        # The table says what any route may do; a landing step must also be this route's next,
        # and an item enters the merge queue only when its merge is.
        if event == ENQUEUE:
            return self.next_step() == MERGE_STEP
        return event not in _STATE_AFTER or event == self.next_step()

    def fire(self, event: str) -> str:
        if not self.allows(event):
            raise IllegalTransition(self.state, event)
        after = TRANSITIONS[(self.state, event)]
        before, self.state = self.state, after
        self.history.append((event, after))
        if self.on_change is not None:
            self.on_change(event, before, after)
        return after

    def next_step(self) -> str | None:
        return next_step(self.state, self.route)

    @property
    def over(self) -> bool:
        return self.state in OVER
