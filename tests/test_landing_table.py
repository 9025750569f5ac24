"""An item's landing (batch_tasks/landing/landing.py) step by step, on plain data: each step's verdict,
the reason and failure class of each way it fails, where a resumed item goes on, what the
attempt's record keeps. The worktree, the check's run, git's answers and the merge queue are
stand-ins that say what the test tells them; the item's machine and state folder are real.
Real processes and repositories land items in test_one_landing.py and test_landing_steps.py."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from batch_tasks.agents import PERMANENT, Outcome, retry
from batch_tasks.errors import BatchError
from batch_tasks.isolation.workspace import Committed, WorkspaceError
from batch_tasks.isolation.worktree import BranchLocked
from batch_tasks.landing import landing
from batch_tasks.landing.merge_result import CONFLICT, MERGED, MergeResult
from batch_tasks.plan.plan import Item
from batch_tasks.processes.check import Check, CheckResult
from batch_tasks.processes.process import StoppedError
from batch_tasks.redaction import Redactor
from batch_tasks.state import item_log
from batch_tasks.state import item_machine as m
from batch_tasks.state.records import Attempt
from batch_tasks.state.state import BatchState

SECRET = "sk-landing-secret-0123456789"
CHECK = ("pytest", "tests/{group}/{module}", "--rootdir={worktree}")  # "-" first: not a path of the check
PASSED, FAILED = CheckResult(0, 0.5, "ok", False), CheckResult(1, 0.5, "1 failed", False)


@dataclass
class Workspace:
    """An attempt's worktree as landing sees it."""

    changed: bool = True
    touched: tuple[str, ...] = ()  # what the work changed, from its base
    at_base: tuple[str, ...] = ()  # what the repository held before it
    fails_removal: bool = False
    path: Path = Path("/wt/g-a")
    base: str = "base0"
    branch: str = "batch/g-a"
    isolation: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(top="/repo", relative_workdir="."))
    done: list[str] = field(default_factory=list)

    @property
    def workdir(self) -> Path:
        return self.path / "src"

    def tip(self) -> str:
        return "tip1"

    def commit_leftovers(self, allow_empty: bool) -> Committed:
        self.done.append(f"commit allow_empty={allow_empty}")
        return Committed("tip1", made_commit=True, changed=self.changed)

    def discard_leftovers(self) -> list[str]:
        self.done.append("discard")
        return []

    def remove(self) -> None:
        self.done.append("remove")
        if self.fails_removal:
            raise WorkspaceError("its folder is busy")


class MergeQueue:
    def __init__(self, result: MergeResult | Exception):
        self.result, self.merged, self.own_checked = result, [], []

    def merge(self, workspace, check, log, settings, on_step, on_start, on_queued, checked):
        self.merged.append((workspace, check, settings))
        self.own_checked.append(checked)
        on_queued()  # in the queue: its slot given back
        log.write(b"the merge's output\n")
        on_step("merging", "onto batch/task")
        on_start(SimpleNamespace(record=lambda: {"pid": 43}))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def merge_result(status=MERGED, reason="merged") -> MergeResult:
    return MergeResult(status, reason, "base0", "tip1", "int0", "merge1" if status == MERGED else None)


class ItemRun:
    """What landing reads of an item's run and calls back."""

    def __init__(self, tmp_path: Path, isolated=True, check=CHECK, state=m.AGENT_DONE,
                 workspace: Workspace | None = None, merge: MergeResult | Exception | None = None, **settings):
        (tmp_path / "task.md").write_text("# T\n")
        batch = BatchState(tmp_path / "task.md")
        batch.ensure()
        self.folder = batch.item("g", "a")
        self.folder.ensure()
        self.job = SimpleNamespace(
            settings={"check": list(check) if check else None, "check_timeout": None, "allow_empty": False,
                      "protect": ["{check}", "ci/*"], **settings},
            item=Item("g", "a", "do a", "", False, 2, "- [ ] a: do a"), workdir=tmp_path)
        self.workspace = (workspace or Workspace()) if isolated else None
        self.machine = m.ItemMachine(m.Route.of(isolated, bool(check), own_check=settings.get("own_check", True)),
                                     state=state)
        self.run = SimpleNamespace(redactor=Redactor({"API_KEY": SECRET}),
                                   supervisor=SimpleNamespace(stopping=threading.Event()),
                                   merge_queue=MergeQueue(merge or merge_result()))
        self.lands, self.resumable = self.machine.route.lands, False
        self.told, self.kept, self.parked = [], [], []

    def tell_step(self, number: int, step: str, text: str = "") -> None:
        self.told.append((number, step, text))

    def item_environment(self) -> dict[str, str]:
        return {"BATCH_ITEM": "g:a"}

    def park(self, why: str) -> None:
        self.parked.append((self.machine.state, why))

    def keep(self, why: str):
        self.kept.append(why)
        self.workspace = None


def attempt(text="done: see the diff", **data) -> Attempt:
    return Attempt(1, "session", 0.0, "run1", outcome=Outcome(ok=True, result_text=text, data=data))


@pytest.fixture
def checks(monkeypatch):
    """The check's verdicts, in order, and where each ran; git's answers from the workspace,
    to questions about the work's own commits only."""
    ran, verdicts = [], []

    def run(check, worktree, cwd, supervisor, log, redact, on_start, env, sandbox):
        assert supervisor is found.item_run.run.supervisor and redact is found.item_run.run.redactor
        assert env == found.item_run.item_environment() and sandbox is None  # no `sandbox: true` here
        log.write(b"the check's output\n")
        ran.append((check.command(worktree), worktree, cwd))
        on_start(SimpleNamespace(record=lambda: {"pid": 42}))
        verdict = verdicts.pop(0)
        if isinstance(verdict, Exception):
            raise verdict
        return verdict

    def changed_paths(base, tip, cwd):
        assert (base, tip, cwd) == (found.workspace.base, "tip1", found.workspace.isolation.top)
        return list(found.workspace.touched)

    def present_at(commit, paths, cwd):
        assert (commit, cwd) == (found.workspace.base, found.workspace.isolation.top)
        return [path for path in paths if path in found.workspace.at_base]

    def land(item_run: ItemRun, said: Attempt) -> Attempt:
        found.item_run, found.workspace = item_run, item_run.workspace
        landing.land(item_run, said)
        return said

    found = SimpleNamespace(ran=ran, verdicts=verdicts, land=land, item_run=None, workspace=None)
    monkeypatch.setattr(Check, "run", run)
    monkeypatch.setattr(landing, "changed_paths", changed_paths)
    monkeypatch.setattr(landing, "present_at", present_at)
    return found


def test_an_isolated_checked_item_is_committed_checked_and_merged_then_awaits_its_record(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path)
    workspace = item_run.workspace
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and item_run.machine.state == m.MERGED
    assert [state for _, state in item_run.machine.history] == [m.COMMITTED, m.CHECKED, m.QUEUED, m.MERGED]
    assert item_run.parked == [(m.QUEUED, "in the merge queue")]  # its slot given back while it waited
    assert workspace.done == ["commit allow_empty=False", "discard", "remove"] and item_run.workspace is None
    command = ["pytest", "tests/g/a", "--rootdir=/wt/g-a"]
    assert checks.ran == [(command, workspace.path, workspace.workdir)]
    assert item_run.told == [(1, "check", " ".join(command)), (1, "merging", "onto batch/task")]
    assert item_run.run.merge_queue.merged == [(workspace, Check(CHECK, None, "g", "a"), item_run.job.settings)]
    assert said.extra["check"] == PASSED.record() and said.extra["merge"] == merge_result().record()
    assert said.extra["protected"] == {"touched": []} and said.extra["claim"] == "done: see the diff"
    assert "kept" not in said.extra and not item_run.resumable
    assert item_log.processes_of(item_run.folder.events, "run1") == [{"pid": 42}, {"pid": 43}]  # the check's, the merge's
    assert [event["attempt"] for event in map(json.loads, Path(item_run.folder.events).read_text().splitlines())
            if event["kind"] == item_log.PROCESSES] == [1, 1]
    assert Path(item_run.folder.log).read_bytes() == b"the check's output\nthe merge's output\n"


def test_without_its_own_check_the_merged_states_check_is_its_verdict(tmp_path, checks):
    on_merged = CheckResult(0, 2.5, "ok on the merged state", False)
    merged = MergeResult(MERGED, "merged", "base0", "tip1", "int0", "merge1", check=on_merged)
    item_run = ItemRun(tmp_path, merge=merged, own_check=False)
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and [state for _, state in item_run.machine.history] == [m.COMMITTED, m.QUEUED, m.MERGED]
    assert checks.ran == [] and item_run.run.merge_queue.own_checked == [False]  # the queue must check it
    assert said.extra["check"] == on_merged.record()
    checks.verdicts.append(PASSED)
    (tmp_path / "own").mkdir()
    item_run = ItemRun(tmp_path / "own", merge=merged)
    said = checks.land(item_run, attempt())
    assert item_run.run.merge_queue.own_checked == [True] and said.extra["check"] == PASSED.record()  # its own


def test_without_isolation_the_check_runs_in_the_workdir_and_nothing_is_committed_or_merged(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path, isolated=False)
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and item_run.machine.state == m.CHECKED
    assert checks.ran == [(["pytest", "tests/g/a", f"--rootdir={tmp_path}"], tmp_path, tmp_path)]
    assert item_run.run.merge_queue.merged == []


def test_an_item_that_does_not_land_keeps_no_claim(tmp_path, checks):
    item_run = ItemRun(tmp_path, isolated=False, check=None)
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and item_run.machine.state == m.AGENT_DONE and said.extra == {} and checks.ran == []


def test_the_claim_is_the_end_of_the_agents_message_masked(tmp_path, checks):
    checks.verdicts.append(PASSED)
    said = checks.land(ItemRun(tmp_path), attempt("x" * 5000 + f"used {SECRET}"))
    claim = said.extra["claim"]
    assert SECRET not in claim and claim.endswith("used ***") and len(claim) == landing.CLAIM_CHARACTERS - len(SECRET) + 3


@pytest.mark.parametrize("workspace, settings, verdicts, reason, failure, state", [
    (dict(changed=False), {}, [],
     "no changes: the agent changed nothing (allow_empty: true to accept that)", PERMANENT, m.AGENT_DONE),
    (dict(touched=("ci/build.yml", "src/a.py")), {}, [], "touched protected path ci/build.yml", PERMANENT, m.AGENT_DONE),
    (dict(touched=("tests/g/a/test_x.py", "ci/x", "src/a.py"), at_base=("tests/g/a",)), {}, [],
     "touched protected path tests/g/a/test_x.py, touched protected path ci/x", PERMANENT, m.AGENT_DONE),
    (dict(touched=("lib/a/x.py",), at_base=("lib/a",)), {"check": ["run", "{worktree}/lib/{module}"]}, [],
     "touched protected path lib/a/x.py", PERMANENT, m.AGENT_DONE),
    (dict(), {}, [FAILED], "check failed with exit status 1", retry.CHECK, m.COMMITTED),
    (dict(), {}, [CheckResult(None, 0.0, "", False)], "check could not start", retry.CHECK, m.COMMITTED),
], ids=["nothing changed", "protected glob", "the check's own files", "the check's own files by absolute path",
        "check failed", "check could not start"])
def test_each_failed_step_fails_the_attempt_saying_why(tmp_path, checks, workspace, settings, verdicts, reason, failure,
                                                       state):
    checks.verdicts.extend(verdicts)
    workspace = Workspace(**workspace)  # made anew for each run: it notes what is done to it
    item_run = ItemRun(tmp_path, workspace=workspace, **settings)
    said = checks.land(item_run, attempt("it is done", cost_usd=0.5))
    assert (said.outcome.ok, said.outcome.reason, said.outcome.failure_class) == (False, reason, failure)
    assert (said.outcome.result_text, said.outcome.data) == ("it is done", {"cost_usd": 0.5})  # what the agent said stays
    assert item_run.machine.state == state and item_run.run.merge_queue.merged == []
    assert workspace.done[:1] == ["commit allow_empty=False"]  # its protection judged on its commit, not before


@pytest.mark.parametrize("workspace, settings", [
    (dict(changed=False), {"allow_empty": True}),
    (dict(touched=("tests/g/a/new_test.py",), at_base=()), {}),  # the check's folder is the work's to make
    (dict(touched=("ci/a.yml",)), {"protect": ["{check}"]}),
    (dict(touched=("tests/g/a/x.py",), at_base=("tests/g/a",)), {"protect": ["ci/*"]}),
], ids=["allow_empty", "a folder the work makes", "protect without the glob", "protect without {check}"])
def test_what_is_allowed_lands(tmp_path, checks, workspace, settings):
    checks.verdicts.append(PASSED)
    workspace = Workspace(**workspace)
    item_run = ItemRun(tmp_path, workspace=workspace, **settings)
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and item_run.machine.state == m.MERGED
    assert workspace.done[0] == f"commit allow_empty={settings.get('allow_empty', False)}"


def test_an_isolated_item_without_a_check_is_committed_and_merged(tmp_path, checks):
    item_run = ItemRun(tmp_path, check=None, workspace=Workspace(touched=("src/a.py",)))
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and item_run.machine.state == m.MERGED and checks.ran == []
    assert item_run.run.merge_queue.merged[0][1] is None


def test_a_protected_path_the_items_text_names_may_change(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path, workspace=Workspace(touched=("ci/build.yml",)))
    item_run.job.item = Item("g", "a", "fix ci/build.yml", "", False, 2, "- [ ] a: fix ci/build.yml")
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and said.extra["protected"] == {"touched": []}


def test_the_protected_paths_touched_are_kept_masked(tmp_path, checks):
    item_run = ItemRun(tmp_path, workspace=Workspace(touched=(f"ci/{SECRET}",)))
    said = checks.land(item_run, attempt())
    assert said.extra["protected"] == {"touched": ["ci/***"]}


@pytest.mark.parametrize("reason, why", [
    ("merge conflict in shared.py", "merge conflict in shared.py"),
    ("the integration branch moved", "merge conflict: the integration branch moved"),
])
def test_a_merge_that_fails_keeps_the_work_and_is_a_conflict(tmp_path, checks, reason, why):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path, merge=merge_result(CONFLICT, reason))
    workspace = item_run.workspace
    said = checks.land(item_run, attempt())
    assert (said.outcome.reason, said.outcome.failure_class) == (why, retry.CONFLICT)
    assert item_run.kept == [why] and "remove" not in workspace.done and item_run.machine.state == m.QUEUED
    assert said.extra["merge"] == merge_result(CONFLICT, reason).record()


def test_a_locked_branch_fails_for_good_and_the_next_run_goes_on_from_it(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path, merge=BranchLocked("batch/task is locked"))
    said = checks.land(item_run, attempt())
    assert (said.outcome.reason, said.outcome.failure_class) == ("batch/task is locked", PERMANENT)
    assert item_run.resumable and item_run.machine.state == m.QUEUED


def test_git_refusing_a_step_fails_the_attempt_for_good(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path, merge=BatchError("git said no"))
    said = checks.land(item_run, attempt())
    assert (said.outcome.reason, said.outcome.failure_class) == ("landing its work: git said no", PERMANENT)
    assert not item_run.resumable


@pytest.mark.parametrize("verdict, stopping", [(StoppedError(), False), (FAILED, True)],
                         ids=["stopped in the check", "failed because the run stopped"])
def test_a_stop_during_the_check_leaves_the_attempt_without_an_outcome(tmp_path, checks, verdict, stopping):
    checks.verdicts.append(verdict)
    item_run = ItemRun(tmp_path)
    if stopping:
        item_run.run.supervisor.stopping.set()
    said = checks.land(item_run, attempt())
    assert said.outcome is None and item_run.machine.state == m.COMMITTED


def test_a_check_that_passes_as_the_run_stops_still_lands(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path)
    item_run.run.supervisor.stopping.set()
    assert checks.land(item_run, attempt()).outcome.ok and item_run.machine.state == m.MERGED


@pytest.mark.parametrize("state, touched, checked, outcome, after", [
    (m.COMMITTED, (), 1, "ok", m.MERGED),
    (m.CHECKED, (), 0, "ok", m.MERGED),
    (m.COMMITTED, ("ci/x.yml",), 0, "touched protected path ci/x.yml", m.COMMITTED),
    (m.CHECKED, ("ci/x.yml",), 0, "touched protected path ci/x.yml", m.CHECKED),
])
def test_a_resumed_item_is_judged_by_the_protection_set_now_then_goes_on_from_its_step(tmp_path, checks, state, touched,
                                                                                        checked, outcome, after):
    checks.verdicts.append(PASSED)
    workspace = Workspace(touched=touched)
    item_run = ItemRun(tmp_path, state=state, workspace=workspace)
    said = checks.land(item_run, attempt())
    assert (said.outcome.reason or "ok") == outcome and item_run.machine.state == after
    assert len(checks.ran) == checked and "commit allow_empty=False" not in workspace.done  # committed before


def test_a_merged_worktree_that_cannot_be_removed_is_named_in_the_record(tmp_path, checks):
    checks.verdicts.append(PASSED)
    item_run = ItemRun(tmp_path, workspace=Workspace(fails_removal=True))
    said = checks.land(item_run, attempt())
    assert said.outcome.ok and item_run.workspace is None
    assert said.extra["kept"] == {"worktree": "/wt/g-a", "branch": "batch/g-a", "why": "its folder is busy"}


@pytest.mark.parametrize("before, after, reason", [
    ({"refs/heads/main": "a" * 40}, {"refs/heads/main": "a" * 40}, None),
    ({"refs/heads/main": "a" * 40}, {"refs/heads/main": "b" * 40},
     f"the attempt moved refs/heads/main ({'a' * 12} → {'b' * 12}): only its own branch may move"),
    ({}, {"refs/tags/v1": "c" * 40, "refs/heads/x": "d" * 40},
     f"the attempt moved refs/heads/x (none → {'d' * 12}), refs/tags/v1 (none → {'c' * 12}): only its own branch may move"),
    ({"refs/heads/old": "e" * 40}, {}, f"the attempt moved refs/heads/old ({'e' * 12} → deleted): only its own branch may move"),
], ids=["none moved", "moved", "made", "deleted"])
def test_an_attempt_that_moved_another_ref_fails_naming_each(before, after, reason):
    item_run = SimpleNamespace(run=SimpleNamespace(isolation=SimpleNamespace(other_refs=lambda: after)))
    said = attempt(cost_usd=1.0)
    landing.refuse_moved_refs(item_run, said, before)
    assert (said.outcome.reason or None) == reason and said.outcome.data == {"cost_usd": 1.0}
    assert said.outcome.ok is (reason is None)
    if reason:
        assert said.outcome.failure_class == PERMANENT
