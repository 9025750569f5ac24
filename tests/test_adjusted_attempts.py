"""A failed attempt's next one, adjusted to its cause, end to end: real `doit run-batch`, the
real agent CLIs against the fakes of their APIs (which answer as each real API does for that
cause), and the `command` agent. Each test shows the second attempt's command line and prompt
carrying the adjustment, and the item landing."""

import json
import os
import stat
import sys

import pytest

from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, error, find_claude, text, tool_use

CLAUDE = find_claude()
needs_claude = pytest.mark.skipif(CLAUDE is None and not os.environ.get("CI"),
                                  reason="the claude CLI is not installed: bash .ci/run installs the pinned version")
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


def claude_batch(batch, extra: str = ""):
    batch.write(ONE_ITEM, front_matter=f"---\nagent: claude\npermission_mode: acceptEdits\n"
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
    assert "- [x] auth:" in batch.taskfile.read_text()
