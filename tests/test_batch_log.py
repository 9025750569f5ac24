"""`doit batch-log ITEM [-f]`: one item's attempts, readable, from its events; followed live."""

import json
import re
import signal
import threading

from conftest import FRONT_MATTER, wait_for

TASK = "# T\n## Inventory\n- [ ] auth: list the functions\n- [ ] billing: list them\n"


def test_an_items_attempts_and_what_each_printed_and_how_it_ended(batch):
    batch.write(TASK, FRONT_MATTER.replace("---\n", "---\nretries: 1\nretry_base: 0.1s\ntransient_exit_codes: [75]\n", 1))
    batch.behave(**{"inventory:auth": {"print": "looking at src/auth.py", "attempts": {"1": {"exit": 75}}}})
    assert batch.run("run-batch").returncode == 0
    shown = batch.run("batch-log", "inventory:auth")
    assert shown.returncode == 0, shown.stderr
    lines = [re.sub(r"\d\d:\d\d:\d\d", "HH:MM:SS", line) for line in shown.stdout.splitlines()]
    assert lines[0] == "inventory:auth: list the functions"
    assert lines[1] == "attempt 1, HH:MM:SS"
    assert "  HH:MM:SS  looking at src/auth.py" in lines
    assert lines.index("  HH:MM:SS  exit status 75") < lines.index("attempt 2, HH:MM:SS") < lines.index("  HH:MM:SS  exit status 0")
    assert "{" not in shown.stdout  # readable lines, not JSON


def test_an_agents_tool_calls_results_and_errors_read_as_lines(batch):
    batch.write(TASK)
    folder = batch.state("inventory", "billing")
    folder.mkdir(parents=True)
    events = [
        {"t": 1, "attempt": 1, "kind": "started", "text": "session 5f1e (claude-sonnet-4-5)", "data": {"session_id": "5f1e", "model": "claude-sonnet-4-5"}},
        {"t": 2, "attempt": 1, "kind": "tool_use", "text": "Bash: pytest -q", "data": {"name": "Bash"}},
        {"t": 3, "attempt": 1, "kind": "tool_result", "text": "1 failed", "data": {"is_error": True}},
        {"t": 3, "attempt": 1, "kind": "usage", "text": "", "data": {"tokens": {"input": 10}}},
        "not an event",
        {"t": 4, "attempt": 1, "kind": "error", "text": "server error (529): Overloaded\x1b[31m", "data": {}},
        {"t": 5, "attempt": 1, "kind": "result", "text": "done", "data": {"cost_usd": 0.25, "tokens": {"input": 1200, "output": 40}}},
    ]
    (folder / "events.jsonl").write_text("".join((json.dumps(e) if isinstance(e, dict) else e) + "\n" for e in events))
    shown = batch.run("batch-log", "inventory:billing").stdout.splitlines()
    assert [line[12:] for line in shown[2:]] == [
        "started (claude-sonnet-4-5), session 5f1e",
        "→ Bash: pytest -q",
        "  ← error: 1 failed",
        "error: server error (529): Overloaded?[31m",  # no escape reaches the terminal
        "result: done ($0.2500 1,240 tok)",
    ]


def test_follow_prints_events_as_the_item_runs_until_ctrl_c(batch):
    batch.write(TASK)
    shown = batch.path / "shown"  # the agent ends only once its line has been followed: live, not read after
    batch.behave(**{"inventory:auth": {"print": "halfway there", "until": str(shown)}})
    follower = batch.start("batch-log", "-f", "inventory:auth")  # before the item has run at all
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follower.stdout), daemon=True)
    reader.start()
    runner = batch.start("run-batch")
    try:
        wait_for(lambda: any("halfway there" in line for line in seen) or runner.poll() is not None, timeout=30)
    finally:
        shown.touch()
    runner.communicate(timeout=60)
    assert runner.returncode == 0
    wait_for(lambda: any("exit status 0" in line for line in seen), timeout=20)
    follower.send_signal(signal.SIGINT)
    follower.wait(timeout=10)
    reader.join(timeout=10)
    out = "".join(seen)
    assert follower.returncode == 0 and "Traceback" not in out
    assert "halfway there" in out and "exit status 0" in out


def test_an_unknown_item_or_a_group_is_one_line(batch):
    batch.write(TASK)
    typo = batch.run("batch-log", "inventory:auht")
    assert typo.returncode == 3 and typo.stderr == "ERROR: no item 'inventory:auht'; did you mean 'inventory:auth'?\n"
    group = batch.run("batch-log", "inventory")
    assert group.returncode == 3
    assert group.stderr == "ERROR: 'inventory' is a group; name one of its items: inventory:auth, inventory:billing\n"
    assert batch.run("batch-log", "inventory:auth").stdout.endswith("(no events yet: it has not run)\n")
