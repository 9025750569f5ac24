"""The Codex adapter, fed the streams the real CLI printed (tests/fixtures/codex/: see the
README there), and its command line.

Where a case was not recorded, the test derives it from a recorded stream and says what
it changed.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time

import pytest
from agent_streams import CONTEXT, feed, lines, of, settings, tokens

from batch_tasks.agents import codex, pricing
from batch_tasks.agents.base import PERMANENT, TRANSIENT, WAIT
from batch_tasks.agents.codex import CodexAgent
from batch_tasks.errors import SettingError

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


def test_an_attempt_whose_estimate_passes_the_items_budget_fails_for_good():
    # Codex has no budget of its own; its tokens come with the session's end.
    reader = CodexAgent().reader(settings("codex", model="gpt-5.5", item_budget_usd=0.001))
    events = [event for line in lines("codex", "command_and_file_change") for event in reader.feed(line)]
    estimate = of(events, "usage")[0].data["cost_usd"]
    reason = f"reached max budget ($0.001): estimated ${estimate:.4f}"
    assert of(events, "error")[-1].data == {"failure_class": PERMANENT, "message": reason}
    assert of(events, "result")[0].data["ok"] is False and of(events, "result")[0].text == reason
    outcome = reader.outcome(0)
    assert (outcome.ok, outcome.failure_class, outcome.reason) == (False, PERMANENT, reason)
    assert outcome.data["cost_usd"] == estimate  # still counted toward the batch's budget
    reader = CodexAgent().reader(settings("codex", model="gpt-5.5", item_budget_usd=1.0))
    for line in lines("codex", "command_and_file_change"):
        reader.feed(line)
    assert reader.outcome(0).ok  # within the budget, nothing changes
