"""The Claude Code adapter, fed the streams the real CLI (2.1.330) printed in
tests/test_fake_anthropic_cli.py (tests/fixtures/claude/*.jsonl).

Where a case was not recorded (a rate_limit_event, a budget stop, a killed run), the
test derives it from a recorded stream and says what it changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_tasks.agents.base import PERMANENT, TRANSIENT, WAIT
from batch_tasks.agents.claude import ClaudeAgent, ClaudeReader

FIXTURES = Path(__file__).parent / "fixtures" / "claude"
MODEL = "claude-opus-5-5"


def lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.jsonl").read_text().splitlines()


def feed(stream: list[str]) -> tuple[ClaudeReader, list]:
    reader = ClaudeAgent().reader()
    events = [event for line in stream for event in reader.feed(line)]
    return reader, events


def read(name: str):
    return feed(lines(name))


def of(events, kind: str) -> list:
    return [event for event in events if event.kind == kind]


def edited(line: str, **changes) -> str:
    """A recorded event with some top-level fields changed."""
    return json.dumps({**json.loads(line), **changes})


def tokens(input, output, cache_read, cache_write) -> dict:
    return {"input": input, "output": output, "cache_read": cache_read, "cache_write": cache_write}


# --- successful sessions ----------------------------------------------------


def test_text_answer():
    reader, events = read("text_success")
    sid = "01f55d3d-808c-439d-80ae-3c19a3490876"
    assert [event.kind for event in events] == ["started", "assistant", "usage", "result"]
    assert events[0].data == {"session_id": sid, "model": MODEL}
    assert events[1].text == "Hello from the fake"
    assert events[2].data == {"tokens": tokens(1200, 1, 9000, 2000)}
    assert events[3].data == {
        "ok": True, "text": "Hello from the fake", "cost_usd": 0.0174,
        "tokens": tokens(1200, 40, 9000, 2000), "num_turns": 1, "session_id": sid,
    }
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.reason, outcome.failure_class) == (True, "", None)
    assert outcome.result_text == "Hello from the fake"
    assert outcome.data == {
        "session_id": sid, "model": MODEL, "cost_usd": 0.0174, "num_turns": 1,
        "tokens": tokens(1200, 40, 9000, 2000), "duration_ms": 173,
    }


def test_write_tool():
    reader, events = read("write_tool")
    assert [(event.kind, event.text) for event in events if event.kind != "usage"] == [
        ("started", f"session 38bcca51-c828-4992-96c7-2ef5c8338cda ({MODEL})"),
        ("tool_use", "Write hello.txt"),
        ("tool_result", ""),
        ("assistant", "Wrote it"),
        ("result", "Wrote it"),
    ]
    assert of(events, "tool_use")[0].data == {"name": "Write"}
    assert of(events, "tool_result")[0].data == {"is_error": False}
    # One usage event per assistant message, counting up.
    assert [event.data["tokens"] for event in of(events, "usage")] == [
        tokens(1200, 1, 9000, 2000), tokens(2400, 2, 18000, 4000)]
    outcome = reader.outcome(0)
    assert outcome.ok and outcome.result_text == "Wrote it"
    assert outcome.data["cost_usd"] == 0.0348 and outcome.data["num_turns"] == 2
    assert outcome.data["tokens"] == tokens(2400, 80, 18000, 4000)
    assert outcome.data["duration_ms"] == 247


def test_bash_tool():
    reader, events = read("bash_tool")
    assert [event.text for event in of(events, "tool_use")] == ["Bash: echo hi > out.txt && cat out.txt"]
    assert [event.data for event in of(events, "tool_result")] == [{"is_error": False}]
    outcome = reader.outcome(0)
    assert outcome.ok and outcome.result_text == "Ran it"
    assert outcome.data["session_id"] == "e397b6d7-58c3-41be-86fa-58cd5d6e01c9"


def test_session_id_comes_from_the_stream():
    reader, events = read("session_id")
    sid = "1b62fb43-10db-4669-85e9-35f40bfa2fee"
    assert events[0].data["session_id"] == sid and of(events, "result")[0].data["session_id"] == sid
    assert reader.outcome(0).data["session_id"] == sid


def test_rate_limit_retried_then_success():
    reader, events = read("rate_limit_429_retry")
    assert [event.data for event in of(events, "retry")] == [
        {"attempt": 1, "max_retries": 3, "delay_s": 0.577, "error_class": TRANSIENT},
        {"attempt": 2, "max_retries": 3, "delay_s": 1.162, "error_class": TRANSIENT},
    ]
    assert of(events, "retry")[0].text == "API retry 1/3 in 0.6 s: rate_limit (429)"
    outcome = reader.outcome(0)
    assert outcome.ok and outcome.result_text == "recovered"
    assert outcome.data["cost_usd"] == 0.0174


# --- stops and failures -----------------------------------------------------


def test_max_turns_is_permanent():
    reader, events = read("max_turns")
    result = of(events, "result")[0]
    assert result.data["ok"] is False and result.data["text"] == ""
    assert result.text == "reached max turns (1)"
    outcome = reader.outcome(1)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, PERMANENT, "reached max turns (1)")
    assert outcome.result_text == "" and outcome.retry_at is None
    assert outcome.data["cost_usd"] == 0.0174 and outcome.data["num_turns"] == 2
    assert outcome.data["tokens"] == tokens(1200, 40, 9000, 2000)


def test_auth_error_is_permanent():
    reader, events = read("auth_401")
    assert [event.kind for event in events] == ["started", "error", "result"]  # no usage for a synthetic message
    error = events[1]
    assert error.data == {"failure_class": PERMANENT, "message": "Invalid API key · Fix external API key"}
    outcome = reader.outcome(1)
    assert not outcome.ok and outcome.failure_class == PERMANENT
    assert outcome.reason == "authentication failed (401): Invalid API key · Fix external API key"
    assert outcome.data["cost_usd"] == 0 and outcome.data["tokens"] == tokens(0, 0, 0, 0)
    assert outcome.data["session_id"] == "ef8bcea2-e11f-4dfb-b7f4-4e286553994d"


def test_overloaded_is_transient():
    reader, events = read("overloaded_529")
    assert [(event.data["delay_s"], event.data["error_class"]) for event in of(events, "retry")] == [
        (0.567, TRANSIENT), (1.062, TRANSIENT)]
    assert of(events, "error")[0].data["failure_class"] == TRANSIENT
    outcome = reader.outcome(1)
    assert not outcome.ok and outcome.failure_class == TRANSIENT
    assert outcome.reason.startswith("server error (529): API Error: Repeated 529 Overloaded errors.")
    assert outcome.data["duration_ms"] == 1823


def test_rate_limit_exhausted_without_reset_time_is_transient():
    reader, events = read("rate_limit_429_exhausted")
    assert of(events, "error")[0].data["failure_class"] == TRANSIENT
    outcome = reader.outcome(1)
    assert (outcome.failure_class, outcome.retry_at) == (TRANSIENT, None)
    assert outcome.reason == ("rate limit (429): API Error: Request rejected (429) · "
                              "Number of request tokens has exceeded your per-minute rate limit")


def rate_limit_event(status: str, resets_at: int) -> str:
    # As the CLI builds it (not recorded: only sent for subscription limits).
    return json.dumps({"type": "rate_limit_event", "session_id": "s", "uuid": "u",
                       "rate_limit_info": {"status": status, "resetsAt": resets_at, "rateLimitType": "five_hour"}})


def test_rate_limit_with_reset_time_waits():
    stream = lines("rate_limit_429_exhausted")
    reader, events = feed(stream[:1] + [rate_limit_event("rejected", 1_900_000_000)] + stream[1:])
    assert of(events, "retry")[0].data["error_class"] == WAIT
    assert of(events, "error")[0].data["failure_class"] == WAIT
    outcome = reader.outcome(1)
    assert (outcome.failure_class, outcome.retry_at) == (WAIT, 1_900_000_000)


def test_allowed_rate_limit_event_gives_no_reset_time():
    stream = lines("rate_limit_429_exhausted")
    reader, _ = feed(stream[:1] + [rate_limit_event("allowed", 1_900_000_000)] + stream[1:])
    assert (reader.outcome(1).failure_class, reader.outcome(1).retry_at) == (TRANSIENT, None)


@pytest.mark.parametrize("error, status, failure_class", [
    ("invalid_request", 400, PERMANENT),
    ("billing_error", 402, PERMANENT),
    ("authentication_failed", 403, PERMANENT),
    ("model_not_found", 404, PERMANENT),
    ("server_error", 500, TRANSIENT),
    ("overloaded", 529, TRANSIENT),
    ("unknown", 401, PERMANENT),  # a 4xx status is enough
    ("unknown", 408, TRANSIENT),  # a request timeout may pass
    ("unknown", None, TRANSIENT),
])
def test_api_error_classes(error, status, failure_class):
    # The recorded 401 with the synthetic message's error and status changed.
    init, synthetic, result = lines("auth_401")
    reader, events = feed([init, edited(synthetic, error=error, api_error_status=status),
                           edited(result, api_error_status=status)])
    assert of(events, "error")[0].data["failure_class"] == failure_class
    assert reader.outcome(1).failure_class == failure_class


def test_budget_stop_is_permanent():
    # The recorded max-turns stop, as the CLI words a --max-budget-usd stop.
    *stream, result = lines("max_turns")
    reader, _ = feed(stream + [edited(result, subtype="error_max_budget_usd", errors=["Reached maximum budget ($0.5)"])])
    outcome = reader.outcome(1)
    assert (outcome.failure_class, outcome.reason) == (PERMANENT, "reached max budget ($0.5)")


def test_error_during_execution_is_transient():
    *stream, result = lines("max_turns")
    reader, _ = feed(stream + [edited(result, subtype="error_during_execution", errors=["socket hang up\nat ..."])])
    outcome = reader.outcome(1)
    assert (outcome.failure_class, outcome.reason) == (TRANSIENT, "error during execution: socket hang up")


def test_permission_denials_are_counted():
    *stream, result = lines("text_success")
    denials = [{"tool_name": "Bash", "tool_use_id": "t1", "tool_input": {}}] * 2
    reader, _ = feed(stream + [edited(result, permission_denials=denials)])
    assert reader.outcome(0).data["permission_denials"] == 2


# --- a session that ended badly ---------------------------------------------


def test_stream_without_result_is_transient():
    reader, _ = feed(lines("text_success")[:-1])  # the CLI died before its result
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.failure_class) == (False, TRANSIENT)
    assert outcome.reason == "no result event: the agent ended without a final result"
    # What was seen so far still counts.
    assert outcome.data == {"session_id": "01f55d3d-808c-439d-80ae-3c19a3490876", "model": MODEL,
                            "tokens": tokens(1200, 1, 9000, 2000)}
    assert reader.outcome(1).reason.endswith("(exit status 1)")


def test_killed_is_transient():
    reader, _ = feed(lines("text_success")[:-1])
    outcome = reader.outcome(-9)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, TRANSIENT, "killed by signal 9")


def test_good_result_needs_exit_status_zero():
    reader, _ = read("text_success")
    outcome = reader.outcome(1)
    assert (outcome.ok, outcome.failure_class) == (False, TRANSIENT)
    assert outcome.result_text == "Hello from the fake"
    assert reader.outcome(-15).reason == "killed by signal 15"


def test_empty_stream():
    reader, events = feed([])
    assert events == [] and reader.outcome(0).failure_class == TRANSIENT


# --- lines that are not events ----------------------------------------------


def test_stray_lines_are_output_and_unknown_events_skipped():
    stream = lines("text_success")
    noise = [
        "Warning: something on stderr",
        "",
        "{not json",
        "42",
        json.dumps({"type": "stream_event", "event": {"type": "message_start"}}),
        json.dumps({"type": "system", "subtype": "hook_started"}),
        json.dumps({"type": "system", "subtype": "permission_denied", "tool_name": "Bash"}),
        json.dumps({"type": "assistant", "message": {"content": ["not a block"]}}),
    ]
    reader, events = feed(stream[:2] + noise + stream[2:])
    assert [(event.kind, event.text) for event in of(events, "output")] == [
        ("output", "Warning: something on stderr"), ("output", "{not json"), ("output", "42"),
        ("output", noise[-1]),
    ]
    assert [event.kind for event in events if event.kind != "output"] == ["started", "assistant", "usage", "result"]
    assert reader.outcome(0).ok


# --- tool summaries and text ------------------------------------------------


def assistant_with(*content, message_id="msg_1") -> str:
    # The recorded Bash call's assistant event with other content blocks.
    event = json.loads(lines("bash_tool")[1])
    event["message"] = {**event["message"], "id": message_id, "content": list(content)}
    return json.dumps(event)


def tool(name: str, **input) -> dict:
    return {"type": "tool_use", "id": "toolu_1", "name": name, "input": input}


@pytest.mark.parametrize("block, summary", [
    (tool("Edit", file_path="src/auth.py", old_string="a", new_string="b"), "Edit src/auth.py"),
    (tool("Read", file_path="x.py"), "Read x.py"),
    (tool("Bash", command="pytest -q\necho done"), "Bash: pytest -q"),
    (tool("Bash", command="x" * 300), "Bash: " + "x" * 99 + "…"),
    (tool("Grep", pattern="def main"), "Grep: def main"),
    (tool("Glob", pattern="**/*.py"), "Glob: **/*.py"),
    (tool("WebFetch", url="https://example.com", prompt="p"), "WebFetch: https://example.com"),
    (tool("Task", description="Find the tests", prompt="p"), "Task: Find the tests"),
    (tool("TodoWrite", todos=[]), "TodoWrite"),
    (tool("Bash"), "Bash"),
])
def test_tool_summaries(block, summary):
    _, events = feed([assistant_with(block)])
    assert [event.text for event in of(events, "tool_use")] == [summary]


def test_assistant_text_is_its_first_line_trimmed():
    _, events = feed([assistant_with({"type": "text", "text": "\nPlan:\n1. read"}),
                      assistant_with({"type": "text", "text": "y" * 150}, message_id="msg_2")])
    assert [event.text for event in of(events, "assistant")] == ["Plan:", "y" * 99 + "…"]


def test_usage_counted_once_per_message():
    # The CLI prints each content block of one message as its own event, with the same usage.
    _, events = feed([assistant_with({"type": "text", "text": "Let me look"}),
                      assistant_with(tool("Read", file_path="a.py"))])
    assert [event.kind for event in events] == ["assistant", "usage", "tool_use"]


def test_failed_tool_result_shows_its_first_line():
    event = json.loads(lines("bash_tool")[2])
    event["message"]["content"][0].update(is_error=True, content="Exit code 1\nTraceback ...")
    listed = json.loads(lines("bash_tool")[2])
    listed["message"]["content"][0].update(is_error=True, content=[{"type": "text", "text": "Permission denied"}])
    _, events = feed([json.dumps(event), json.dumps(listed)])
    assert [(event.text, event.data) for event in events] == [
        ("Exit code 1", {"is_error": True}), ("Permission denied", {"is_error": True})]


# --- the command line -------------------------------------------------------


def settings(**given) -> dict:
    names = ("agent", "command", "parallel", "template", "model", "allowed_tools",
             "permission_mode", "max_turns", "extra_args")
    return {**{name: None for name in names}, "agent": "claude", **given}


CONTEXT = {"module": "src/auth.py", "group": "fix", "prompt_file": "/tmp/p.md",
           "session_id": "3f2b8c1e-0000-4000-8000-000000000001"}
HEADLESS = ["claude", "-p", "--output-format", "stream-json", "--verbose",
            "--session-id", "3f2b8c1e-0000-4000-8000-000000000001"]


def test_argv_with_nothing_set():
    assert ClaudeAgent().argv(settings(), CONTEXT) == HEADLESS


def test_argv_for_typical_settings():
    argv = ClaudeAgent().argv(settings(
        model="claude-sonnet-4-5", permission_mode="acceptEdits",
        allowed_tools=("Read", "Edit", "Bash(git commit:*)"), max_turns=30,
        extra_args=("--add-dir", "../shared")), CONTEXT)
    assert argv == HEADLESS + [
        "--model", "claude-sonnet-4-5", "--permission-mode", "acceptEdits",
        "--allowedTools", "Read Edit Bash(git commit:*)", "--max-turns", "30",
        "--add-dir", "../shared",
    ]


def test_argv_with_item_budget():
    argv = ClaudeAgent().argv(settings(item_budget_usd=0.5), CONTEXT)
    assert argv == HEADLESS + ["--max-budget-usd", "0.5"]


def test_agent_identity():
    agent = ClaudeAgent()
    assert (agent.name, agent.executable) == ("claude", "claude")
    agent.check_settings(settings())  # nothing is required
