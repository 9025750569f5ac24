"""A failed attempt's next one, adjusted to its cause, end to end: real `doit run-batch`, the
real agent CLIs against the fakes of their APIs (which answer as each real API does for that
cause), and the `command` agent. Each test shows the second attempt's command line and prompt
carrying the adjustment, and the item landing."""

import json
import os
import stat
import sys

import fake_gemini
import fake_openai
import pytest
from conftest import FRONT_MATTER
from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, prompt_too_long, text, tool_use

CLAUDE = find_claude()
needs_claude = pytest.mark.skipif(CLAUDE is None and not os.environ.get("CI"),
                                  reason="the claude CLI is not installed: bash .ci/run installs the pinned version")
CODEX, GEMINI = fake_openai.find_codex(), fake_gemini.find_gemini()
needs_codex = pytest.mark.skipif(CODEX is None and not os.environ.get("CI"), reason="the codex CLI is not installed")
needs_gemini = pytest.mark.skipif(GEMINI is None and not os.environ.get("CI"), reason="the gemini CLI is not installed")
# The step before's result is the shared context an overflowed item is retried without.
TWO_STEPS = """\
# Adjusted
## Outline
- [ ] auth: outline the notes
## Write notes
- [ ] auth: write notes/auth.md
"""
OUTLINE = "OUTLINE OF AUTH: a long text every later step of auth is told"
ONE_ITEM = """\
# Adjusted
## Write notes
- [ ] auth: write notes/auth.md
"""


def logging_wrapper(batch, program: str, real: str) -> str:
    """A `program` first on PATH that logs its command line, one JSON list a line, then runs `real`."""
    folder = batch.path / "bin"
    folder.mkdir(exist_ok=True)
    wrapper = folder / program
    wrapper.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                       f"open({str(batch.path / 'argv.log')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                       f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def command_lines(batch) -> list[list[str]]:
    """The agent's command lines, one per attempt (not its `--version` asked before the run)."""
    lines = [json.loads(line) for line in (batch.path / "argv.log").read_text().splitlines()]
    return [line for line in lines if line != ["--version"]]


def claude_batch(batch, extra: str = "", body: str = ONE_ITEM):
    batch.write(body, front_matter=f"---\nagent: claude\npermission_mode: acceptEdits\n"
                                       f"allowed_tools: [Write, Bash, Edit, Read]\nretry_base: 0.2s\n{extra}---\n")


def claude_env(api, batch) -> dict:
    env = cli_env(api.url, batch.path / "home", CLAUDE_CODE_MAX_RETRIES="0")
    env["PATH"] = logging_wrapper(batch, "claude", CLAUDE) + os.pathsep + claude_path_env(CLAUDE)
    return env


def user_texts(body) -> list[str]:
    """Every text a request's user turns hold, in order."""
    texts = []
    for message in body.get("messages", []):
        if message.get("role") == "user":
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            texts += [block.get("text", "") for block in blocks if block.get("type") == "text"]
    return texts


def writes(batch, module: str):
    path = str(batch.path / "notes" / f"{module}.md")
    return [tool_use("Write", {"file_path": path, "content": f"# {module}\n"}), text(f"Wrote {module}.")]


@needs_claude
def test_claude_out_of_turns_goes_on_in_its_session_with_twice_the_turns(batch):
    claude_batch(batch, "max_turns: 1\n")
    with FakeAnthropic(by_prompt={"Module: auth": writes(batch, "auth")}) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
        requests = api.main_requests
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = command_lines(batch)
    assert first[first.index("--max-turns") + 1] == "1" and "--resume" not in first
    assert second[second.index("--max-turns") + 1] == "2"
    assert second[second.index("--resume") + 1] == first[first.index("--session-id") + 1]
    assert "You ran out of turns on write-notes:auth" in user_texts(requests[-1].body)[-1]
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert attempts[0]["reason"].startswith("reached max turns") and "adjusted" not in attempts[0]
    assert attempts[1]["adjusted"]["changes"] == {"max_turns": 2} and attempts[1]["ok"]
    assert "adjusted for max turns: max_turns 1 -> 2, the same session" in result.stdout
    summary = result.stdout.split("\n\n")[-1]
    cost = f"${attempts[1]['cost_usd']:.4f}"
    assert f"adjusted: 1 attempt, {cost}\n  write-notes:auth attempt 2: adjusted for max turns: " \
           f"max_turns 1 -> 2, the same session {cost}" in summary
    assert "- [x] auth:" in batch.taskfile.read_text()


def assert_overflow_retried_fresh(batch, result, first_prompt: str, second_prompt: str, trimmed=True) -> None:
    """The second attempt of write-notes:auth ran in a fresh session, `trimmed` of the step
    before's result, with its own instruction."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert OUTLINE in first_prompt and (OUTLINE not in second_prompt) is trimmed
    assert "write notes/auth.md" in second_prompt
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert attempts[1]["adjusted"]["cause"] == "context_overflow" and attempts[1]["adjusted"]["session"] == "fresh"
    assert attempts[0]["session_id"] != attempts[1]["session_id"]
    assert "adjusted for context overflow" in result.stdout
    assert batch.taskfile.read_text().count("- [x]") == 2


@needs_claude
def test_claude_prompt_too_long_is_retried_fresh_without_the_shared_context(batch):
    claude_batch(batch, body=TWO_STEPS)
    routes = {"Step: Outline": [text(OUTLINE)], "Step: Write notes": [prompt_too_long(), *writes(batch, "auth")]}
    with FakeAnthropic(by_prompt=routes) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=180)
        asked = [" ".join(user_texts(r.body)) for r in api.main_requests]
        asked = [prompt for prompt in asked if "Step: Write notes" in prompt]
    assert_overflow_retried_fresh(batch, result, asked[0], asked[-1])
    assert "--resume" not in command_lines(batch)[-1]
    assert batch.record("write-notes", "auth")["attempts"][1]["adjusted"]["trim"] is True


@needs_codex
def test_codex_out_of_context_window_is_retried_fresh_on_the_larger_model_named(batch):
    batch.write(TWO_STEPS, front_matter="---\nagent: codex\nmodel: gpt-5.4-mini\nretry_base: 0.2s\n"
                                        "adjust: {context_overflow: {model: gpt-5.5}}\n---\n")
    routes = {"Step: Outline": [fake_openai.text(OUTLINE)],
              "Step: Write notes": [fake_openai.context_window_exceeded(),
                                    fake_openai.shell("mkdir -p notes && echo '# auth' > notes/auth.md"),
                                    fake_openai.text("Wrote auth.")]}
    with fake_openai.FakeOpenAI(by_prompt=routes) as api:
        env = fake_openai.codex_env(api, batch.path / "home", CODEX)
        env["PATH"] = logging_wrapper(batch, "codex", CODEX) + os.pathsep + env["PATH"]
        result = batch.run("run-batch", env=env, timeout=180)
        asked = [api.user_text(r.body) for r in api.turns("Step: Write notes")]
    assert_overflow_retried_fresh(batch, result, asked[0], asked[-1], trimmed=False)
    first, second = command_lines(batch)[-2:]
    assert first[first.index("--model") + 1] == "gpt-5.4-mini" and second[second.index("--model") + 1] == "gpt-5.5"
    assert "resume" not in second
    assert batch.record("write-notes", "auth")["attempts"][1]["adjusted"]["changes"] == {"model": "gpt-5.5"}


@needs_gemini
def test_gemini_token_limit_is_retried_fresh_without_the_shared_context(batch):
    batch.write(TWO_STEPS, front_matter="---\nagent: gemini\nmodel: gemini-2.5-flash\n"
                                        "allowed_tools: [write_file]\nretry_base: 0.2s\n---\n")
    path = str(batch.path / "notes" / "auth.md")
    routes = {"Step: Outline": [fake_gemini.text(OUTLINE)],
              "Step: Write notes": [fake_gemini.token_limit(), fake_gemini.write_file(path, "# auth\n"),
                                    fake_gemini.text("Wrote auth.")]}
    with fake_gemini.FakeGemini(by_prompt=routes) as api:
        home = batch.path / "home"
        (home / "tmp").mkdir(parents=True)
        env = {**fake_gemini.gemini_env(api, home, GEMINI), "TMPDIR": str(home / "tmp"),
               "GEMINI_CLI_NO_RELAUNCH": "true"}
        env["PATH"] = logging_wrapper(batch, "gemini", GEMINI) + os.pathsep + env["PATH"]
        result = batch.run("run-batch", env=env, timeout=180)
        asked = [api.user_text(r.body) for r in api.turns("Step: Write notes")]
    assert_overflow_retried_fresh(batch, result, asked[0], asked[-1])
    assert "--resume" not in command_lines(batch)[-1]


def command_batch(batch, extra: str, body: str = ONE_ITEM):
    batch.write(body, front_matter=FRONT_MATTER[:-len("---\n")] + "retry_base: 0.1s\n" + extra + "---\n")


def test_a_command_stopped_while_busy_gets_a_longer_timeout(batch):
    command_batch(batch, "timeout: 4s\n")
    # Busy for 6 s, then 5 s: more than the timeout, less than twice it.
    batch.behave(auth={"talk": 6, "attempts": {"2": {"talk": 5, "write": "prompt-2.txt"}}})
    result = batch.run("run-batch", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert attempts[0]["reason"] == "timed out after 4s"
    assert attempts[1]["adjusted"]["changes"] == {"timeout": 8.0}
    said = "adjusted for hang: timeout 4s -> 8s"
    assert said in (batch.path / "prompt-2.txt").read_text() and said in result.stdout
    assert "- [x] auth:" in batch.taskfile.read_text()
    story = batch.run("batch-log", "write-notes:auth").stdout
    assert "retry: timed out after 4s: retry 1 of 2 in " in story and f"s; {said} (at " in story
    report = json.loads(batch.run("batch-report", "--format", "json", "-o", "-").stdout)
    bars = [bar for bar in report["segments"] if bar["kind"] == "done"]
    assert [bar["reason"] for bar in bars] == [said]


def test_a_command_stopped_while_silent_is_retried_as_before(batch):
    command_batch(batch, "timeout: 3s\n")
    batch.behave(auth={"hang": 30, "attempts": {"2": {"hang": 0}}})
    result = batch.run("run-batch", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert attempts[0]["reason"] == "timed out after 3s" and "adjusted" not in attempts[1]
    assert "adjusted" not in result.stdout


def test_a_command_that_says_its_context_overflowed_is_retried_without_the_shared_context(batch):
    command_batch(batch, "", body=TWO_STEPS)
    batch.behave(**{"outline:auth": {"print": OUTLINE},
                    "write-notes:auth": {"print": "batch-tasks: cause context_overflow", "exit": 1,
                                         "write": "prompt-1.txt",
                                         "attempts": {"2": {"print": "ok", "exit": 0, "write": "prompt-2.txt"}}}})
    result = batch.run("run-batch", timeout=120)
    first, second = ((batch.path / f"prompt-{n}.txt").read_text() for n in (1, 2))
    assert_overflow_retried_fresh(batch, result, first, second)
    assert batch.record("write-notes", "auth")["attempts"][0]["reason"] == "exit status 1 (context_overflow)"


def test_a_command_that_says_it_loops_on_a_tool_error_is_retried_told_its_history(batch):
    command_batch(batch, "")
    batch.behave(auth={"print": "batch-tasks: cause tool_loop", "exit": 1,
                       "attempts": {"2": {"print": "ok", "exit": 0, "write": "prompt-2.txt"}}})
    result = batch.run("run-batch", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    told = (batch.path / "prompt-2.txt").read_text()
    assert "What was tried on this item so far" in told and "- attempt 1: exit status 1 (tool_loop)" in told
    assert batch.record("write-notes", "auth")["attempts"][1]["adjusted"]["history"] is True


# Fails the same way each time until notes/auth.md (where the scripted agent writes its prompt)
# holds the item's history: a prompt that told it.
CHECK = ('check: [python3, -c, "import sys; ok = \'What was tried on this item so far\' in open(\'notes/auth.md\').read(); '
         'print(\'ok\' if ok else \'FAILED notes/auth.md: no history\'); sys.exit(0 if ok else 1)"]\n')


def test_a_command_failing_its_check_the_same_way_twice_starts_fresh_told_its_history(batch):
    command_batch(batch, CHECK)
    (batch.path / "notes").mkdir()
    batch.behave(auth={"write": "notes/auth.md"})
    result = batch.run("run-batch", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert [a.get("adjusted", {}).get("cause") for a in attempts] == [None, None, "same_check"]
    told = (batch.path / "notes" / "auth.md").read_text()
    assert told.count("FAILED notes/auth.md: no history") == 2
    assert "adjusted for same check: a fresh session, told the item's history" in result.stdout
    assert "- [x] auth:" in batch.taskfile.read_text()


@needs_claude
def test_claude_failing_its_check_the_same_way_twice_goes_up_the_escalate_ladder(batch):
    check = ('check: [python3, -c, "import sys; ok = open(\'notes/auth.md\').read().startswith(\'#\'); '
             'print(\'ok\' if ok else \'FAILED notes/auth.md: not a heading\'); sys.exit(0 if ok else 1)"]\n')
    claude_batch(batch, "model: claude-sonnet-4-5\nescalate: [claude-opus-4-1]\n" + check)
    path = str(batch.path / "notes" / "auth.md")
    draft = [tool_use("Write", {"file_path": path, "content": "draft\n"}), text("Wrote a draft.")]
    with FakeAnthropic(by_prompt={"Module: auth": [*draft, *draft, *writes(batch, "auth")]}) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=180)
        requests = api.main_requests
    assert result.returncode == 0, result.stdout + result.stderr
    first, second, third = command_lines(batch)
    assert first[first.index("--model") + 1] == second[second.index("--model") + 1] == "claude-sonnet-4-5"
    assert "--resume" in second  # a check retry goes on in its session, as before
    assert third[third.index("--model") + 1] == "claude-opus-4-1" and "--resume" not in third
    assert requests[-1].body["model"] != requests[0].body["model"]  # (the CLI maps names to its current models)
    told = " ".join(user_texts(requests[-1].body))
    assert "What was tried on this item so far" in told and told.count("FAILED notes/auth.md: not a heading") == 2
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert attempts[2]["adjusted"]["changes"] == {"model": "claude-opus-4-1"}
    assert "same check: model claude-sonnet-4-5 -> claude-opus-4-1" in result.stdout
    assert (batch.path / "notes" / "auth.md").read_text() == "# auth\n"


@needs_claude
def test_claude_looping_on_a_failing_tool_is_retried_fresh_told_its_history(batch):
    claude_batch(batch, "max_turns: 3\n")
    failing = [tool_use("Bash", {"command": "ls no-such-file"})] * 3
    with FakeAnthropic(by_prompt={"Module: auth": [*failing, *writes(batch, "auth")]}) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=180)
        requests = api.main_requests
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = command_lines(batch)
    assert "--resume" not in second and second[second.index("--max-turns") + 1] == "3"  # not more turns
    attempts = batch.record("write-notes", "auth")["attempts"]
    assert attempts[0]["cause"] == "tool_loop" and "failed 3 times in a row" in attempts[0]["reason"]
    told = " ".join(user_texts(requests[-1].body))
    assert "What was tried on this item so far" in told and "Bash: ls no-such-file failed 3 times" in told
    assert "adjusted for tool loop: a fresh session, told the item's history" in result.stdout
    assert "- [x] auth:" in batch.taskfile.read_text()


@needs_claude
def test_more_turns_are_not_given_when_the_budget_cannot_hold_them(batch):
    claude_batch(batch, "max_turns: 1\nbudget_usd: 0.025\n")  # the first attempt costs $0.0174, as much again
    with FakeAnthropic(by_prompt={"Module: auth": writes(batch, "auth")}) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
    assert result.returncode == 1
    assert len(command_lines(batch)) == 1
    failure = batch.record("write-notes", "auth", "failure")
    assert failure["reason"] == ("reached max turns (1) (not adjusted for max turns: max_turns 1 -> 2, the same "
                                 "session: the batch's budget cannot hold it)")
    assert "adjusted:" not in result.stdout.split("\n\n")[-1]


def test_a_dry_run_shows_the_adjustments_by_cause_as_set(batch):
    command_batch(batch, "adjust: {max_turns: {cap: 50}, hang: false}\nescalate: [model-a, model-b]\n",
                  body=TWO_STEPS.replace("## Write notes\n", "## Write notes\n<!-- adjust: {same_check: {escalate: false}} -->\n"))
    result = batch.run("run-batch", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "2 would run, 0 up to date"
    assert "  a failed attempt's next one in outline, by cause (adjust:, escalate:):\n" \
           "    context_overflow: a fresh session, the shared context trimmed\n" \
           "    max_turns: the same session, max_turns x2 up to 50\n" \
           "    tool_loop: after 3 same tool errors, a fresh session told the item's history\n" \
           "    same_check: a fresh session told the item's history, then the next model of escalate: " \
           "['model-a', 'model-b']\n" \
           "    hang: retried as before (adjust: {hang: false})\n" in result.stdout
    # A hint's adjust: starts from the defaults, as any hint replaces the batch's setting.
    assert "  a failed attempt's next one in write-notes, by cause (adjust:, escalate:):\n" in result.stdout
    assert "    same_check: a fresh session told the item's history\n" in result.stdout
    assert "    hang: timeout x2 up to 7200s, when it had output in its last 30s (at most half the timeout)\n" \
           in result.stdout


def test_a_wrong_adjust_setting_is_one_error_at_its_line(batch):
    command_batch(batch, "adjust: {max_turns: {factor: 1}}\n")
    result = batch.run("run-batch", "--dry-run")
    assert result.returncode == 3
    assert result.stderr == "ERROR: task.md:5: setting 'adjust' max_turns.factor must be a number above 1, e.g. 2, not 1\n"
