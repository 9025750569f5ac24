"""The dispatcher: which ready item starts next. The one place where that is decided.

doit says what is ready (its dependencies met, not up to date); the runner offers
each ready item here, and asks, whenever something changed, which to start now.
An item starts when every rule allows it: `-n` in all, its group's `parallel`, its
agent's `max_concurrent`, no usage-limit pause of its agent, its retry's backoff
over, the run not halted (this only holds back items that have not started yet: a
started item's retries go on), and the budget able to hold what the attempt may cost
beside what is spent and reserved (see budget). An item the budget cannot hold waits
while others run (their reservations may come back); once nothing is reserved and it
still does not fit, it never starts (a retry ends its item); an item handed back once its
review is decided (see hand_back) costs nothing more, reserves nothing, and is never
refused. Among the items that may start, the one with the longest remaining chain goes
first (the critical path, from each item's last recorded duration), ties in document order.

The prompt cache: items of a group share the first part of their prompts (the agent
CLI's own instructions, then the plan's and group's context). Where the provider caches
a prompt's prefix, the first of a group to start writes it and pays the write (1.25 x
the input price at Anthropic); those started beside it, before it was written, pay the
write too. So the first item of such a group starts alone; the others start once its
first response arrived (the cache is written then), reading the cache at 0.1 x. Each
start within the cache's lifetime keeps the group warm; past it, one starts alone again.

Files: two items predicted to touch one file (see touches) do not run at the same time.
An item whose files another running item holds is passed over for the next best that
may start; if none may, it waits, and its slot stays free until the holder ends, even
when nothing else would use it. That is worth an idle slot: the one that would start
second starts from a tip without the holder's work, so if git cannot merge the two
(agents editing one file mostly add at the same places: its imports, its end) its
merge conflicts after the holder landed, and its agent runs again from there, paid
for twice and done no sooner than had it waited; only a clean merge would have gained,
and at most the holder's remaining time. A file is held from the item's start to its
release (its attempt's end, its landing included). `keep_apart: false` predicts nothing.

Near the budget's end: an item with a `fallback_model` starts on it once what is left of
the budget is below the forecast of the items not started yet (the budget says which).

Plain data in, plain data out: no threads, no clocks of its own (`now` is passed in).
"""

from __future__ import annotations

import heapq
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from ..plan.plan import Plan
from ..state.budget import Budget, dollars
from ..state.touches import Claims

if TYPE_CHECKING:
    from .forecast import Estimate

CACHE_SECONDS = 300.0  # a prompt cache's lifetime (Anthropic's default; OpenAI's and Google's are as long or longer)
PROMPT_CACHING_AGENTS = frozenset({"claude", "codex", "gemini"})  # their providers cache a prompt's prefix


@dataclass(frozen=True, order=True)
class Candidate:
    """What the dispatcher knows of an item; ordered best first."""

    rank: tuple[float, int]  # (minus its remaining chain, its place in task.md)
    key: str = field(compare=False)
    group: str = field(compare=False)
    group_limit: int | None = field(compare=False)
    agent: str = field(compare=False)
    reserve_usd: float | None = field(compare=False, default=None)  # what an attempt may cost; None: unknown
    warms_cache: bool = field(compare=False, default=False)  # its group's first starts alone (see above)
    forecast_usd: float | None = field(compare=False, default=None)  # what it should cost at its model
    fallback_model: str | None = field(compare=False, default=None)  # its cheaper model near the budget's end
    touches: frozenset[str] = field(compare=False, default=frozenset())  # the files it will likely touch


class Dispatcher:
    def __init__(
        self,
        capacity: int,
        agent_limits: Mapping[str, int] | None = None,
        budget: Budget | None = None,
    ):
        self.capacity = capacity
        self.agent_limits = dict(agent_limits or {})
        self.budget = budget or Budget(None)
        self._ready: dict[str, list[Candidate]] = {}  # by group: a heap, best first
        self._delayed: list[tuple[float, Candidate]] = []  # retries in backoff, by when
        self._started: set[str] = set()  # items that have had an attempt
        self._pauses: dict[str, float] = {}  # agent → epoch time its limit resets
        self._halted: str | None = None  # why no new item starts
        self._warming: dict[str, str] = {}  # group → its item whose first response is awaited
        self._warm_until: dict[str, float] = {}  # group → when its prompt cache expires
        self._unstarted_forecast: dict[str, float] = {}  # items offered, not started → their forecast
        self._group_costs: dict[str, list[float]] = {}  # group → what its attempts of this run cost
        self._claims = Claims()  # the files of the items running
        self._paid: set[str] = set()  # items handed back whose next start costs nothing (see hand_back)
        self.running = 0
        self._by_group: Counter[str] = Counter()
        self._by_agent: Counter[str] = Counter()

    # What happens.
    def offer(self, candidate: Candidate, not_before: float = 0.0) -> None:
        """The item is ready (or, after a failed attempt, ready again from `not_before`)."""
        if candidate.key not in self._started and candidate.forecast_usd is not None:
            self._unstarted_forecast[candidate.key] = candidate.forecast_usd
        if not_before:
            heapq.heappush(self._delayed, (not_before, candidate))
        else:
            heapq.heappush(self._ready.setdefault(candidate.group, []), candidate)

    def hand_back(self, candidate: Candidate) -> None:
        """The item's review was decided while it waited without a slot: it is ready again, to take
        that decision (land its work, or fail the attempt it sent back). Its agent's work is paid for
        and that costs nothing more, so it reserves nothing and no budget, spent or not, refuses it."""
        self._paid.add(candidate.key)
        self.offer(candidate)

    def again(self, candidate: Candidate, at: float, usage_limit: bool) -> None:
        """The item's attempt failed and another comes at `at`; after a usage limit of its agent,
        that agent's items all wait until then (its limit is the whole batch's)."""
        if usage_limit:
            self.pause(candidate.agent, at)
        self.offer(candidate, not_before=at)

    def release(self, candidate: Candidate, cost_usd: float | None = None, files_held: bool = False) -> None:
        """An attempt of the item ended, having cost `cost_usd` if known: its slot is free. With
        `files_held` (it waits for its landing, in the merge queue or for its review) its files
        are still its own until `let_go_of_files`."""
        self.running -= 1
        if cost_usd is not None:
            self._group_costs.setdefault(candidate.group, []).append(cost_usd)
        self.budget.release(candidate.key)
        if not files_held:
            self._claims.drop(candidate.key, candidate.touches)
        if self._warming.get(candidate.group) == candidate.key:
            del self._warming[candidate.group]  # it ended before a response: the next starts alone
        self._by_group[candidate.group] -= 1
        self._by_agent[candidate.agent] -= 1

    def let_go_of_files(self, candidate: Candidate) -> None:
        """The item that held its files while it waited for its landing has landed, or failed."""
        self._claims.drop(candidate.key, candidate.touches)

    def first_response(self, candidate: Candidate, now: float) -> None:
        """The item's first response arrived: its group's prompt cache is written."""
        if self._warming.get(candidate.group) == candidate.key:
            del self._warming[candidate.group]
            self._warm_until[candidate.group] = now + CACHE_SECONDS

    def awaits_first_response(self, key: str) -> bool:
        return key in self._warming.values()

    def pause(self, agent: str, until: float) -> None:
        self._pauses[agent] = max(until, self._pauses.get(agent, 0.0))

    def halt(self, why: str) -> None:
        """No new item starts from now on (the next `take` says which will not, and why)."""
        self._halted = self._halted or why

    def withdraw(self) -> list[Candidate]:
        """Take back the started items waiting for another attempt (the run stops)."""
        waiting = [c for _, c in self._delayed] + [c for heap in self._ready.values() for c in heap]
        self._delayed = []
        for group, heap in self._ready.items():
            self._ready[group] = [c for c in heap if c.key not in self._started]
        return [c for c in waiting if c.key in self._started]

    @property
    def idle(self) -> bool:
        """Nothing runs and nothing waits to run."""
        return not self.running and not self._delayed and not any(self._ready.values())

    # Deciding.
    def take(self, now: float) -> tuple[list[Candidate], list[tuple[str, str]]]:
        """The items to start now, best first; and those that never will, with why (the run
        is halted, or the budget cannot hold them: a started one among these is a retry)."""
        while self._delayed and self._delayed[0][0] <= now:
            _, candidate = heapq.heappop(self._delayed)
            heapq.heappush(self._ready.setdefault(candidate.group, []), candidate)
        starts: list[Candidate] = []
        refused: list[tuple[str, str]] = []
        if self._halted:
            refused += self._drop_unstarted(self._halted)
        while self.running < self.capacity:
            best = min((found for heap in self._ready.values() if heap and self._allows(heap[0], now)
                        if (found := self._first_apart(heap)) is not None), default=None)
            if best is None:
                break
            reservation = 0.0 if best.key in self._paid else self._reservation(best)
            if not self.budget.reserve(best.key, reservation):
                refusal = self.budget.refusal(reservation)
                if refusal is None:
                    break  # it fits once running attempts give their reservations back
                self._remove(best)
                self._unstarted_forecast.pop(best.key, None)
                refused.append((best.key, refusal))
                continue
            self._remove(best)
            self._paid.discard(best.key)
            self._claims.hold(best.key, best.touches)
            if best.key not in self._started and best.fallback_model:
                self._choose_model(best)
            self._unstarted_forecast.pop(best.key, None)
            self._started.add(best.key)
            if best.warms_cache:
                if self._warm_until.get(best.group, 0.0) > now:
                    self._warm_until[best.group] = now + CACHE_SECONDS  # its read renews the cache
                else:
                    self._warming[best.group] = best.key
            self.running += 1
            self._by_group[best.group] += 1
            self._by_agent[best.agent] += 1
            starts.append(best)
        return starts, refused

    def _first_apart(self, heap: list[Candidate]) -> Candidate | None:
        """The group's best item that touches no file a running item holds (see above)."""
        top = heap[0]
        if not top.touches or self._claims.clash(top.key, top.touches) is None:
            return top
        return next((c for c in sorted(heap)[1:] if not c.touches or self._claims.clash(c.key, c.touches) is None),
                    None)

    def _remove(self, candidate: Candidate) -> None:
        heap = self._ready[candidate.group]
        if heap[0] is candidate:
            heapq.heappop(heap)
        else:  # passed over one or more that wait for a file
            heap.remove(candidate)
            heapq.heapify(heap)

    def next_change(self, now: float) -> float | None:
        """When waiting items may become startable by time alone (a backoff or a pause ends)."""
        times = [self._delayed[0][0]] if self._delayed else []
        times += [until for until in self._pauses.values() if until > now]
        return min(times, default=None)

    def _reservation(self, candidate: Candidate) -> float | None:
        """Its own (see candidates), else the dearest attempt of its group in this run: a group
        new to the history runs its first item alone, not all of them."""
        if candidate.reserve_usd is not None:
            return candidate.reserve_usd
        costs = self._group_costs.get(candidate.group)
        return max(costs) if costs else None

    def _choose_model(self, candidate: Candidate) -> None:
        """Near the budget's end: an item starts on its fallback model once what is left of the
        budget (its own reservation included) is below the forecast of the items not started
        yet, itself included, at their configured models."""
        left = self.budget.left(besides=candidate.key)
        remaining = sum(self._unstarted_forecast.values())
        if left is not None and left < remaining:
            self.budget.fallbacks[candidate.key] = (candidate.fallback_model, (
                f"{dollars(left)} left of the budget, below the {dollars(remaining)} forecast "
                f"of the {len(self._unstarted_forecast)} items not started"))

    def _allows(self, candidate: Candidate, now: float) -> bool:
        agent_limit = self.agent_limits.get(candidate.agent)
        return (
            (candidate.group_limit is None or self._by_group[candidate.group] < candidate.group_limit)
            and (agent_limit is None or self._by_agent[candidate.agent] < agent_limit)
            and self._pauses.get(candidate.agent, 0.0) <= now
            and not (candidate.warms_cache and candidate.group in self._warming)
        )

    def _drop_unstarted(self, why: str) -> list[tuple[str, str]]:
        dropped = []
        for group, heap in self._ready.items():
            keep = [c for c in heap if c.key in self._started]
            dropped += [(c.key, why) for c in heap if c.key not in self._started]
            heapq.heapify(keep)
            self._ready[group] = keep
        return dropped


def critical_paths(plan: Plan, durations: Mapping[str, float | None]) -> dict[str, float]:
    """Each item's remaining chain: its expected duration plus the longest chain after it.

    An item's expected duration is its last recorded one, else its group's median,
    else 1 second. Items that wait for the same things share one upstream tuple, so
    the longest chain behind each tuple is worked out once."""
    expected: dict[str, float] = {}
    for group in plan.groups:
        known = [durations[item.key] for item in group.items if durations.get(item.key)]
        default = statistics.median(known) if known else 1.0
        for item in group.items:
            expected[item.key] = durations.get(item.key) or default

    holders: dict[str, list[int]] = {}  # item → ids of the upstream tuples it is in
    seen: set[int] = set()
    for item in plan.items():
        upstream = plan.upstream(item)
        if upstream and id(upstream) not in seen:
            seen.add(id(upstream))
            for member in upstream:
                holders.setdefault(member.key, []).append(id(upstream))
    chain: dict[str, float] = {}
    behind: dict[int, float] = {}  # tuple id → longest chain among the items waiting on it
    for item in reversed(list(plan.items())):
        after = max((behind.get(t, 0.0) for t in holders.get(item.key, ())), default=0.0)
        chain[item.key] = expected[item.key] + after
        upstream = plan.upstream(item)
        if upstream:
            behind[id(upstream)] = max(behind.get(id(upstream), 0.0), chain[item.key])
    return chain


def candidates(plan: Plan, durations: Mapping[str, float | None],
               estimates: Mapping[str, Estimate] | None = None) -> dict[str, Candidate]:
    """Every item as the dispatcher sees it. An attempt reserves its `item_budget_usd`
    when set (its agent's hard cap), else the high end of its forecast, if known. The
    files it will likely touch are predicted once it is ready (see runner)."""
    chain = critical_paths(plan, durations)
    highs = {key: estimate.high for key, estimate in (estimates or {}).items()}
    forecasts = {key: estimate.usd for key, estimate in (estimates or {}).items()}
    return {
        item.key: Candidate((-chain[item.key], place), item.key, group.slug, group.limit, group.settings["agent"],
                            group.settings.get("item_budget_usd") or highs.get(item.key),
                            group.settings.get("prefill_cache", True) and group.settings["agent"] in PROMPT_CACHING_AGENTS
                            and len(group.items) > 1, forecasts.get(item.key), group.settings.get("fallback_model"))
        for place, (group, item) in enumerate((g, i) for g in plan.groups for i in g.items)
    }
