"""The runner of `run-batch`: doit's Runner, with the batch's dispatcher deciding who starts.

doit's task dispatcher still decides what is ready: it hands out every task whose
dependencies are met, and `select_task` (doit's own) checks whether it is up to date.
Ready items go to the Dispatcher, each with the files it will likely touch (touches,
asked as it becomes ready); each one it starts gets a thread of its own for one
attempt, and comes back through one queue. No thread ever waits for a turn: an item
between attempts (a backoff, a usage-limit pause) holds no slot and no thread. A slot is for
an agent: an item whose attempt waits on something else (its turn in the merge queue) is
queued: its slot is given back while its thread waits, and the item is handed back when
that thread ends, as any attempt's is. An item parked awaiting its review (see review.py)
holds neither slot nor thread, and is handed back to the dispatcher when its decision comes:
whether it came is asked off this loop (review_watch: GitHub may be slow to say), which
hears only "decided".
The run ends once no item is queued, and waits for its reviews unless told not to
(`--no-wait-review`).

Touches nothing itself: items touch their own state (lifecycle), doit its records.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Callable

from doit.exceptions import TaskFailed

from ..agents import WAIT
from ..doit_bridge import EXHAUSTED, HOLD, ReadyTasks, Runner
from ..landing.review import AwaitingReview
from ..plan.plan import Item
from ..state.item_machine import AWAITING_REVIEW
from .dispatcher import Candidate, Dispatcher
from .lifecycle import ItemRun
from .review_watch import ReviewWatch
from .run import Run
from .step_result import Again, Finished

TICK_SECONDS = 1.0  # how often the view is told the time, and a stop is looked for
FIRST_RESPONSE = object()  # what an attempt's thread says when its agent's first answer came
PARKED = object()  # what it says when it waits without its slot (see item_parked)
DECIDED = object()  # what the review watch says of a parked item whose review is decided
RESPONSE_KINDS = frozenset({"assistant", "tool_use", "usage", "result"})  # an answer of the model's


def is_item(task) -> bool:
    return "job" in (task.meta or {})


class BatchRunner(Runner):
    def __init__(self, dep_manager, reporter, run: Run, dispatcher: Dispatcher, candidates: dict[str, Candidate],
                 continue_: bool = False, forced: frozenset[str] = frozenset(),
                 predict: Callable[[Item], frozenset[str]] | None = None):
        super().__init__(dep_manager, reporter, continue_=continue_, forced=forced)
        self.run, self.dispatcher, self.candidates = run, dispatcher, candidates
        self.predict = predict  # the files an item will likely touch (touches.Predictor), or None
        self._results: queue.Queue[tuple[Candidate, Finished | Again | object]] = queue.Queue()
        self._awaited: set[str] = set()  # items whose first response the dispatcher waits for
        self._queued: set[str] = set()  # items whose attempt waits in the merge queue without a slot
        run.hub.subscribe(self)
        self._nodes: dict[str, object] = {}  # items handed out by doit and not finished
        self._runs: dict[str, ItemRun] = {}
        self._completed: deque = deque()  # processed nodes doit is still to hear of
        self._exhausted = False
        self._withdrawn = False
        self.not_started = 0  # items the dispatcher held back for good (a halt, the budget)
        self._parked: dict[str, Candidate] = {}  # awaiting their review: no slot, no thread
        self.left_awaiting_review = 0  # items the run ended without, still awaiting review
        self._watch = ReviewWatch(lambda key: self._results.put((self.candidates[key], DECIDED)))
        self._threads = _Threads()

    def run_tasks(self, task_dispatcher):
        try:
            self._run_tasks(ReadyTasks(task_dispatcher))
        finally:
            self._watch.close()

    def _run_tasks(self, ready: ReadyTasks) -> None:
        while True:
            self._pull(ready)
            if self.run.supervisor.stopping.is_set():
                self._withdraw("the run was stopped")
            self._start_what_may(time.time())
            if self.dispatcher.idle and not self._completed and not self._queued:
                if not self._parked:
                    return  # nothing runs, nothing can: done, halted, or stopped
                if not self.run.waits_for_reviews or self._withdrawn:
                    self._leave_parked()  # nothing left but reviews, and the run does not wait for them
                    continue
            self._collect(self._wait_seconds())
            self.run.supervisor.keep_watch()
            tick = getattr(self.reporter, "tick", None)
            if tick is not None:
                tick(time.time())

    def _pull(self, ready: ReadyTasks) -> None:
        """Hear from doit every task that is ready now; tell it of every one that is done."""
        if self._exhausted:
            self._completed.clear()  # doit has nothing more to hand out: it need not hear
        while not self._exhausted:
            done = self._completed.popleft() if self._completed else None
            node = ready.next(done)
            if node is EXHAUSTED:
                self._exhausted = True
                return
            if node is HOLD:
                if not self._completed:
                    return
                continue
            if not self.select_task(node, ready.tasks):
                self._completed.append(node)  # up to date, ignored, or failed before it began
            elif is_item(node.task):
                self._nodes[node.task.name] = node
                self.dispatcher.offer(self._ready(node))
            else:  # a group: nothing to run, it only gathers its items
                self.process_task_result(node, self.execute_task(node.task))
                self._completed.append(node)

    def _ready(self, node) -> Candidate:
        """The item as the dispatcher sees it, now that it is ready: the files it will likely
        touch are predicted now, when its module's earlier items of this run have landed."""
        candidate = self.candidates[node.task.name]
        if self.predict is not None:
            candidate = replace(candidate, touches=self.predict(node.task.meta["job"].item))
            self.candidates[node.task.name] = candidate
        return candidate

    def _start_what_may(self, now: float) -> None:
        starts, refused = self.dispatcher.take(now)
        for key, why in refused:
            if key in self._runs:  # a retry the budget cannot hold ends its item
                self._settle(self.candidates[key], self._runs[key].fail(f"no retry: {why}"))
                continue
            self.not_started += 1
            self._nodes.pop(key, None)
            self.run.hub.publish("item_not_started", key, why)
        for candidate in starts:
            node = self._nodes[candidate.key]
            item_run = self._runs.get(candidate.key)
            if item_run is None:
                job = node.task.meta["job"]
                if candidate.key in self.run.budget.fallbacks:  # near the budget's end (see dispatcher)
                    job = replace(job, settings={**job.settings, "model": self.run.budget.fallbacks[candidate.key][0]})
                item_run = self._runs[candidate.key] = ItemRun(job, self.run)
                self.reporter.execute_task(node.task)
            if self.dispatcher.awaits_first_response(candidate.key):
                self._awaited.add(candidate.key)
            self._threads.submit(self._work, candidate, item_run)

    def item_event(self, key: str, event) -> None:
        """From an attempt's thread (the hub): its agent's first answer lets the rest of its
        group start, reading the prompt cache it wrote."""
        if event.kind in RESPONSE_KINDS and key in self._awaited:
            self._awaited.discard(key)
            self._results.put((self.candidates[key], FIRST_RESPONSE))

    def item_parked(self, key: str, why: str) -> None:
        """From an attempt's thread (the hub): it waits without needing its slot (see lifecycle's park)."""
        self._results.put((self.candidates[key], PARKED))

    def _work(self, candidate: Candidate, item_run: ItemRun) -> None:
        try:
            step = item_run.step()
        except Exception as error:  # noqa: BLE001 - a bug in one item must not hang the run
            self.run.report_error(f"{candidate.key}: internal error: {error!r} (its traceback is in its log)")
            step = item_run.internal_error(error)
        self._results.put((candidate, step))

    def _collect(self, timeout: float) -> None:
        try:
            candidate, step = self._results.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if step is FIRST_RESPONSE:
                self.dispatcher.first_response(candidate, time.time())
            elif step is DECIDED:
                parked = self._parked.pop(candidate.key, None)
                if parked is not None:  # else the run ended without it meanwhile
                    self.dispatcher.hand_back(parked)  # it gets in line for a slot again, to take its decision
            elif step is PARKED:
                self._queued.add(candidate.key)
                # Its files stay its own until it lands: an item started on them now would start from
                # a tip without its work, and conflict with it (see touches).
                self._release(candidate, files_held=True)
                self.run.budget.hold(candidate.key, self._unspent_cost(candidate.key))  # spent at its end
            else:
                if candidate.key in self._queued:
                    self._queued.discard(candidate.key)  # its slot was given back when it was queued
                    self.dispatcher.let_go_of_files(candidate)
                    self.run.budget.release(candidate.key)  # its cost is spent now
                else:
                    self._release(candidate, files_held=isinstance(step, AwaitingReview))
                self._settle(candidate, step)
            try:
                candidate, step = self._results.get_nowait()
            except queue.Empty:
                return

    def _release(self, candidate: Candidate, files_held: bool = False) -> None:
        self._awaited.discard(candidate.key)
        self.dispatcher.release(candidate, self._last_cost(candidate.key), files_held=files_held)

    def _last_cost(self, key: str) -> float | None:
        attempts = self._runs[key].attempts if key in self._runs else ()
        outcome = attempts[-1].outcome if attempts else None
        return outcome.data.get("cost_usd") if outcome is not None else None

    def _unspent_cost(self, key: str) -> float | None:
        """What the item's last attempt cost, unless the budget counted it already (an item
        handed back from its review was counted when it began to wait)."""
        item_run = self._runs[key]
        counted = item_run.current is not None and item_run.current.number in item_run.told_ended
        return None if counted else self._last_cost(key)

    def _leave_parked(self) -> None:
        """The run ends without the reviews it waits for: their items stay awaiting review
        (recorded so: the next run takes their decisions), neither failed nor interrupted."""
        for key, candidate in list(self._parked.items()):
            del self._parked[key]
            self._watch.forget(key)
            self.left_awaiting_review += 1
            self._settle(candidate, Finished(AWAITING_REVIEW, interrupted=True))

    def _settle(self, candidate: Candidate, step: Finished | Again | AwaitingReview) -> None:
        if isinstance(step, AwaitingReview):
            self._parked[candidate.key] = candidate
            self._watch.watch(candidate.key, self._runs[candidate.key])
            return
        if isinstance(step, Again):
            decision = step.decision
            self.dispatcher.again(candidate, decision.at, usage_limit=decision.kind == WAIT)
            if decision.kind == WAIT:
                self.run.hub.publish("agent_paused", candidate.agent, decision.at)
            return
        node = self._nodes.pop(candidate.key)
        del self._runs[candidate.key]
        self.process_task_result(node, None if step.failure is None else TaskFailed(step.failure))
        self._completed.append(node)

    def task_failed(self, node, unmet_dependency: bool) -> None:
        if unmet_dependency:
            if is_item(node.task):
                stopped = self.run.supervisor.stopping.is_set()  # what it waited for was interrupted
                self.run.hub.publish("item_not_started", node.task.name,
                                     "the run was stopped" if stopped else "an item it depends on failed")
        elif self.stops:
            stopped = self.run.supervisor.stopping.is_set()
            self.dispatcher.halt("the run was stopped" if stopped else f"{node.task.name} failed")

    def _withdraw(self, why: str) -> None:
        """The run stops: nothing new starts, and items between attempts end as interrupted."""
        if self._withdrawn:
            return
        self._withdrawn = True
        self.dispatcher.halt(why)
        for candidate in self.dispatcher.withdraw():
            self._settle(candidate, self._runs[candidate.key].interrupted())
        self._leave_parked()

    def _wait_seconds(self) -> float:
        now = time.time()
        change = self.dispatcher.next_change(now)
        return max(0.0, min(TICK_SECONDS, change - now)) if change is not None else TICK_SECONDS


class _Threads:
    """Threads for the attempts, kept for the next one once theirs ends: starting a thread
    per attempt costs more than the rest of what the runner does for it. Daemons, as the
    attempts' own threads were: a run that ends does not wait for one still stopping."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, function, *args) -> None:
        with self._lock:
            starts = self._idle == 0
            self._idle -= 0 if starts else 1
        self._jobs.put((function, args))
        if starts:
            threading.Thread(target=self._serve, name="attempt", daemon=True).start()

    def _serve(self) -> None:
        while True:
            function, args = self._jobs.get()
            function(*args)
            with self._lock:
                self._idle += 1
