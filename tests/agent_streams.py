"""What the adapter tests share: the streams the real CLIs printed (tests/fixtures/AGENT/,
see the README beside each), fed to an adapter's reader."""

from __future__ import annotations

from pathlib import Path

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

