"""The one shape in which every agent's activity reaches the rest of the program,
and the hub through which item runs tell the live view what they do."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# What an event can be; adapters map their CLI's own event types onto these.
KINDS = ("started", "assistant", "tool_use", "tool_result", "retry", "usage", "result", "error", "output", "exit")


@dataclass(frozen=True)
class AgentEvent:
    kind: str  # one of KINDS
    text: str = ""  # one short line for people: `Edit src/auth.py`, `Bash: pytest -q`
    data: dict[str, Any] = field(default_factory=dict)  # the kind's normalized fields

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Listener(Protocol):
    def item_started(self, key: str, attempt: int, log: str) -> None: ...

    def item_event(self, key: str, event: AgentEvent) -> None: ...

    def item_finished(self, key: str, record: dict[str, Any]) -> None: ...


_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> None:
    with _lock:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def publish(method: str, *args) -> None:
    """Tell every listener; a listener's failure must never fail an item."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            getattr(listener, method)(*args)
        except Exception:  # noqa: BLE001 - the view is not worth an item
            pass
