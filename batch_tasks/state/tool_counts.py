"""An item's tool calls, by tool name, counted from its events.jsonl (for one run, or all):
what batch-status and the report show. It only reads."""

from __future__ import annotations

import json
from collections import Counter

from .state import open_to_read


def count(events_path: str, run_id: str | None = None) -> Counter[str]:
    counted: Counter[str] = Counter()
    try:
        with open_to_read(events_path) as stream:
            for line in stream:
                if b'"tool_use"' not in line:  # most lines are not: no need to read them as JSON
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                if (isinstance(event, dict) and event.get("kind") == "tool_use"
                        and (run_id is None or event.get("run_id") == run_id)):
                    data = event.get("data") if isinstance(event.get("data"), dict) else {}
                    counted[str(data.get("name") or "?")] += 1
    except OSError:
        pass
    return counted
