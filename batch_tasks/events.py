"""The one shape in which every agent's activity reaches the rest of the program,
and the hub through which one run tells its listeners (live view, history) what happens."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

# What an event can be; adapters map their CLI's own event types onto these.
# "worker": which Dask worker runs the attempt (executors/dask_cluster).
KINDS = ("started", "assistant", "tool_use", "tool_result", "retry", "usage", "result", "error", "output", "exit",
         "worker")

# Where an item that lands its work (isolated, or with a `check`) is, for the panel and
# batch-status: its worktree being made and set up, its agent, its check, its reviewer agent,
# the merge queue. While it waits for a review, its step is the item machine's AWAITING_REVIEW.
SETUP, AGENT, CHECK, REVIEWING = "setup", "agent", "check", "review"
WAITING_TO_MERGE, MERGING = "waiting to merge", "merging"
STEP = "step"  # the kind of the events.jsonl line that says so (the runner's, not an agent's)


@dataclass(frozen=True)
class AgentEvent:
    kind: str  # one of KINDS
    text: str = ""  # one short line for people: `Edit src/auth.py`, `Bash: pytest -q`
    data: dict[str, Any] = field(default_factory=dict)  # the kind's normalized fields

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Listener(Protocol):
    """What a run tells those who watch it (the reporter, the run history). Every method is
    optional: a listener implements the ones it cares about."""

    def attempt_started(self, key: str, attempt: int, started: float) -> None: ...

    def item_started(self, key: str, attempt: int, log: str) -> None: ...

    def item_event(self, key: str, event: AgentEvent) -> None: ...

    def attempt_ended(self, key: str, record: dict[str, Any]) -> None: ...

    def item_step(self, key: str, attempt: int, step: str, text: str) -> None: ...  # text: what it does there, or ""

    def item_parked(self, key: str, why: str) -> None: ...  # it waits without its slot (the merge queue)

    def item_retrying(self, key: str, attempt: int, cause: str, at: float) -> None: ...

    def agent_paused(self, agent: str, until: float) -> None: ...

    def item_finished(self, key: str, record: dict[str, Any]) -> None: ...

    def item_not_started(self, key: str, why: str) -> None: ...

    # A run-wide line for people, from `source` (a Dask scheduler): a wait, a worker set aside.
    def notice(self, source: str, text: str) -> None: ...


class Hub:
    """One run's listeners. A listener's failure never fails an item; it is reported once
    per listener and method, naming the item, and that listener is told no more of it."""

    def __init__(self, report_error: Callable[[str], None]):
        self._listeners: list[Any] = []
        self._lock = threading.Lock()
        self._report_error = report_error
        self._broken: set[tuple[int, str]] = set()

    def subscribe(self, listener: Any) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Any) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def publish(self, method: str, key: str, *args) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            handler = getattr(listener, method, None)
            if handler is None or (id(listener), method) in self._broken:
                continue
            try:
                handler(key, *args)
            except Exception as error:  # noqa: BLE001 - a view is not worth an item
                self._broken.add((id(listener), method))
                self._report_error(f"{type(listener).__name__}.{method} failed on {key}: {error!r}; it is told no more")
