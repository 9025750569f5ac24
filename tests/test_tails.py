"""What a failed item said last, on plain data: an agent's words from its events, never
its raw JSON stream; a command's own lines (no process runs)."""

from __future__ import annotations

import json

from batch_tasks.state.tails import said_last

STREAM_JSON = '{"type":"system","subtype":"init","cwd":"/w","tools":["Read","Edit"],"mcp_servers":[]}\n'


def write(folder, events: list[dict], log: str) -> str:
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "output.log").write_text(log)
    return str(folder / "output.log")


def test_a_claude_failures_last_lines_are_its_words_not_stream_json(tmp_path):
    events = [
        {"run_id": "R", "attempt": 1, "kind": "started", "text": "", "data": {"model": "m"}},
        {"run_id": "R", "attempt": 1, "kind": "assistant", "text": "an old attempt", "data": {}},
        {"run_id": "R", "attempt": 2, "kind": "started", "text": "", "data": {"model": "m"}},
        {"run_id": "R", "attempt": 2, "kind": "usage", "text": "", "data": {"tokens": {"input": 3}}},
        {"run_id": "R", "attempt": 2, "kind": "assistant", "text": "Looking at it.\nThen the tests.", "data": {}},
        {"run_id": "R", "attempt": 2, "kind": "tool_use", "text": "Bash: pytest -q", "data": {"name": "Bash"}},
        {"run_id": "R", "attempt": 2, "kind": "error", "text": "Failed to authenticate. API Error: 401", "data": {}},
        {"run_id": "R", "attempt": 2, "kind": "exit", "text": "", "data": {"status": 1}},
    ]
    log = write(tmp_path, events, "=== g:a attempt 2 of run R at 2026-01-01 00:00:00 ===\n" + STREAM_JSON * 40)
    assert said_last(log) == ["Looking at it.", "Then the tests.", "Bash: pytest -q", "Failed to authenticate. API Error: 401"]


def test_a_commands_last_lines_are_what_it_printed(tmp_path):
    events = [{"run_id": "R", "attempt": 1, "kind": "output", "text": f"line {n}", "data": {}} for n in range(15)]
    log = write(tmp_path, events, "".join(f"line {n}\n" for n in range(15)))
    assert said_last(log) == [f"line {n}" for n in range(5, 15)]


def test_without_events_the_log_is_read_as_before(tmp_path):
    (tmp_path / "output.log").write_text("=== g:a attempt 1 of run R at 2026-01-01 00:00:00 ===\nhi\n")
    assert said_last(str(tmp_path / "output.log")) == ["hi"]


def test_what_follows_the_agents_json_is_kept_as_printed(tmp_path):
    events = [{"run_id": "R", "attempt": 1, "kind": "result", "text": "Done: wrote it.", "data": {}}]
    log = write(tmp_path, events, "=== g:a attempt 1 of run R at 2026-01-01 00:00:00 ===\n" + STREAM_JSON
                + "=== check on the merged state of g:a ===\nFAILED tests/test_a.py::test_x\n")
    assert said_last(log) == ["Done: wrote it.", "FAILED tests/test_a.py::test_x"]
