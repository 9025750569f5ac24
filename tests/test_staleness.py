"""Every row of the staleness table: what runs again, what does not, and the reason given."""

import pytest
from conftest import wait_for

TWO_GROUPS = """\
# T
## One
- [ ] a: first step of a
- [ ] b: first step of b
## Two
- [ ] a: second step of a
"""


def dry_run(batch) -> dict[str, str]:
    result = batch.run("run-batch", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()[:-1]  # the last line counts them
    return dict(line.split(None, 1) for line in lines if not line.startswith(" "))  # indented: what it waits for


@pytest.fixture
def ran(batch):
    """TWO_GROUPS, run once to the end."""
    batch.write(TWO_GROUPS)
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.runs() == {"one:a": 1, "one:b": 1, "two:a": 1}
    return batch


def edit(batch, old: str, new: str) -> None:
    text = batch.taskfile.read_text()
    assert old in text
    batch.taskfile.write_text(text.replace(old, new))


def test_new_items_run(batch):
    batch.write(TWO_GROUPS)
    assert dry_run(batch) == {"one:a": "new", "one:b": "new", "two:a": "new"}
    assert batch.runs("start") == {}  # a dry run runs nothing


def test_nothing_changed_nothing_runs(ran):
    assert dry_run(ran) == {}
    ran.run("run-batch")
    assert ran.runs() == {"one:a": 1, "one:b": 1, "two:a": 1}


def test_unticked_by_hand_runs_again_and_so_does_what_follows(ran):
    edit(ran, "- [x] b: first", "- [ ] b: first")
    assert dry_run(ran) == {"one:b": "unticked by hand", "two:a": "upstream: one:b will run"}
    assert ran.run("run-batch").returncode == 0
    assert ran.runs() == {"one:a": 1, "one:b": 2, "two:a": 2}


def test_ticked_by_hand_never_run_is_done(batch):
    batch.write(TWO_GROUPS.replace("- [ ] b:", "- [x] b:"))
    assert dry_run(batch) == {"one:a": "new", "two:a": "new"}
    assert batch.run("run-batch").returncode == 0
    assert batch.runs() == {"one:a": 1, "two:a": 1}


@pytest.mark.parametrize(
    "change, part",
    [
        (("second step of a", "second step of a, carefully"), "instruction"),
        (("## Two\n", "## Two\n<!-- transient_exit_codes: [75] -->\n"), "agent settings"),
    ],
)
def test_changed_items_run_again(ran, change, part):
    edit(ran, *change)
    assert dry_run(ran) == {"two:a": f"changed: {part}"}
    result = ran.run("run-batch")
    assert result.returncode == 0
    assert ran.runs() == {"one:a": 1, "one:b": 1, "two:a": 2}
    assert "- [x] a: second step of a" in ran.taskfile.read_text()


def test_a_changed_item_is_unticked_when_it_starts(ran):
    edit(ran, "second step of a", "second step of a, again")
    go = ran.path / "go"  # the agent works until the test has looked
    ran.behave(**{"two:a": {"until": str(go)}})
    process = ran.start("run-batch")
    try:
        wait_for(lambda: ran.runs("start")["two:a"] == 2 or process.poll() is not None, timeout=30)
        assert "- [ ] a: second step of a, again" in ran.taskfile.read_text()
    finally:
        go.touch()
        process.wait(timeout=30)
    assert "- [x] a: second step of a, again" in ran.taskfile.read_text()


def test_template_change_makes_items_stale(ran):
    (ran.path / "mine.j2").write_text("Do {{ item.instruction }} on {{ item.module }}\n")
    text = ran.taskfile.read_text().replace("agent: command\n", "agent: command\ntemplate: mine.j2\n")
    ran.taskfile.write_text(text)
    assert dry_run(ran) == {
        "one:a": "changed: template",
        "one:b": "changed: template",
        "two:a": "changed: template",
    }


def test_upstream_that_ran_again_makes_downstream_stale(ran):
    ran.run("run-batch", "--always-execute", "one:a")
    assert ran.runs()["one:a"] == 2
    assert dry_run(ran) == {"two:a": "upstream: group 'one' ran again since"}
    assert ran.run("run-batch").returncode == 0
    assert ran.runs() == {"one:a": 2, "one:b": 1, "two:a": 2}


def test_failed_last_time_runs_again(batch):
    batch.write(TWO_GROUPS)
    batch.behave(b={"exit": 1})
    assert batch.run("run-batch").returncode != 0
    assert dry_run(batch) == {"one:b": "failed last time (exit status 1)", "two:a": "new"}
    batch.behave()
    assert batch.run("run-batch").returncode == 0
    assert batch.runs() == {"one:a": 1, "one:b": 1, "two:a": 1}


def test_forgotten_items_run_again(ran):
    (ran.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    forget = ran.run("forget", "one:a")
    assert forget.returncode == 0, forget.stdout + forget.stderr
    assert dry_run(ran) == {"one:a": "forgotten", "two:a": "upstream: one:a will run"}
    assert ran.run("run-batch").returncode == 0
    assert ran.runs() == {"one:a": 2, "one:b": 1, "two:a": 2}
