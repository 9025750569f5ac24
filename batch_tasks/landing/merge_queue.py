"""The merge queue: items' branches land on the integration branch in the order they pass their
own checks (first passed, first landed), and the integration branch only ever moves to a state
that passed the check, one merge commit per item.

May touch: the queue's worktrees for its checks (see merge_states), the runner's own worktree
(`.batch/<stem>/integration/`, reset to the tip after each landing) and the integration branch,
which moves only here, by a compare-and-swap `git update-ref` onto a checked state.

    queue = MergeQueue(isolation, check_parallel=2, batch_max=4, flaky_retries=1)  # one per run
    result = queue.merge(workspace, check, log, settings, on_step=, on_start=, on_queued=)
    if result.merged:                # a MergeResult (merge_result.py), with its evidence
        workspace.remove(); record["merge"] = result.record()
    elif result.check is not None:   # its merged state failed its check: back to its session
    else:                            # a conflict: retry from isolation.tip(), telling result.conflicts

`merge` puts the item in the queue (`on_queued` hears it: its slot is free for another agent) and
waits until its landing is decided. What is checked, together and on what, is queue_plan's
decision: each state is the tip with the items ahead merged in, then a batch of items (a chain of
merge commits made without a worktree), checked in a pool of `check_parallel` worktrees. A state
lands only once every state ahead of it has; a failing one is checked again (a flake is nobody's
fault), then bisected, and its culprit alone goes back to its agent; the others land without
their agents run again. A check still running on a state given up (one ahead of it failed, or
the tip moved) is stopped there and then, as a run's stop stops it: it could judge nothing. A state that is just the item's own checked work on the tip needs no
check. A run killed at any step leaves at most unreferenced commits and the queue's worktrees:
the items that had passed their checks land in the next run (see recovery).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import BatchError
from ..events import MERGING, WAITING_TO_MERGE
from ..isolation.workspace import AttemptWorkspace, trailer_lines
from ..isolation.worktree import Isolation, stale_lock
from ..processes import agent_sandbox
from ..processes.attempt_processes import AttemptProcesses
from ..processes.check import Check, CheckResult, NullLog
from ..processes.process import StoppedError
from ..repository.git import GitError, git, is_ancestor
from ..state import item_log
from .merge_result import CONFLICT, MERGED, MergeResult, numstat, overlap
from .merge_states import Chain, Checkouts, Conflict, merge_chain, require_merge_tree
from .queue_plan import Candidate, QueuePlan

MOVES_FOLLOWED = 3  # how many times the queue follows an integration tip that moved under it
TICK_SECONDS = 1.0  # how often a waiting item looks whether the run is stopping


@dataclass
class _Ticket:
    """An item in the queue, and the thread waiting for its landing."""

    workspace: AttemptWorkspace
    item_commit: str
    check: Check | None
    log: Any
    settings: Any
    tell: Callable[[str, str], None]
    on_start: Any
    checked: bool  # its own check judged its work
    done: threading.Event = field(default_factory=threading.Event)
    result: MergeResult | None = None
    error: BaseException | None = None
    together: list[list[str]] = field(default_factory=list)  # what it was checked with, each check
    bisected: int = 0  # how many times a failing state it was in was split

    def queue_record(self) -> dict[str, Any]:
        return {"checks": len(self.together), "checked_with": self.together, "bisected": self.bisected}

    def decide(self, result: MergeResult | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class MergeQueue:
    def __init__(self, isolation: Isolation, check_parallel: int = 1, batch_max: int = 1, flaky_retries: int = 1):
        require_merge_tree(isolation.top)
        self.isolation = isolation
        self._lock = threading.RLock()  # the plan, the tickets and the integration branch: one decision at a time
        self._plan = QueuePlan(batch_max=batch_max, parallel=check_parallel, flaky_retries=flaky_retries)
        self._tickets: dict[str, _Ticket] = {}
        self._chains: dict[int, Chain] = {}  # by state id
        self._state_of: dict[str, int] = {}  # an item → the state it was last in
        self._checked: dict[int, CheckResult] = {}  # a state's last check
        self._running: dict[int, AttemptProcesses] = {}  # a state's check, while it runs
        self._pool = ThreadPoolExecutor(max_workers=check_parallel, thread_name_prefix="merged-state check")
        self._checkouts = Checkouts(isolation)
        self._moves = 0  # how many times in a row the branch moved under the queue (a commit of the user's)

    def merge(self, workspace: AttemptWorkspace, check: Check | None = None, log=None, settings=None,
              on_step: Callable[[str, str], None] | None = None, on_start=None, on_queued=None,
              checked: bool = True) -> MergeResult:
        """Queue the item's branch and wait for its landing to be decided. `on_step(step, text)`
        hears WAITING_TO_MERGE (behind whom) and MERGING (checked with whom, on what). `checked`:
        its own check passed on its work (else only a merged state's check judges it)."""
        tell = on_step or (lambda step, text: None)
        item, here = workspace.tip(), self.isolation.top
        with self._lock:
            tip = self.isolation.tip()
            if is_ancestor(item, tip, here):
                landed = self.isolation.merged_commit(workspace.group, workspace.module, workspace.run_id)
                return MergeResult(MERGED, "already on the integration branch", base=workspace.base,
                                   item_commit=item, integration_before=tip, merge_commit=landed)
            ticket = _Ticket(workspace, item, check, log or NullLog(), settings or self.isolation.settings, tell,
                             on_start, checked)
            ahead = [*(key for state in self._plan.states for key in state.items), *self._plan.waiting]
            self._tickets[workspace.key] = ticket
            self._plan.add(workspace.key, _kind(check))
            if ahead:
                tell(WAITING_TO_MERGE, f"behind {', '.join(ahead)}")
        if on_queued is not None:
            on_queued()
        with self._lock:
            self._drive()
        while not ticket.done.wait(TICK_SECONDS):
            if self.isolation.supervisor.stopping.is_set():
                with self._lock:
                    self._give_up_all(StoppedError())
        if isinstance(ticket.error, (BatchError, StoppedError)):
            raise ticket.error
        if ticket.error is not None:  # a bug, met in the queue's thread: the runner records it, traceback and all
            raise RuntimeError(f"the merge queue met a bug: {ticket.error!r}") from ticket.error
        return ticket.result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._checkouts.close()

    # Deciding (with the lock held)

    def _drive(self) -> None:
        try:
            while True:
                decision = self._plan.decide()
                for index, items in enumerate(decision.land):
                    if not self._land(items):  # the tip moved: this and what follows are made again on it
                        self._plan.restart({key: _kind(self._tickets[key].check)
                                            for later in decision.land[index:] for key in later})
                        break
                for key in decision.culprits:
                    self._blame(key)
                for items in decision.bisected:
                    for key in items:
                        self._tickets[key].bisected += 1
                        self._tickets[key].tell(WAITING_TO_MERGE, f"bisected: {', '.join(items)} failed together")
                for state_id in decision.given_up:
                    self._stop_check(state_id)
                for candidate in decision.check:
                    self._start(candidate)
                if not (decision.land or decision.culprits or decision.check):
                    live = {state.id for state in self._plan.states}
                    for given_up in set(self._chains) - live:  # what was made for states given up
                        self._chains.pop(given_up)
                        self._checked.pop(given_up, None)
                    return
        except BatchError as error:
            found = stale_lock(error, self.isolation.branch) if isinstance(error, GitError) else None
            self._give_up_all(found or error)
        except Exception as error:  # noqa: BLE001 - a bug here must fail the waiting items, not hang them
            self._give_up_all(error)

    def _start(self, candidate: Candidate) -> None:
        """Make the state (a rerun checks the one made), or find it needs no check; else check it."""
        ids = [state.id for state in self._plan.states]
        if candidate.id not in ids:
            return  # given up since it was decided on
        if candidate.run == 1:
            index = ids.index(candidate.id)
            base = self._chains[ids[index - 1]].top if index else self.isolation.tip()
            made = merge_chain(self.isolation.top, base, [(key, self._tickets[key].item_commit, self._message(key))
                                                          for key in candidate.items])
            if isinstance(made, Conflict):
                for key in self._plan.conflicted(candidate.id, made.key):
                    ticket = self._tickets.pop(key)
                    ticket.decide(MergeResult(CONFLICT, f"merge conflict in {', '.join(made.files)}",
                                              conflicts=made.files, queue=ticket.queue_record(),
                                              **_evidence(ticket, base)))
                return
            self._chains[candidate.id] = made
            for key in candidate.items:
                self._state_of[key] = candidate.id
            if not self._needs_check(candidate, made):
                self._tickets[candidate.items[0]].tell(MERGING, self._into(candidate.items[0], candidate))
                self._plan.passed(candidate.id)
                return
        for key in candidate.items:
            self._tickets[key].tell(MERGING, self._into(key, candidate))
        self._pool.submit(self._check, candidate, self._chains[candidate.id])

    def _stop_check(self, state_id: int) -> None:
        """A state given up: its check judges nothing, and its cores go to the states that count.
        Stopped as a run's stop stops a check (and all it started), before anything else is decided."""
        processes = self._running.pop(state_id, None)
        if processes is not None:
            processes.stop()

    def _started(self, state_id: int, on_start):
        """What hears a state's check start: noted in its items' logs (for the run after a kill),
        and kept to be stopped if the state is given up; stopped at once if it was meanwhile."""
        def started(processes: AttemptProcesses) -> None:
            if on_start is not None:
                on_start(processes)
            with self._lock:
                live = self._live(state_id)
                if live:
                    self._running[state_id] = processes
            if not live:
                processes.stop()
        return started

    def _live(self, state_id: int) -> bool:
        return any(state.id == state_id for state in self._plan.states)

    def _into(self, key: str, candidate: Candidate) -> str:
        """What the item's merge is checked with, and on what: for the panel and batch-status."""
        others = [other for other in candidate.items if other != key]
        return "".join((f"into {self.isolation.branch}", f", checked with {', '.join(others)}" if others else "",
                        f", on {', '.join(candidate.ahead)}" if candidate.ahead else "",
                        f" (check run {candidate.run})" if candidate.run > 1 else ""))

    def _needs_check(self, candidate: Candidate, chain: Chain) -> bool:
        tickets = [self._tickets[key] for key in candidate.items]
        if all(ticket.check is None for ticket in tickets):
            return False
        # The item's own work on the tip, unchanged, judged by its own check: that very tree passed.
        return bool(candidate.ahead or len(tickets) > 1 or not tickets[0].checked
                    or not is_ancestor(chain.base, tickets[0].item_commit, self.isolation.top))

    def _land(self, items: tuple[str, ...]) -> bool:
        """Move the branch to the state's top (only from the tip it was made on), and tell each item;
        False if the tip moved under the queue (a commit of the user's)."""
        state = self._state_of[items[0]]
        chain, isolation = self._chains.pop(state), self.isolation
        moved = git("update-ref", "-m", f"batch-tasks: merge {', '.join(items)}", isolation.ref, chain.top,
                    chain.base, cwd=isolation.top, allowed=(0, 1, 128))
        if moved.status != 0:
            if ".lock" in moved.err:
                raise GitError(("update-ref", isolation.ref), isolation.top, moved.status, moved.err)
            self._moves += 1
            if self._moves > MOVES_FOLLOWED:
                raise BatchError(f"{isolation.branch} kept moving while the queue landed ({MOVES_FOLLOWED} times): "
                                 "something other than batch-tasks commits onto it")
            return False
        self._moves = 0
        isolation.follow_tip()  # the runner's checkout of the branch
        for link in chain.links:
            ticket = self._tickets.pop(link.key)
            ticket.decide(MergeResult(
                MERGED, "merged", base=ticket.workspace.base, item_commit=link.item_commit,
                integration_before=link.before, merge_commit=link.merge_commit,
                files=numstat(link.before, link.merge_commit, isolation.top), check=self._checked.pop(state, None)
                if link is chain.links[-1] else self._checked.get(state), queue=ticket.queue_record()))
        return True

    def _blame(self, key: str) -> None:
        """The culprit: the state of its item alone on what was ahead failed every check."""
        ticket, state = self._tickets.pop(key), self._state_of[key]
        chain, checked = self._chains.pop(state), self._checked.pop(state)
        both = overlap(ticket.workspace.base, chain.base, ticket.item_commit, self.isolation.top)
        ticket.decide(MergeResult(CONFLICT, f"{checked.reason} on the merged state", conflicts=both, check=checked,
                                  queue=ticket.queue_record(), **_evidence(ticket, chain.base)))

    def _give_up_all(self, error: BaseException) -> None:
        """Every item waiting hears `error` (the run stops, or git refused): nothing is half-applied."""
        for ticket in self._tickets.values():
            ticket.decide(error=error)
        self._tickets.clear()
        self._plan.clear()

    def _message(self, key: str) -> str:
        ticket, isolation = self._tickets[key], self.isolation
        workspace = ticket.workspace
        return (f"Merge {key} into {isolation.branch}\n\n"
                f"batch-tasks merged {workspace.branch} ({ticket.item_commit[:12]}, from {workspace.base[:12]}).\n\n"
                + trailer_lines(isolation, key, workspace.run_id))

    # Checking (in the pool)

    def _check(self, candidate: Candidate, chain: Chain) -> None:
        with self._lock:
            tickets = [self._tickets[key] for key in candidate.items if key in self._tickets]
            if len(tickets) != len(candidate.items) or not self._live(candidate.id):
                return  # given up meanwhile
        last = tickets[-1]
        log = _Logs([ticket.log for ticket in tickets])
        try:
            with self._checkouts.lend(chain.top, last.settings, log, last.on_start) as (worktree, folder):
                log.write(item_log.note_header(
                    f"check on the merged state of {', '.join(candidate.items)}"
                    + (f" (on {', '.join(candidate.ahead)})" if candidate.ahead else "")
                    + (f", run {candidate.run}" if candidate.run > 1 else "")))
                checked = self._run_checks(candidate, _distinct_checks(tickets, worktree), worktree, folder, log)
        except StoppedError as error:
            with self._lock:
                self._give_up_all(error)
            return
        except Exception as error:  # noqa: BLE001 - every waiting item hears it: git or the system refused, or a bug
            with self._lock:
                if self._live(candidate.id):  # else given up: it says nothing
                    self._give_up_all(BatchError(f"merge queue: {error}") if isinstance(error, OSError) else error)
            return
        with self._lock:
            self._running.pop(candidate.id, None)
            if not self._live(candidate.id):
                return  # given up meanwhile (its check stopped, or ended first): it says nothing
            for ticket in tickets:
                ticket.together.append(list(candidate.items))
            if not checked.passed and self.isolation.supervisor.stopping.is_set():
                self._give_up_all(StoppedError())  # stopped with the run: the state was not judged
                return
            self._checked[candidate.id] = checked
            (self._plan.passed if checked.passed else self._plan.failed)(candidate.id)
            self._drive()
            if checked.passed and candidate.ahead and self._live(candidate.id):
                for key in candidate.items:  # checked: it lands once what is ahead of it has
                    self._tickets[key].tell(WAITING_TO_MERGE, f"checked; behind {', '.join(candidate.ahead)}")


    def _run_checks(self, candidate: Candidate, tickets: list[_Ticket], worktree: Path, folder: Path,
                    log) -> CheckResult:
        """Each check on the one merged state, in turn (one per item where the command names it:
        `{module}`, `{group}`), until one fails or the state is given up."""
        for ticket in tickets:
            if len(tickets) > 1:
                log.write(item_log.note_header(f"its check for {ticket.workspace.key}"))
            checked = ticket.check.run(worktree=worktree, cwd=folder, supervisor=self.isolation.supervisor, log=log,
                                       on_start=self._started(candidate.id, ticket.on_start),
                                       sandbox=agent_sandbox.for_merged_state(worktree, self.isolation.top,
                                                                              ticket.settings))
            with self._lock:
                if not checked.passed or not self._live(candidate.id):
                    break
        return checked


def _distinct_checks(tickets: list[_Ticket], worktree: Path) -> list[_Ticket]:
    """The items whose check commands differ on a state (the last of those that are the same)."""
    last_of = {tuple(ticket.check.command(worktree)): ticket for ticket in tickets}
    return list(last_of.values())


def _evidence(ticket: _Ticket, before: str) -> dict[str, Any]:
    return {"base": ticket.workspace.base, "item_commit": ticket.item_commit, "integration_before": before}


def _kind(check: Check | None):
    """Items whose checks are the same command, but for the item it names, may be checked together:
    each distinct command once, on the one merged state."""
    return None if check is None else (check.argv, check.timeout)


class _Logs:
    """A state's check writes to the log of each item checked in it."""

    def __init__(self, logs):
        self.logs = logs

    def write(self, data: bytes) -> None:
        for log in self.logs:
            with contextlib.suppress(ValueError):  # closed: its item's landing was decided meanwhile
                log.write(data)

    def flush(self) -> None:
        for log in self.logs:
            with contextlib.suppress(ValueError):
                log.flush()
