"""The one shape in which every agent's activity reaches the rest of the program."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# What an event can be; adapters map their CLI's own event types onto these.
KINDS = ("started", "assistant", "tool_use", "tool_result", "retry", "usage", "result", "error", "output")


@dataclass(frozen=True)
class AgentEvent:
    kind: str  # one of KINDS
    text: str = ""  # one short line for people: `Edit src/auth.py`, `Bash: pytest -q`
    data: dict[str, Any] = field(default_factory=dict)  # the kind's normalized fields

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
