"""Each agent honours some of the agent options; any other one set is refused when task.md
is read, at the line that set it, naming the setting and the agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_tasks.agents import AGENTS
from batch_tasks.agents.base import AGENT_OPTIONS
from batch_tasks.errors import TaskFileError
from batch_tasks.plan import settings as settings_module
from batch_tasks.plan.taskfile import parse

SUPPORTED = {
    "command": {"command", "transient_exit_codes"},
    "claude": {"model", "allowed_tools", "permission_mode", "max_turns", "extra_args", "item_budget_usd"},
    "codex": {"model", "permission_mode", "extra_args", "item_budget_usd"},
    "gemini": {"model", "allowed_tools", "permission_mode", "extra_args", "item_budget_usd"},
}
VALUES = {
    "model": "m1", "allowed_tools": "[Read]", "permission_mode": "default", "max_turns": "3",
    "extra_args": "[--x]", "item_budget_usd": "0.5", "command": "[python3, tool.py]", "transient_exit_codes": "[75]",
}
# A value each agent takes for permission_mode.
MODES = {"claude": "acceptEdits", "codex": "read-only", "gemini": "auto_edit"}


def test_the_agent_options_are_settings():
    assert set(AGENT_OPTIONS) <= set(settings_module.FIELDS)


@pytest.mark.parametrize("agent", sorted(SUPPORTED))
def test_each_agent_declares_what_it_honours(agent):
    assert AGENTS[agent].supports == SUPPORTED[agent]


def front_matter(agent: str, name: str, value: str) -> str:
    lines = [f"agent: {agent}"] + (["command: [python3, tool.py]"] if agent == "command" and name != "command" else [])
    return "---\n" + "\n".join(lines + [f"{name}: {value}"]) + "\n---\n# Group\n- [ ] a: b\n"


CASES = [(agent, name) for agent in sorted(SUPPORTED) for name in AGENT_OPTIONS]


@pytest.mark.parametrize("agent, name", CASES)
def test_an_option_is_taken_by_the_agents_that_honour_it_and_refused_at_its_line_by_the_others(agent, name):
    value = MODES.get(agent, "default") if name == "permission_mode" else VALUES[name]
    text = front_matter(agent, name, value)
    line = text.splitlines().index(f"{name}: {value}") + 1
    if name in SUPPORTED[agent]:
        parse(text, Path("task.md"))
        return
    with pytest.raises(TaskFileError) as caught:
        parse(text, Path("task.md"))
    assert caught.value.line == line
    assert caught.value.message.startswith(f"agent '{agent}' does not take '{name}': ")


def test_a_refusal_says_what_to_do_instead():
    with pytest.raises(TaskFileError) as caught:
        parse(front_matter("codex", "max_turns", "3"), Path("task.md"))
    assert caught.value.message == "agent 'codex' does not take 'max_turns': codex has no turn limit; timeout bounds an attempt"
    with pytest.raises(TaskFileError) as caught:
        parse(front_matter("gemini", "max_turns", "3"), Path("task.md"))
    assert "maxSessionTurns" in caught.value.message
    with pytest.raises(TaskFileError) as caught:
        parse(front_matter("command", "model", "m1"), Path("task.md"))
    assert caught.value.message.endswith("unset it for the group with <!-- model: null -->")


def test_a_group_of_another_agent_refuses_a_batch_wide_option_at_its_agent_hint():
    text = "---\nagent: claude\nmax_turns: 5\n---\n# One\n- [ ] a: b\n# Two\n<!-- agent: codex -->\n- [ ] a: b\n"
    with pytest.raises(TaskFileError) as caught:
        parse(text, Path("task.md"))
    assert (caught.value.line, caught.value.message.split(":")[0]) == (8, "agent 'codex' does not take 'max_turns'")
    # ...and takes it unset for that group, as the README's example does.
    plan = parse(text.replace("<!-- agent: codex -->\n", "<!-- agent: codex -->\n<!-- max_turns: null -->\n"),
                 Path("task.md"))
    assert [group.settings["max_turns"] for group in plan.groups] == [5, None]


def test_a_refused_option_stops_the_run_before_anything_runs(batch):
    batch.write("# Group\n- [ ] a: b\n", front_matter=front_matter("codex", "allowed_tools", "[Read]").split("# Group")[0])
    result = batch.run("run-batch", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 3
    assert result.stderr.strip().endswith(
        "task.md:3: agent 'codex' does not take 'allowed_tools': permission_mode (its --sandbox) limits what it may do")
    assert not (batch.path / ".batch" / "task" / "items").exists()


@pytest.mark.parametrize("agent", ["command", "claude", "codex"])
def test_other_agents_add_nothing_to_the_environment(agent):
    assert AGENTS[agent].environment({}) == {}
