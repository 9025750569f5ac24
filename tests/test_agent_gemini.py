"""The Gemini adapter, fed the streams the real CLI printed (tests/fixtures/gemini/: see the
README there), and its command line.

Where a case was not recorded, the test derives it from a recorded stream and says what
it changed.
"""

from __future__ import annotations

import json

import pytest
from agent_streams import CONTEXT, feed, lines, of, settings, tokens

from batch_tasks.agents import gemini, pricing
from batch_tasks.agents.base import PERMANENT, TRANSIENT, WAIT
from batch_tasks.agents.gemini import GeminiAgent
from batch_tasks.errors import SettingError

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


def test_an_attempt_whose_estimate_passes_the_items_budget_fails_for_good():
    # Gemini has no budget of its own; its tokens come with the session's end.
    reader = GeminiAgent().reader(settings("gemini", item_budget_usd=0.001))
    events = [event for line in lines("gemini", "tools_success") for event in reader.feed(line)]
    estimate = of(events, "usage")[0].data["cost_usd"]
    reason = f"reached max budget ($0.001): estimated ${estimate:.4f}"
    assert of(events, "error")[-1].data == {"failure_class": PERMANENT, "message": reason}
    assert of(events, "result")[0].data["ok"] is False and of(events, "result")[0].text == reason
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, PERMANENT, reason)
    assert outcome.data["cost_usd"] == estimate  # still counted toward the batch's budget
    reader = GeminiAgent().reader(settings("gemini", item_budget_usd=1.0))
    for line in lines("gemini", "tools_success"):
        reader.feed(line)
    assert reader.outcome(0).ok  # within the budget, nothing changes
