"""The report's logic, on plain data: the history's events as a run writes them, and
what the report makes of them (no process runs)."""

from __future__ import annotations

from batch_tasks.agents import PERMANENT, TRANSIENT, WAIT, retry
from batch_tasks.views import report_data, report_svg


def attempt_ended(item: str, attempt: int, start: float, failure_class: str | None, reason: str = "") -> dict:
    return {"event": "attempt_ended", "t": start + 1, "item": item, "attempt": attempt, "started": start,
            "finished": start + 1, "ok": failure_class is None, "failure_class": failure_class, "reason": reason}


def test_every_failure_class_has_a_bar_of_its_own_colour_in_the_timeline():
    classes = [TRANSIENT, WAIT, PERMANENT, retry.CHECK, retry.CONFLICT]
    events = [attempt_ended(f"g:m{n}", 1, 100.0 + n, failure_class) for n, failure_class in enumerate(classes)]
    segments = report_data._segments(events, run_end=200.0, killed=False)
    assert {s["kind"] for s in segments} == {f"failed-{c}" for c in classes}
    colours = {report_data.KINDS[s["kind"]][1] for s in segments}
    assert len(colours) == len(classes)
    data = {"items": [report_data._blank_item(s["item"]) for s in segments], "segments": segments, "pauses": [],
            "kinds": {kind: {"label": label, "colour": colour} for kind, (label, colour) in report_data.KINDS.items()},
            "run": {"started": 100.0, "workers": 1}, "groups": [], "concurrency": []}
    svg = report_svg.timeline(data)
    assert 'data-kind="failed-conflict"' in svg and 'data-kind="failed-check"' in svg


def test_the_joblogs_seq_goes_on_from_the_last_run_in_the_file(tmp_path):
    from batch_tasks.state.joblog import JobLog

    path = tmp_path / "jobs.log"
    for run in range(2):
        log = JobLog(path)
        for n, key in enumerate(["g:a", "g:b"]):
            log.attempt_started(key, 1, 100.0 + n)
            log.attempt_ended(key, {"attempt": 1, "started": 100.0 + n, "finished": 101.0 + n, "exit_status": 0})
        log.close()
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0][0] == "Seq" and [row[0] for row in rows[1:]] == ["1", "2", "3", "4"]
    assert [row[-1] for row in rows[1:]] == ["g:a", "g:b", "g:a", "g:b"]


def test_a_reports_failure_tail_is_that_runs_output_not_a_later_runs(tmp_path):
    from batch_tasks.state.item_log import attempt_header, failed_header

    log = tmp_path / "output.log"
    log.write_bytes(attempt_header("g:a", 1, "RUN-OLD") + b"old line\n"
                    + failed_header("g:a", 1, "permanent", "exit status 2")
                    + attempt_header("g:a", 2, "RUN-OLD") + b"old again\n"
                    + attempt_header("g:a", 1, "RUN-NEW") + b"new line\n")
    old = report_data._tail(str(log), "g:a", "RUN-OLD").splitlines()
    assert "old line" in old and old[-1] == "old again" and "new line" not in old
    assert report_data._tail(str(log), "g:a", "RUN-NEW").splitlines()[-1] == "new line"
    assert report_data._tail(str(log), "g:a", "RUN-NONE") == ""


def test_a_cause_says_its_exit_status_once():
    assert report_data._cause_text("exit status 2", 2) == "exit status 2"
    assert report_data._cause_text("max turns reached", 1) == "max turns reached (exit status 1)"
    assert report_data._cause_text("interrupted", None) == "interrupted"


def test_the_default_report_is_of_the_latest_run_that_ran_an_item(tmp_path):
    from batch_tasks.run import history

    for run_id, ran in [("20260101T000000Z-aaaaaa", True), ("20260102T000000Z-bbbbbb", True), ("20260103T000000Z-cccccc", False)]:
        log = history.History(tmp_path, run_id)
        log.run_started({"items": ["g:a"]})
        if ran:
            log.attempt_started("g:a", 1, 1.0)
        log.run_ended({"exit_status": 0 if ran else 4})
    assert report_data.choose_run(tmp_path, None) == "20260102T000000Z-bbbbbb"
    assert report_data.choose_run(tmp_path, "20260103T000000Z-cccccc") == "20260103T000000Z-cccccc"  # asked for by name


def test_a_runs_time_is_counted_from_its_process_start_as_its_summarys_is(tmp_path):
    from batch_tasks.run import history

    log = history.History(tmp_path, "20260101T000000Z-aaaaaa")
    log.run_started({"items": ["g:a"], "began": 1000.0})
    log.run_ended({"exit_status": 0})
    events = history.read_run(tmp_path, "20260101T000000Z-aaaaaa")
    assert history.run_summary("20260101T000000Z-aaaaaa", events)["started"] == 1000.0
