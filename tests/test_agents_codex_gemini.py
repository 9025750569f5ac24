"""The Codex and Gemini adapters, fed the streams the real CLIs printed
(tests/fixtures/codex/, tests/fixtures/gemini/: see the README beside each).

Where a case was not recorded, the test derives it from a recorded stream and says what
it changed.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path

import pytest

from batch_tasks import pricing
from batch_tasks.agents import codex, gemini
from batch_tasks.agents.base import PERMANENT, TRANSIENT, WAIT
from batch_tasks.agents.codex import CodexAgent
from batch_tasks.agents.gemini import GeminiAgent
from batch_tasks.errors import SettingError

FIXTURES = Path(__file__).parent / "fixtures"


def lines(agent: str, name: str) -> list[str]:
    return (FIXTURES / agent / f"{name}.jsonl").read_text().splitlines()


def feed(agent, stream: list[str]):
    reader = agent.reader()
    return reader, [event for line in stream for event in reader.feed(line)]


def of(events, kind: str) -> list:
    return [event for event in events if event.kind == kind]


def tokens(input, output, cache_read, cache_write) -> dict:
    return {"input": input, "output": output, "cache_read": cache_read, "cache_write": cache_write}


def settings(agent: str, **given) -> dict:
    names = ("agent", "command", "parallel", "template", "model", "allowed_tools",
             "permission_mode", "max_turns", "extra_args")
    return {**{name: None for name in names}, "agent": agent, **given}


CONTEXT = {"module": "src/auth.py", "group": "fix", "prompt_file": "/tmp/p.md",
           "session_id": "3f2b8c1e-0000-4000-8000-000000000001"}


# --- codex: recorded runs ----------------------------------------------------

CODEX_SUCCESS_ID = "01a20af8-d4ef-7de3-8a67-278e0fd723ad"
CODEX_ANSWER = "Wrote notes.md and updated a.txt.\nmissing.txt does not exist, so I left it alone."


def codex_run(name: str):
    return feed(CodexAgent(), lines("codex", name))


def test_codex_command_and_file_change():
    reader, events = codex_run("command_and_file_change")
    assert [(event.kind, event.text) for event in events] == [
        ("started", f"session {CODEX_SUCCESS_ID}"),
        ("output", "Model metadata for `gpt-5-codex` not found. Defaulting to fallback metadata; "
                   "this can degrade performance and cause issues."),
        ("tool_use", "Bash: ls"),  # "/bin/bash -lc ls" without its shell
        ("tool_result", ""),
        ("tool_use", "Bash: cat missing.txt"),
        ("tool_result", "cat: missing.txt: No such file or directory"),
        ("tool_use", "Edit /tmp/demo-project/a.txt"),
        ("tool_use", "Write /tmp/demo-project/notes.md"),
        ("tool_result", ""),
        ("assistant", "Wrote notes.md and updated a.txt."),
        ("usage", ""),
        ("result", "Wrote notes.md and updated a.txt."),
    ]
    assert events[0].data == {"session_id": CODEX_SUCCESS_ID, "model": None}
    assert [event.data for event in of(events, "tool_use")] == [
        {"name": "Bash"}, {"name": "Bash"}, {"name": "Edit"}, {"name": "Write"}]
    assert [event.data for event in of(events, "tool_result")] == [
        {"is_error": False}, {"is_error": True}, {"is_error": False}]
    assert of(events, "assistant")[0].data == {"text": CODEX_ANSWER}
    # input_tokens 5400 include the 4900 read from the cache.
    assert of(events, "usage")[0].data == {"tokens": tokens(500, 135, 4900, 0)}
    assert of(events, "result")[0].data == {
        "ok": True, "text": CODEX_ANSWER, "tokens": tokens(500, 135, 4900, 0), "session_id": CODEX_SUCCESS_ID}
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.reason, outcome.failure_class, outcome.retry_at) == (True, "", None, None)
    assert outcome.result_text == CODEX_ANSWER
    assert outcome.data == {"session_id": CODEX_SUCCESS_ID, "model": None, "tokens": tokens(500, 135, 4900, 0)}


def test_codex_auth_error_is_permanent():
    reader, events = codex_run("auth_401")
    # The top-level error and turn.failed carry the same message: one error event.
    assert [event.kind for event in events] == ["started", "output", "error", "result"]
    message = ("unexpected status 401 Unauthorized: Incorrect API key provided: sk-test. You can find "
               "your API key at https://platform.openai.com/account/api-keys., url: http://127.0.0.1:18081/v1/responses")
    assert events[2].data == {"failure_class": PERMANENT, "message": message}
    session_id = "01a20af8-dd40-7390-8120-d6d5b1f7b6b8"
    assert of(events, "result")[0].data == {"ok": False, "text": "", "session_id": session_id}
    outcome = reader.outcome(1)
    assert (outcome.ok, outcome.failure_class, outcome.retry_at) == (False, PERMANENT, None)
    assert outcome.reason == message
    assert outcome.data == {"session_id": session_id, "model": None}


def today_at(*clock: int) -> float:
    return datetime.combine(date.today(), time(*clock)).timestamp()


def now_is(monkeypatch, epoch: float) -> None:
    monkeypatch.setattr(codex.time, "time", lambda: epoch)


def test_codex_usage_limit_waits_until_its_reset(monkeypatch):
    now_is(monkeypatch, datetime(2026, 11, 25, 13, 0).timestamp())
    reader, events = codex_run("usage_limit")
    assert of(events, "error")[0].data["failure_class"] == WAIT
    outcome = reader.outcome(1)
    assert (outcome.ok, outcome.failure_class) == (False, WAIT)
    # "try again at Nov 25th, 2026 2:00 PM": codex's local time, read back as local time,
    # rounded down by codex: the end of that minute.
    assert outcome.retry_at == datetime(2026, 11, 25, 14, 1).timestamp()
    assert outcome.reason.startswith("You’ve hit your usage limit.")


def test_codex_retries_then_fails_transiently():
    reader, events = codex_run("overloaded_retried")
    assert [event.data for event in of(events, "retry")] == [
        {"attempt": 1, "max_retries": 2, "error_class": TRANSIENT},
        {"attempt": 2, "max_retries": 2, "error_class": TRANSIENT},
    ]
    assert of(events, "retry")[0].text.startswith("Reconnecting... 1/2 (We’re currently experiencing high demand")
    assert len(of(events, "error")) == 1
    outcome = reader.outcome(1)
    assert (outcome.ok, outcome.failure_class, outcome.retry_at) == (False, TRANSIENT, None)
    assert outcome.reason == "We’re currently experiencing high demand, which may cause temporary errors."


def test_codex_retries_then_success_is_ok():
    # The recorded retries, then the recorded successful turn.
    retries = [line for line in lines("codex", "overloaded_retried") if "Reconnecting" in line]
    stream = lines("codex", "command_and_file_change")
    reader, events = feed(CodexAgent(), stream[:3] + retries + stream[3:])
    assert len(of(events, "retry")) == 2 and not of(events, "error")
    assert reader.outcome(0).ok


# Messages as codex words them (codex-rs/core/src/error.rs).
@pytest.mark.parametrize("message, failure_class", [
    ("exceeded retry limit, last status: 429 Too Many Requests, request id: 5f2c", TRANSIENT),
    ("unexpected status 503 Service Unavailable: upstream connect error, url: https://api.openai.com/v1/responses",
     TRANSIENT),
    ("stream disconnected before completion: error sending request for url (https://chatgpt.com/...)", TRANSIENT),
    ("Connection failed: error sending request for url", TRANSIENT),
    ("You’ve hit your usage limit. Try again later.", TRANSIENT),  # no reset time
    ("Quota exceeded. Check your plan and billing details.", PERMANENT),
    ("unexpected status 400 Bad Request: {\"error\": {\"message\": \"Unsupported parameter\"}}", PERMANENT),
    ("unexpected status 403 Forbidden: Access blocked", PERMANENT),
    ("Missing environment variable: `OPENAI_API_KEY`.", PERMANENT),
    ("Codex ran out of room in the model's context window. Start a new conversation or clear earlier history "
     "before retrying.", PERMANENT),
    ("something nobody has seen before", PERMANENT),
])
def test_codex_error_classes(message, failure_class):
    assert codex.classify(message) == (failure_class, None)


def test_codex_usage_limit_reset_today_reads_as_today(monkeypatch):
    now_is(monkeypatch, today_at(14, 0))
    message = ("You've hit your usage limit. To get more access now, send a request to your admin "
               "or try again at 2:05 PM.")
    assert codex.classify(message) == (WAIT, today_at(14, 6))


def test_codex_usage_limit_reset_is_read_as_the_end_of_its_minute(monkeypatch):
    # Codex words a reset at 08:50:40 as "8:50 AM": going on at 08:50:00 is 40 s early.
    now_is(monkeypatch, today_at(8, 50, 10))
    assert codex.classify("You've hit your usage limit. Upgrade to Pro or try again at 8:50 AM.") == (WAIT, today_at(8, 51))


def test_codex_usage_limit_reset_already_past_is_transient(monkeypatch):
    # Codex repeats a reset time once it is past: waiting for it would start the next
    # attempts at once, with no pause; as a transient failure they back off.
    now_is(monkeypatch, today_at(8, 52))
    assert codex.classify("You've hit your usage limit. Upgrade to Pro or try again at 8:50 AM.") == (TRANSIENT, None)
    reader, _ = feed(CodexAgent(), lines("codex", "usage_limit"))  # Nov 25th, 2026, run later
    now_is(monkeypatch, datetime(2026, 11, 26).timestamp())
    assert (reader.outcome(1).failure_class, reader.outcome(1).retry_at) == (TRANSIENT, None)


# --- codex: runs that ended badly ---------------------------------------------


def test_codex_killed_is_transient():
    reader, _ = feed(CodexAgent(), lines("codex", "command_and_file_change")[:-1])  # no turn.completed
    outcome = reader.outcome(-9)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, TRANSIENT, "killed by signal 9")
    assert outcome.result_text == CODEX_ANSWER  # the last message seen still counts


def test_codex_exit_without_information_is_permanent():
    stderr = "Error: Not inside a trusted directory and --skip-git-repo-check was not specified."
    reader, _ = feed(CodexAgent(), [stderr])
    outcome = reader.outcome(1)
    assert (outcome.ok, outcome.failure_class) == (False, PERMANENT)
    assert outcome.reason == f"exit status 1: {stderr}"
    reader, _ = feed(CodexAgent(), lines("codex", "command_and_file_change")[:-1])
    assert reader.outcome(0).reason == "codex ended before its turn completed"
    assert reader.outcome(0).failure_class == PERMANENT


def test_codex_completed_turn_needs_exit_status_zero():
    reader, _ = codex_run("command_and_file_change")
    outcome = reader.outcome(-15)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, TRANSIENT, "killed by signal 15")
    assert reader.outcome(2).failure_class == PERMANENT


def test_codex_stray_lines_and_unknown_events():
    stream = lines("codex", "command_and_file_change")
    noise = [
        "Reading prompt from stdin...",
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"type": "item.plan.delta", "item_id": "item_9", "delta": "step"}),
        json.dumps({"type": "item.updated", "item": {"id": "item_8", "type": "todo_list", "items": []}}),
        json.dumps({"type": "item.completed", "item": {"id": "item_7", "type": "todo_list", "items": []}}),
        json.dumps({"type": "item.started", "item": {"type": "command_execution"}}),  # no id
    ]
    reader, events = feed(CodexAgent(), stream[:3] + noise + stream[3:])
    assert [event.text for event in of(events, "output")][1:] == [noise[0], "{not json", "[1, 2]", noise[-1]]
    assert len(of(events, "tool_use")) == 4
    assert reader.outcome(0).ok


def test_codex_file_change_completed_without_start():
    # docs: a file_change "is emitted only as a completed event" (older releases do so).
    stream = [line for line in lines("codex", "command_and_file_change")
              if not line.startswith('{"type":"item.started","item":{"id":"item_4","type":"file_change"')]
    _, events = feed(CodexAgent(), stream)
    assert [event.text for event in of(events, "tool_use")][2:] == [
        "Edit /tmp/demo-project/a.txt", "Write /tmp/demo-project/notes.md"]
    assert len(of(events, "tool_result")) == 3


def item_completed(**item) -> str:
    return json.dumps({"type": "item.completed", "item": {"id": "item_9", **item}})


def test_codex_mcp_call_and_web_search():
    # Shaped as codex-rs/exec/src/exec_events.rs defines McpToolCallItem and WebSearchItem.
    _, events = feed(CodexAgent(), [
        item_completed(type="mcp_tool_call", server="docs", tool="search", arguments={"q": "x"},
                       result=None, error={"message": "server went away\nstack"}, status="failed"),
        item_completed(type="web_search", id="ws_1", query="doit task dependencies", action={"type": "search"}),
    ])
    assert [(event.kind, event.text, event.data) for event in events] == [
        ("tool_use", "mcp__docs__search", {"name": "mcp__docs__search"}),
        ("tool_result", "server went away", {"is_error": True}),
        ("tool_use", "WebSearch: doit task dependencies", {"name": "WebSearch"}),
        ("tool_result", "", {"is_error": False}),
    ]


# --- codex: the command line ----------------------------------------------------

CODEX_HEADLESS = ["codex", "exec", "--json", "--skip-git-repo-check"]


def test_codex_argv_with_nothing_set():
    assert CodexAgent().argv(settings("codex"), CONTEXT) == CODEX_HEADLESS + ["--sandbox", "workspace-write", "-"]


def test_codex_argv_for_typical_settings():
    argv = CodexAgent().argv(settings(
        "codex", model="gpt-5-codex", permission_mode="danger-full-access",
        extra_args=("-c", "model_reasoning_effort=high")), CONTEXT)
    assert argv == CODEX_HEADLESS + [
        "--sandbox", "danger-full-access", "--model", "gpt-5-codex", "-c", "model_reasoning_effort=high", "-"]


def test_codex_settings_checks():
    agent = CodexAgent()
    assert (agent.name, agent.executable) == ("codex", "codex")
    agent.check_settings(settings("codex"))
    agent.check_settings(settings("codex", permission_mode="read-only", model="o3"))
    with pytest.raises(SettingError, match="read-only, workspace-write, danger-full-access"):
        agent.check_settings(settings("codex", permission_mode="acceptEdits"))
    with pytest.raises(SettingError, match="allowed_tools"):
        agent.check_settings(settings("codex", allowed_tools=("Bash",)))
    with pytest.raises(SettingError, match="max_turns"):
        agent.check_settings(settings("codex", max_turns=10))


# --- gemini: recorded runs ------------------------------------------------------

GEMINI_SUCCESS_ID = "3f9d3f56-1c52-4c4e-9d1c-0d6f0e6b2a71"
GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_ANSWER = "Wrote notes.md and updated a.txt.\nmissing.txt does not exist, so I left it alone."


def gemini_run(name: str):
    return feed(GeminiAgent(), lines("gemini", name))


def test_gemini_tools_success():
    reader, events = gemini_run("tools_success")
    assert [(event.kind, event.text) for event in events] == [
        ("started", f"session {GEMINI_SUCCESS_ID} ({GEMINI_MODEL})"),
        ("assistant", "I'll look at the folder first."),
        ("tool_use", "Bash: ls"),
        ("tool_result", ""),
        ("tool_use", "Read missing.txt"),
        ("tool_result", "File not found: /tmp/demo-project-gemini_success/missing.txt"),
        ("tool_use", "Write notes.md"),
        ("tool_result", ""),
        ("tool_use", "Edit a.txt"),
        ("tool_result", ""),
        ("assistant", "Wrote notes.md and updated a.txt."),  # two streamed pieces, one event
        ("usage", ""),
        ("result", "Wrote notes.md and updated a.txt."),
    ]
    assert events[0].data == {"session_id": GEMINI_SUCCESS_ID, "model": GEMINI_MODEL}
    assert [event.data for event in of(events, "tool_use")] == [
        {"name": "Bash"}, {"name": "Read"}, {"name": "Write"}, {"name": "Edit"}]
    assert [event.data["is_error"] for event in of(events, "tool_result")] == [False, True, False, False]
    assert of(events, "assistant")[1].data == {"text": GEMINI_ANSWER}
    # input_tokens 11000, of which 7800 cached: `input` 3200.
    # Gemini reports no cost: it is estimated from the tokens at the model's price.
    cost = pricing.estimated_cost("google", GEMINI_MODEL, tokens(3200, 108, 7800, 0))
    assert cost > 0
    estimate = {"cost_usd": cost, "cost_estimated": True}
    assert of(events, "usage")[0].data == {"tokens": tokens(3200, 108, 7800, 0), **estimate}
    assert of(events, "result")[0].data == {
        "ok": True, "text": GEMINI_ANSWER, "tokens": tokens(3200, 108, 7800, 0), "session_id": GEMINI_SUCCESS_ID,
        "model": GEMINI_MODEL, **estimate}
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.reason, outcome.failure_class, outcome.retry_at) == (True, "", None, None)
    assert outcome.result_text == GEMINI_ANSWER
    assert outcome.data == {"session_id": GEMINI_SUCCESS_ID, "model": GEMINI_MODEL,
                            "tokens": tokens(3200, 108, 7800, 0), "duration_ms": 514, **estimate}


def test_gemini_invalid_api_key_is_permanent():
    reader, events = gemini_run("api_key_invalid")
    assert [event.kind for event in events] == ["started", "error", "usage", "result"]
    message = events[1].data["message"]
    assert message.startswith('[API Error: {"error":{"code":400,"message":"API key not valid.')
    assert events[1].data["failure_class"] == PERMANENT
    assert of(events, "result")[0].data["ok"] is False
    outcome = reader.outcome(144)
    assert (outcome.ok, outcome.failure_class, outcome.retry_at) == (False, PERMANENT, None)
    assert outcome.reason == message[:199] + "…"
    assert outcome.data["tokens"] == tokens(0, 0, 0, 0)


def test_gemini_rate_limit_it_retried_itself_is_transient():
    reader, events = gemini_run("rate_limit_429")
    # Gemini's own ten attempts, from its retry log on stderr (the tenth line goes on
    # "Max attempts reached" further down: it is read as a retry too).
    retries = of(events, "retry")
    assert [event.data["attempt"] for event in retries] == list(range(1, 11))
    assert retries[0].text.startswith("Attempt 1 failed: You exceeded your current quota")
    assert of(events, "output")[0].text.startswith("Warning: 256-color support not detected.")
    error = of(events, "error")[0]
    # "Please retry in 1.5s.": gemini has retried for four minutes already. No limit that
    # resets at a known time: a transient failure, bounded by `retries`.
    assert error.data["failure_class"] == TRANSIENT
    outcome = reader.outcome(173)
    assert (outcome.ok, outcome.failure_class, outcome.retry_at) == (False, TRANSIENT, None)
    assert outcome.reason == ("[API Error: You exceeded your current quota, please check your plan and billing details. "
                              "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")


def test_gemini_turn_limit_is_permanent():
    reader, events = gemini_run("max_turns")
    assert of(events, "error")[0].data == {
        "failure_class": PERMANENT,
        "message": "Reached max session turns for this session. Increase the number of turns by "
                   "specifying maxSessionTurns in settings.json."}
    outcome = reader.outcome(53)
    assert (outcome.ok, outcome.failure_class) == (False, PERMANENT)
    assert outcome.result_text == "I'll look at the folder first."
    assert outcome.data["tokens"] == tokens(2000, 20, 0, 0)


def test_gemini_error_event_fails_a_successful_result():
    reader, events = gemini_run("session_turns_error_event")
    assert [event.kind for event in events] == ["started", "error", "usage", "result"]
    assert of(events, "result")[0].data["ok"] is False
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, PERMANENT, "Maximum session turns exceeded")
    assert outcome.data["duration_ms"] == 12


def test_gemini_warning_event_is_output():
    # The recorded error event at severity "warning", as gemini sends "Loop detected".
    init, prompt, error, result = lines("gemini", "session_turns_error_event")
    warning = json.dumps({**json.loads(error), "severity": "warning", "message": "Loop detected, stopping execution"})
    reader, events = feed(GeminiAgent(), [init, prompt, warning, result])
    assert [(event.kind, event.text) for event in events][1] == ("output", "Loop detected, stopping execution")
    assert reader.outcome(0).ok


def test_gemini_invalid_stream_result_without_error_field():
    # As nonInteractiveCli.ts ends an invalid stream: an error event, then status "error" alone.
    init, prompt, error, result = lines("gemini", "session_turns_error_event")
    invalid = json.dumps({**json.loads(error), "message": "Invalid stream: The model returned an empty response."})
    failed = json.dumps({**json.loads(result), "status": "error"})
    reader, events = feed(GeminiAgent(), [init, prompt, invalid, failed])
    assert len(of(events, "error")) == 1
    assert reader.outcome(1).reason == "Invalid stream: The model returned an empty response."


@pytest.mark.parametrize("message, error_type, failure_class", [
    ("Operation cancelled.", "FatalCancellationError", TRANSIENT),
    ("Please set an Auth method", "FatalAuthenticationError", PERMANENT),
    ("You have exhausted your daily quota on this model.", "unknown", TRANSIENT),  # no reset time
    ("[API Error: got status: 503 Service Unavailable. The model is overloaded.]", "unknown", TRANSIENT),
    ("[API Error: fetch failed]", "unknown", TRANSIENT),
    ("[API Error: Requested entity was not found. (Status: NOT_FOUND)]", "unknown", PERMANENT),
    ("[API Error: The caller does not have permission (Status: PERMISSION_DENIED)]", "unknown", PERMANENT),
    ("Something nobody has seen", "unknown", PERMANENT),
])
def test_gemini_error_classes(message, error_type, failure_class):
    assert gemini.classify(message, error_type) == (failure_class, None)


def test_gemini_retry_delays(monkeypatch):
    monkeypatch.setattr(gemini.time, "time", lambda: 100.0)
    message = "[API Error: Resource has been exhausted (e.g. check quota). Please retry in 500ms.]"
    assert gemini.classify(message) == (TRANSIENT, None)
    # Past 5 minutes gemini does not retry (a TerminalQuotaError): a limit that resets then.
    message = ("[API Error: You exceeded your current quota. Please retry in 3600s.\nSuggested retry after "
               "3600s.]\nPlease wait and try again later.")
    assert gemini.classify(message) == (WAIT, 3700.0)


# --- gemini: runs that ended badly ------------------------------------------------


def test_gemini_early_exit_says_why_from_stderr():
    # Auth not set up: gemini prints one line on stderr and exits 41, before any event.
    reader, events = feed(GeminiAgent(), ["Warning: 256-color support not detected.", "Invalid auth method selected."])
    assert [event.kind for event in events] == ["output", "output"]
    outcome = reader.outcome(41)
    assert (outcome.ok, outcome.failure_class) == (False, PERMANENT)
    assert outcome.reason == "exit status 41: Invalid auth method selected."


def test_gemini_killed_is_transient():
    reader, _ = feed(GeminiAgent(), lines("gemini", "tools_success")[:-1])  # no result
    outcome = reader.outcome(-15)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, TRANSIENT, "killed by signal 15")


def test_gemini_good_result_needs_exit_status_zero():
    reader, _ = gemini_run("tools_success")
    assert reader.outcome(1).failure_class == PERMANENT
    assert reader.outcome(-9).failure_class == TRANSIENT


def test_gemini_stray_lines_and_unknown_events():
    stream = lines("gemini", "tools_success")
    noise = ["YOLO mode is enabled. All tool calls will be automatically approved.", "", "{oops", "7",
             json.dumps({"type": "thought", "content": "hmm"}),
             json.dumps({"type": "tool_use", "tool_name": "read_file", "parameters": ["not", "a", "mapping"]})]
    reader, events = feed(GeminiAgent(), stream[:2] + noise + stream[2:])
    assert [event.text for event in of(events, "output")] == [noise[0], "{oops", "7", noise[-1]]
    assert reader.outcome(0).ok


def test_gemini_other_tools_read_by_name():
    tool_use = json.loads(lines("gemini", "tools_success")[3])
    calls = [("grep_search", {"pattern": "def main"}, "Grep: def main"),
             ("google_web_search", {"query": "doit"}, "WebSearch: doit"),
             ("write_todos", {"todos": []}, "write_todos"),
             ("run_shell_command", {"command": "pytest -q\necho done"}, "Bash: pytest -q")]
    _, events = feed(GeminiAgent(), [json.dumps({**tool_use, "tool_name": name, "parameters": parameters})
                                     for name, parameters, _ in calls])
    assert [event.text for event in events] == [text for _, _, text in calls]


# --- gemini: the command line -----------------------------------------------------

GEMINI_HEADLESS = ["gemini", "--output-format", "stream-json", "--skip-trust",
                   "--session-id", "3f2b8c1e-0000-4000-8000-000000000001"]


def test_gemini_argv_with_nothing_set():
    assert GeminiAgent().argv(settings("gemini"), CONTEXT) == GEMINI_HEADLESS + ["--approval-mode", "auto_edit"]


def test_gemini_argv_for_typical_settings():
    argv = GeminiAgent().argv(settings(
        "gemini", model="gemini-2.5-pro", permission_mode="yolo",
        allowed_tools=("run_shell_command(pytest)", "read_file"), extra_args=("--sandbox",)), CONTEXT)
    assert argv == GEMINI_HEADLESS + [
        "--approval-mode", "yolo", "--model", "gemini-2.5-pro",
        "--allowed-tools", "run_shell_command(pytest)", "--allowed-tools", "read_file", "--sandbox"]


def test_gemini_settings_checks():
    agent = GeminiAgent()
    assert (agent.name, agent.executable) == ("gemini", "gemini")
    agent.check_settings(settings("gemini"))
    agent.check_settings(settings("gemini", permission_mode="plan", allowed_tools=("read_file",)))
    with pytest.raises(SettingError, match="default, auto_edit, yolo, plan"):
        agent.check_settings(settings("gemini", permission_mode="bypassPermissions"))
    with pytest.raises(SettingError, match="maxSessionTurns"):
        agent.check_settings(settings("gemini", max_turns=5))


# --- what the real CLIs were seen to do against tests/fake_openai.py and tests/fake_gemini.py ---


def test_codex_names_no_model_so_the_setting_is_recorded_as_its_source():
    reader = CodexAgent().reader(settings("codex", model="gpt-5.5"))
    events = [event for line in lines("codex", "command_and_file_change") for event in reader.feed(line)]
    assert events[0].data == {"session_id": CODEX_SUCCESS_ID, "model": "gpt-5.5", "model_source": "settings"}
    assert events[0].text == f"session {CODEX_SUCCESS_ID} (gpt-5.5)"
    outcome = reader.outcome(0)
    assert (outcome.data["model"], outcome.data["model_source"]) == ("gpt-5.5", "settings")


def test_codex_cost_is_estimated_from_its_tokens_at_the_models_price():
    reader = CodexAgent().reader(settings("codex", model="gpt-5.5"))
    events = [event for line in lines("codex", "command_and_file_change") for event in reader.feed(line)]
    cost = pricing.estimated_cost("openai", "gpt-5.5", tokens(500, 135, 4900, 0))
    assert cost > 0
    assert of(events, "usage")[0].data == {"tokens": tokens(500, 135, 4900, 0), "cost_usd": cost, "cost_estimated": True}
    assert of(events, "result")[0].data["cost_usd"] == cost
    outcome = reader.outcome(0)
    assert (outcome.data["cost_usd"], outcome.data["cost_estimated"]) == (cost, True)


def test_codex_without_a_model_setting_has_no_cost():
    reader, events = codex_run("command_and_file_change")
    assert "cost_usd" not in of(events, "usage")[0].data and "cost_usd" not in reader.outcome(0).data


def test_codex_waiting_for_the_network_is_a_transient_retry():
    # Printed about every 10 s while the network is down, so the attempt is never silent.
    reader, events = feed(CodexAgent(), lines("codex", "waiting_for_network"))
    waiting = [event for event in of(events, "retry") if "waiting for network" in event.text]
    assert len(waiting) == 2
    assert waiting[0].text == "Reconnecting... waiting for network (Connection failed: error sending request)"
    assert waiting[0].data == {"error_class": TRANSIENT}
    assert [event.data["attempt"] for event in of(events, "retry") if "attempt" in event.data] == [2, 3, 4, 5]
    assert not of(events, "error")
    assert reader.outcome(-15).failure_class == TRANSIENT  # ended by `timeout`


def test_codex_sub_agent_is_tool_use():
    _, events = feed(CodexAgent(), lines("codex", "collab_tool_call"))
    assert [(event.kind, event.text, event.data) for event in events if event.kind.startswith("tool")] == [
        ("tool_use", "Agent: spawn_agent write notes.md", {"name": "Agent"}),
        ("tool_result", "", {"is_error": False}),
    ]


def test_codex_patch_refused_by_the_read_only_sandbox_leaves_an_event():
    reader, events = feed(CodexAgent(), lines("codex", "patch_rejected_read_only"))
    assert [(event.kind, event.text, event.data) for event in events if event.kind.startswith("tool")] == [
        ("tool_use", "Edit (refused)", {"name": "Edit"}),
        ("tool_result", "patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings",
         {"is_error": True}),
    ]
    assert reader.outcome(0).ok  # the model was told, and answered


def test_gemini_model_is_the_one_that_answered_not_auto():
    reader, events = gemini_run("auto_model")
    assert events[0].data["model"] == "auto"  # init, before gemini chose
    result = of(events, "result")[0]
    assert result.data["model"] == "gemini-3.8-flash"
    outcome = reader.outcome(0)
    assert outcome.ok and outcome.data["model"] == "gemini-3.8-flash"
    # The router's question went to a flash-lite model: its tokens count at its price.
    expected = round(pricing.estimated_cost("google", "gemini-3.5-flash-lite", tokens(400, 50, 600, 0))
                     + pricing.estimated_cost("google", "gemini-3.8-flash", tokens(800, 100, 1200, 0)), 6)
    assert outcome.data["cost_usd"] == result.data["cost_usd"] == expected


def test_gemini_unknown_model_has_no_cost():
    stream = [line.replace("gemini-3.8-flash", "gemini-unreleased-x") for line in lines("gemini", "auto_model")]
    reader, events = feed(GeminiAgent(), stream)
    assert reader.outcome(0).data["model"] == "gemini-unreleased-x"
    assert "cost_usd" not in reader.outcome(0).data and "cost_usd" not in of(events, "usage")[0].data


def test_gemini_cut_short_by_a_sigterm_it_did_not_choose_is_transient():
    # SIGTERM from outside: gemini exits 0 mid-stream, with no result event...
    reader, events = gemini_run("sigterm_mid_stream")
    assert not of(events, "result")
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.failure_class) == (False, TRANSIENT)
    assert outcome.reason == "gemini was cut short (exit status 0, no result)"
    # ...or 1 while it starts, having printed nothing.
    assert GeminiAgent().reader().outcome(1).failure_class == TRANSIENT
    # An exit that says why stays permanent.
    reader, _ = feed(GeminiAgent(), ["Error: API key not valid"])
    assert reader.outcome(1).failure_class == PERMANENT


def test_gemini_trusts_the_batch_folder_through_its_environment():
    # Else headless gemini ignores the folder's .gemini/settings.json, --skip-trust or not.
    assert GeminiAgent().environment(settings("gemini")) == {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    assert CodexAgent().environment(settings("codex")) == {}


@pytest.mark.parametrize("agent, name, model", [(CodexAgent(), "command_and_file_change", "gpt-5.5"),
                                                 (GeminiAgent(), "tools_success", None)])
def test_an_attempt_whose_estimate_passes_the_items_budget_fails_for_good(agent, name, model):
    # Codex and Gemini have no budget of their own; their tokens come with the session's end.
    reader = agent.reader(settings(agent.name, model=model, item_budget_usd=0.001))
    events = [event for line in lines(agent.name, name) for event in reader.feed(line)]
    estimate = of(events, "usage")[0].data["cost_usd"]
    reason = f"reached max budget ($0.001): estimated ${estimate:.4f}"
    assert of(events, "error")[-1].data == {"failure_class": PERMANENT, "message": reason}
    assert of(events, "result")[0].data["ok"] is False and of(events, "result")[0].text == reason
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, PERMANENT, reason)
    assert outcome.data["cost_usd"] == estimate  # still counted toward the batch's budget
    # Within the budget, nothing changes.
    reader = agent.reader(settings(agent.name, model=model, item_budget_usd=1.0))
    for line in lines(agent.name, name):
        reader.feed(line)
    assert reader.outcome(0).ok
