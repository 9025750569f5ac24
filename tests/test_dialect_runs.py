"""Real `doit run-batch` runs of each dialect's file with the scripted agent: the order
the items ran in (from the agent's own log), the edges `doit batch-graph` prints, and
the bytes of the file after the ticks."""

import re
from pathlib import Path

from conftest import FRONT_MATTER

FIXTURES = Path(__file__).parent / "fixtures" / "dialects"
KIRO_OPTIONAL = "  - [ ]* 2.3 Add property tests for quoting\n    - _Requirements: 2.2_\n"


def write(batch, name: str, text: str | None = None, target: str = "task.md") -> bytes:
    """The fixture (or text) with the scripted agent's settings in its front matter."""
    text = (FIXTURES / name).read_text() if text is None else text
    if text.startswith("---\n"):
        text = FRONT_MATTER + text.split("---\n", 2)[2].lstrip("\n")
        text = text.replace("agent: command\n", 'agent: command\ndescription: "Task list"\n')
    else:
        text = FRONT_MATTER + text
    (batch.path / target).write_text(text)
    return text.encode()


def run_log(batch) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in (batch.path / "runs.log").read_text().splitlines()]


def ran_in_waves(log: list[tuple[str, str]], waves: list[list[str]]) -> None:
    """Every item of a wave starts after every item of the wave before is done."""
    position = {entry: index for index, entry in enumerate(log)}
    for before, after in zip(waves, waves[1:]):
        for earlier in before:
            for later in after:
                assert position[("start", later)] > position[("done", earlier)], (earlier, later, log)
    assert sorted(key for event, key in log if event == "done") == sorted(key for wave in waves for key in wave)


def ran_together(log: list[tuple[str, str]], keys: list[str]) -> None:
    """All of them started before any of them was done."""
    position = {entry: index for index, entry in enumerate(log)}
    assert max(position[("start", key)] for key in keys) < min(position[("done", key)] for key in keys), log


def ticked(before: bytes, lines: list[int]) -> bytes:
    """The file with the checkbox on each of these lines ticked, every other byte kept."""
    out = before.split(b"\n")
    for number in lines:
        out[number - 1] = re.sub(rb"\[ \]", b"[x]", out[number - 1], count=1)
    return b"\n".join(out)


def box_lines(data: bytes, pattern: bytes) -> list[int]:
    return [n for n, line in enumerate(data.split(b"\n"), 1) if re.match(pattern, line)]


def test_speckit_runs_in_order_with_its_parallel_runs_together(batch):
    before = write(batch, "speckit-tasks.md")
    graph = batch.run("batch-graph")
    assert "  implementation-for-user-story-1:T007  ← implementation-for-user-story-1:T006\n" in graph.stdout
    assert "  phase-1-setup:T003  ← phase-1-setup:T001\n" in graph.stdout
    batch.behave(**{"*": {"sleep": 0.2}, "T002": {"sleep": 1.5}, "T003": {"sleep": 1.5}})
    result = batch.run("run-batch", "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    setup, tests, impl = "phase-1-setup:", "tests-for-user-story-1:", "implementation-for-user-story-1:"
    log = run_log(batch)
    ran_in_waves(log, [[setup + "T001"], [setup + "T002", setup + "T003"], [tests + "T004", tests + "T005"],
                       [impl + "T006"], [impl + "T007"], [impl + "T009"]])
    ran_together(log, [setup + "T002", setup + "T003"])
    assert batch.taskfile.read_bytes() == ticked(before, box_lines(before, rb"- \[ \] T0"))


def test_kiro_runs_its_tasks_in_order_and_ticks_each_sub_task(batch):
    before = write(batch, "kiro-tasks.md", (FIXTURES / "kiro-tasks.md").read_text().replace(KIRO_OPTIONAL, ""))
    batch.behave(**{"*": {"sleep": 0.2}, "3": {"sleep": 1.5}, "4": {"sleep": 1.5}})
    result = batch.run("run-batch", "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    key = "implementation-plan:"
    log = run_log(batch)
    ran_in_waves(log, [[key + "1"], [key + "2.1"], [key + "2.2"], [key + "3", key + "4"], [key + "5"]])
    ran_together(log, [key + "3", key + "4"])
    # Each work item's own box; the parent task's box is ticked with them (see test_dialect_ticks).
    after = batch.taskfile.read_bytes().split(b"\n")
    work = [n for n in box_lines(before, rb" *- \[ \] \d") if b"2. Write the CSV writer" not in after[n - 1]]
    assert len(work) == 6 and all(after[n - 1].lstrip().startswith(b"- [x]") for n in work), after


def test_superpowers_runs_one_session_per_task_in_order(batch):
    write(batch, "superpowers-plan.md")
    batch.behave(**{"*": {"sleep": 0.2}, "task-1": {"write": "prompt-1.md"}})
    result = batch.run("run-batch", "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    group = "csv-export-implementation-plan:"
    ran_in_waves(run_log(batch), [[group + "task-1"], [group + "task-2"]])
    prompt = (batch.path / "prompt-1.md").read_text()
    assert "- [ ] **Step 3: Commit**" in prompt and 'git commit -m "Add the CSV writer"' in prompt
    assert "def test_header_row():" in prompt and "**Files:**" in prompt


def test_a_checklist_runs_one_at_a_time_in_document_order(batch):
    before = write(batch, "fix_plan.md", target="fix_plan.md")
    result = batch.run("run-batch", "-n", "4", "-T", "fix_plan.md")
    assert result.returncode == 0, result.stdout + result.stderr
    log = run_log(batch)
    done = [key for event, key in log if event == "done"]
    ran_in_waves(log, [[key] for key in done])
    assert [key.split(":")[1][:12] for key in done] == [
        "fix-the-off-", "run-pytest-t", "run-pytest-t", "remove-the-u", "run-the-whol", "run-the-whol",
    ]
    assert (batch.path / "fix_plan.md").read_bytes() == before.replace(b"- [ ]", b"- [x]")
