"""The plan cache: data only, signed, keyed on what shapes a plan, and surviving the ticks of a run."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FRONT_MATTER

from batch_tasks.plan import plan_cache, taskfile
from batch_tasks.plan.plan import Plan
from batch_tasks.plan.taskfile import load_plan, parse
from batch_tasks.signing import signing_key
from batch_tasks.state.checkbox import set_checkbox
from batch_tasks.state.state import BatchState

FRONT = "---\ncommand: [x]\nmax_concurrent: {command: 2}\n---\n"
TEXT = FRONT + "# T\n## One\n<!-- parallel: 2 -->\n- [ ] a: first\n  with a body\n- [x] `src/b`: second\n## Two\n- [ ] a: third\n"


@pytest.fixture
def no_parse(monkeypatch):
    """Make parsing fail, to show a plan came from the cache."""

    def refuse(text, path):
        raise AssertionError("parsed, not read from the cache")

    def arm():
        monkeypatch.setattr(taskfile, "parse", refuse)

    return arm


def cache_of(path: Path) -> Path:
    return BatchState(path).root


def test_a_cached_plan_is_the_plan_parsed_afresh(tmp_path, no_parse):
    path = tmp_path / "task.md"
    path.write_text(TEXT)
    fresh = load_plan(path, cache_of(path))
    assert (cache_of(path) / "plan.json").is_file()
    no_parse()
    cached = load_plan(path, cache_of(path))
    assert cached == fresh == parse(TEXT, path)
    assert [item.mark_offset for item in cached.items()] == [item.mark_offset for item in fresh.items()]
    assert cached.settings == {"command": ("x",), "max_concurrent": {"command": 2}}
    assert cached.group("one").limit == 2 and isinstance(cached.groups, tuple)
    assert [cached.task_dep(item) for item in cached.items()] == [[], [], ["one"]]


def test_the_cache_survives_ticks_and_reads_the_marks_as_they_are(tmp_path, no_parse):
    path = tmp_path / "task.md"
    path.write_text(TEXT)
    plan = load_plan(path, cache_of(path))
    written = (cache_of(path) / "plan.json").stat()
    for item, done in zip(plan.items(), (True, False, True)):
        assert set_checkbox(path, plan.group(item.group), item, done, tmp_path / "lock")
    ticked = path.read_text()
    assert ticked == TEXT.replace("[ ]", "[x]").replace("[x] `src/b`", "[ ] `src/b`")
    no_parse()
    again = load_plan(path, cache_of(path))
    assert again == parse(ticked, path)
    assert [item.source_line for item in again.items()] == [item.source_line for item in parse(ticked, path).items()]
    assert [item.done for item in again.items()] == [True, False, True]
    assert (cache_of(path) / "plan.json").stat().st_mtime_ns == written.st_mtime_ns  # read, not rewritten


def test_any_other_change_is_parsed_afresh(tmp_path):
    path = tmp_path / "task.md"
    path.write_text(TEXT)
    load_plan(path, cache_of(path))
    for text in (TEXT.replace("first", "First"), TEXT.replace("- [ ] a: third", "- [ ] a: third\n- [ ] c: more")):
        path.write_text(text)
        assert load_plan(path, cache_of(path)) == parse(text, path)
    # A mark that is no checkbox mark any more is a change, not a tick.
    path.write_text(TEXT)
    load_plan(path, cache_of(path))
    path.write_text(TEXT.replace("- [ ] a: first", "- [-] a: first"))
    with pytest.raises(AssertionError):
        assert load_plan(path, cache_of(path)) == parse(TEXT, path)


def test_a_damaged_cache_is_ignored_and_replaced(tmp_path, no_parse):
    path = tmp_path / "task.md"
    path.write_text(TEXT)
    expected = load_plan(path, cache_of(path))
    cache = cache_of(path) / "plan.json"
    good = cache.read_bytes()
    header, body = good.split(b"\n", 1)
    damaged = [
        b"",
        b"\n",
        good[: len(good) // 2],
        b"not json at all\n" + body,
        header + b"\n" + body[:-5],
        header + b"\n" + body.replace(b'"first"', b'"FIRST"'),  # the signature no longer matches
        json.dumps({**json.loads(header), "marks": [1, 2, 3]}).encode() + b"\n" + body,
        json.dumps({**json.loads(header), "format": 0}).encode() + b"\n" + body,
        bytes(range(256)) * 8,
    ]
    for index, data in enumerate(damaged):
        cache.write_bytes(data)
        assert load_plan(path, cache_of(path)) == expected, index
        assert cache.read_bytes() == good, index  # parsed again, and cached again
    no_parse()
    assert load_plan(path, cache_of(path)) == expected


PAYLOAD = "import pathlib; pathlib.Path({marker!r}).write_text('code ran')"


class RunsCode:
    """Unpickling this runs code: what a crafted plan.pickle would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (PAYLOAD.format(marker=self.marker),))


def forged_cache(batch, marker: Path) -> bytes:
    """A cache with the right key for task.md, as anyone who can read the folder could make it,
    whose plan runs a command of the forger's: only the signature (the user's secret) is missing."""
    path = batch.taskfile
    plan = parse(path.read_text(), path)
    plan_cache.locate_marks(plan, path.read_bytes())
    evil = Plan(
        path=plan.path,
        title=plan.title,
        settings=plan.settings,
        groups=tuple(
            replace(group, settings={**group.settings, "command": ("touch", str(marker))}) for group in plan.groups
        ),
    )
    marks = [item.mark_offset for item in evil.items()]
    body = json.dumps(plan_cache._encode(evil)).encode()
    key = plan_cache._key(path, path.read_bytes(), marks)
    header = {"format": plan_cache.FORMAT, "key": key, "marks": marks, "marks_then": "  ", "signature": "0" * 64}
    return json.dumps(header).encode() + b"\n" + body


def test_a_planted_cache_runs_no_code(batch, tmp_path):
    batch.write("## G\n- [ ] a: one\n- [ ] b: two\n")
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    marker = tmp_path / "PWNED"
    state = cache_of(batch.taskfile)
    state.mkdir(parents=True)
    planted = {
        "plan.pickle": pickle.dumps(RunsCode(str(marker))),
        "plan.json": pickle.dumps(RunsCode(str(marker))),
    }
    for name, data in planted.items():
        (state / name).write_bytes(data)
    for args in (("run-batch", "--dry-run"), ("list", "--all")):
        result = batch.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "g:a" in result.stdout and "g:b" in result.stdout
        assert not marker.exists()

    # A well-formed cache with the right key but not signed with the user's secret: not used.
    (state / "plan.json").write_bytes(forged_cache(batch, marker))
    for args in (("run-batch", "--dry-run"), ("list", "--all"), ("run-batch",)):
        result = batch.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not marker.exists(), args
    assert batch.runs("done") == {"g:a": 1, "g:b": 1}  # task.md's own command ran



def signed_forgery(batch, marker: Path) -> bytes:
    """The forgery, signed with the user's key: an agent runs as the user, and can read it."""
    header, body = forged_cache(batch, marker).split(b"\n", 1)
    header = json.loads(header)
    header["signature"] = plan_cache._signature(signing_key(), header["key"], header["marks_then"], body)
    return json.dumps(header).encode() + b"\n" + body


def test_a_cache_signed_with_the_users_key_runs_no_code(batch, tmp_path):
    """What runs comes from task.md as it is: a cache that lists as the forger wants still runs
    nothing of the forger's, whether items are new, changed by the forgery, or picked by name."""
    batch.write("## G\n- [ ] a: one\n- [ ] b: two\n")
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    marker = tmp_path / "PWNED"
    state = cache_of(batch.taskfile)
    state.mkdir(parents=True)
    (state / "plan.json").write_bytes(signed_forgery(batch, marker))
    assert load_plan(batch.taskfile, state).group("g").settings["command"] == ("touch", str(marker))  # it lists so

    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()
    assert batch.runs("done") == {"g:a": 1, "g:b": 1}
    assert load_plan(batch.taskfile, state).group("g").settings["command"] != ("touch", str(marker))  # replaced

    for args in (("run-batch",), ("run-batch", "g:a"), ("run-batch", "--always")):
        (state / "plan.json").write_bytes(signed_forgery(batch, marker))  # with the items ticked: "changed"
        result = batch.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not marker.exists(), args


def test_the_cache_is_never_read_or_written_through_a_link(tmp_path):
    path = tmp_path / "task.md"
    path.write_text(TEXT)
    elsewhere = tmp_path / "elsewhere.json"
    state = cache_of(path)
    state.mkdir(parents=True)
    load_plan(path, state)
    elsewhere.write_bytes((state / "plan.json").read_bytes())
    (state / "plan.json").unlink()
    (state / "plan.json").symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    assert load_plan(path, state) == parse(TEXT, path)
    assert elsewhere.read_bytes() == before
    assert not (state / "plan.json").is_symlink()  # replaced by a file of its own

    # A state folder that is a link: no cache is kept through it.
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(tmp_path / ".batch")
    (tmp_path / ".batch").symlink_to(outside)
    assert load_plan(path, state) == parse(TEXT, path)
    assert list(outside.iterdir()) == []


def test_a_fifo_planted_as_the_cache_is_not_waited_on(batch):
    """Opening it waited for a writer: every command on the batch hung."""
    batch.write("# T\n## G\n- [ ] a: x\n")
    (batch.path / ".batch" / "task").mkdir(parents=True)
    os.mkfifo(batch.path / ".batch" / "task" / "plan.json")
    result = batch.run("run-batch", "--dry-run", timeout=30)
    assert result.returncode == 0 and "1 would run" in result.stdout, result.stdout + result.stderr


def test_a_run_leaves_a_cache_that_its_ticks_did_not_spoil(batch):
    batch.write("## G\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(12)))
    result = batch.run("run-batch", "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.taskfile.read_text().count("- [x]") == 12
    cache = cache_of(batch.taskfile) / "plan.json"
    written = cache.stat()
    assert "12 already done" in batch.run("run-batch").stdout
    assert cache.stat().st_mtime_ns == written.st_mtime_ns and cache.stat().st_ino == written.st_ino


def test_a_change_to_any_of_the_package_code_is_a_new_key(batch, tmp_path):
    """The key covers every .py file of the package, agents included: with one agent changed,
    the plan cached before is not taken."""
    batch.write("## G\n- [ ] a: one\n")
    package = Path(plan_cache.__file__).parent.parent  # the whole package
    copy = tmp_path / "copy"
    shutil.copytree(package, copy / "batch_tasks", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "from pathlib import Path; from batch_tasks.plan import taskfile; from batch_tasks.state import state; "
        f"p = Path({str(batch.taskfile)!r}); taskfile.load_plan(p, state.BatchState(p).root)"
    )

    def load(pythonpath):
        environment = {**os.environ, "PYTHONPATH": str(pythonpath)}
        subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=environment)
        return (cache_of(batch.taskfile) / "plan.json").read_bytes().split(b"\n", 1)[0]

    original = load(copy)
    assert load(copy) == original  # the same code: the same key
    with open(copy / "batch_tasks" / "agents" / "command.py", "a") as stream:
        stream.write("\n# changed\n")
    assert json.loads(load(copy))["key"] != json.loads(original)["key"]


def test_fields_added_to_the_plan_are_carried_without_a_change_to_the_cache(tmp_path):
    """Whatever another field holds (here the sub-task boxes, tuples of tuples), it comes back."""
    path = tmp_path / "task.md"
    path.write_text(TEXT)
    plan = load_plan(path)
    assert next(plan.items()).also_ticks == ()
    boxes = ((5, "  - [ ] x"), (6, "  - [x] y"))
    groups = tuple(
        replace(group, items=tuple(replace(item, also_ticks=boxes) for item in group.items)) for group in plan.groups
    )
    extended = Plan(path=plan.path, title=plan.title, settings=plan.settings, groups=groups)
    encoded = json.dumps(plan_cache._encode(extended))
    decoded = json.loads(encoded, object_hook=lambda value: plan_cache._decode(value, path.read_bytes(), set()))
    assert decoded == extended
    assert [item.also_ticks for item in decoded.items()] == [boxes] * 3


def test_a_batch_that_cannot_load_leaves_no_cache(batch):
    """A template error is found after task.md is parsed: the plan is not kept all the same."""
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    (batch.path / "broken.j2").write_text("{% if %}\n")
    batch.write("## G\n- [ ] a: one\n", front_matter=FRONT_MATTER.replace("---\n", "---\ntemplate: broken.j2\n", 1))
    for args in (("list",), ("run-batch",), ("run-batch", "--dry-run")):
        result = batch.run(*args)
        assert result.returncode != 0 and "broken.j2" in result.stderr, result.stdout + result.stderr
        assert not (cache_of(batch.taskfile) / "plan.json").exists(), args


def test_a_batch_says_whether_its_plan_was_parsed_from_the_task_file(tmp_path):
    """A run parses task.md again unless its load did (the cache is an agent's to write): a first run,
    with no cache yet, parsed it already, and need not parse 10,000 items twice."""
    from batch_tasks.tasks import batch as batch_mod

    path = tmp_path / "task.md"
    path.write_text(TEXT)
    assert batch_mod.load(path, for_dry_run=True).parsed is True  # no cache yet
    assert batch_mod.load(path, for_dry_run=True).parsed is False  # taken from the cache it left
    assert batch_mod.load(path, for_dry_run=True, trust_cache=False).parsed is True
