"""Run history, `--joblog` and `doit batch-report`, on real `doit run-batch` processes: a
batch with successes, a transient failure then a success, a permanent failure, a usage
limit pause and an interruption; then a killed run."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
from chromium import Chromium, executable
from conftest import FRONT_MATTER, BatchFolder, wait_for

from batch_tasks.run import history
from batch_tasks.state.state import BatchState
from batch_tasks.views.report_data import KINDS

PAYLOAD = "<script>document.body.dataset.pwned='script'</script><img src=x onerror=\"document.body.dataset.pwned='img'\">"
MIXED = f"""\
# Mixed {PAYLOAD}
## Work
- [ ] ok1: a plain success {PAYLOAD}
- [ ] ok2: another success
- [ ] flaky: fails once, then succeeds
- [ ] broken: fails for good
- [ ] limited: hits a usage limit once
- [ ] slow: still running when the run is stopped
"""
SETTINGS = "transient_exit_codes: [75]\nretry_base: 0.2s\nretry_cap: 0.4s\n"
PARALLEL_COLUMNS = ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"]




def read_joblog(path: Path) -> list[dict]:
    """A reader of GNU parallel's joblog, as scripts written for it read it."""
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))
    assert rows[0] == PARALLEL_COLUMNS
    lines = []
    for row in rows[1:]:
        assert len(row) == 9, row
        seq, host, start, runtime, send, receive, exitval, sig, command = row
        lines.append({"seq": int(seq), "host": host, "start": float(start), "runtime": float(runtime),
                      "send": int(send), "receive": int(receive), "exitval": int(exitval), "signal": int(sig),
                      "command": command})
    return lines


class Page(HTMLParser):
    """The report's bars, its items table, and its scripts, as the HTML gives them."""

    def __init__(self, text: str):
        super().__init__()
        self.bars, self.item_rows, self.scripts, self.tables = [], [], [], {}
        self._table = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "rect" and "bar" in attributes.get("class", "").split():
            self.bars.append(attributes)
        elif tag == "table":
            self._table = attributes.get("id")
            self.tables[self._table] = attributes.get("class", "")
        elif tag == "tr" and self._table == "items" and "data-key" in attributes:
            self.item_rows.append(attributes["data-key"])
        elif tag == "script":
            self.scripts.append(attributes)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One run of the mixed batch, stopped by Ctrl-C once only `slow` is left running;
    then its report, as HTML and as JSON."""
    batch = BatchFolder(tmp_path_factory.mktemp("mixed"))
    batch.write(MIXED, front_matter=FRONT_MATTER[: -len("---\n")] + SETTINGS + "---\n")
    batch.behave(
        broken={"exit": 2, "print": PAYLOAD},
        flaky={"attempts": {"1": {"exit": 75}}},
        limited={"attempts": {"1": {"limit_in": 1.0}}},
        slow={"sleep": 120},
        **{"*": {"sleep": 0.2}},
    )
    runner = batch.start("run-batch", "-n", "3", "--continue", "--joblog", "jobs.tsv")
    done = {"work:ok1", "work:ok2", "work:flaky", "work:limited"}
    wait_for(lambda: batch.runs("done").keys() >= done and batch.runs("start")["work:slow"] == 1
             and (batch.state("work", "broken") / "failure.json").exists())
    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=30)
    assert runner.returncode == 130, output
    report = batch.run("batch-report", "-o", "report.html")
    assert report.returncode == 0, report.stdout + report.stderr
    as_json = batch.run("batch-report", "--format", "json", "-o", "report.json")
    assert as_json.returncode == 0, as_json.stderr
    return batch, output, json.loads((batch.path / "report.json").read_text())


def records(batch, module: str) -> dict:
    folder = batch.state("work", module)
    path = folder / "result.json" if (folder / "result.json").exists() else folder / "failure.json"
    return json.loads(path.read_text())


def test_the_history_holds_every_attempt_as_the_records_do(mixed):
    batch, output, data = mixed
    run_id = data["run"]["run"]
    assert f"report: doit batch-report --run {run_id}" in output
    events = history.read_run(batch.taskfile.parent / ".batch" / "task", run_id)
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_ended"
    assert events[0]["command_line"][:2] == ["doit", "run-batch"] and events[0]["workers"] == 3
    assert {"batch-tasks", "doit", "python"} <= events[0]["versions"].keys()
    assert events[-1]["totals"]["stopped_by"] == "Ctrl-C" and events[-1]["totals"]["exit_status"] == 130
    ended = [e for e in events if e["event"] == "attempt_ended"]
    for module in ("ok1", "ok2", "flaky", "broken", "limited", "slow"):
        kept = [{k: v for k, v in e.items() if k not in ("event", "t", "item")} for e in ended if e["item"] == f"work:{module}"]
        assert kept == records(batch, module)["attempts"], module
    outcomes = {e["item"]: e["outcome"] for e in events if e["event"] == "item_finished"}
    assert outcomes == {"work:ok1": "done", "work:ok2": "done", "work:flaky": "done", "work:limited": "done",
                        "work:broken": "failed", "work:slow": "interrupted"}
    assert [e["agent"] for e in events if e["event"] == "paused"] == ["command"]
    assert {e["item"] for e in events if e["event"] == "retry_scheduled"} == {"work:flaky", "work:limited"}


def test_the_report_data_classes_every_bar(mixed):
    batch, _, data = mixed
    kinds = {(s["item"], s["attempt"], s["kind"]) for s in data["segments"]}
    assert kinds == {
        ("work:ok1", 1, "done"), ("work:ok2", 1, "done"),
        ("work:flaky", 1, "failed-transient"), ("work:flaky", 1, "waiting"), ("work:flaky", 2, "done"),
        ("work:limited", 1, "failed-wait"), ("work:limited", 1, "paused"), ("work:limited", 2, "done"),
        ("work:broken", 1, "failed-permanent"), ("work:slow", 1, "interrupted"),
    }
    rows = {row["key"]: row for row in data["items"]}
    assert rows["work:flaky"]["outcome"] == "done" and len(rows["work:flaky"]["attempts"]) == 2
    assert [f["item"] for f in data["failures"]] == ["work:broken", "work:slow"]
    assert PAYLOAD in data["failures"][0]["output_tail"]  # the data keeps it as it was; the page escapes it
    assert data["concurrency"] and max(count for _, count in data["concurrency"]) <= 3
    assert data["pauses"][0]["agent"] == "command" and data["pauses"][0]["end"] > data["pauses"][0]["start"]
    assert data["graph"]["groups"][0]["items"] == list(rows)


def test_the_html_bars_match_the_records_and_the_table_holds_every_item(mixed):
    batch, _, data = mixed
    page = Page((batch.path / "report.html").read_text())
    attempts = {(f"work:{m}", a["attempt"]): a for m in ("ok1", "ok2", "flaky", "broken", "limited", "slow")
                for a in records(batch, m)["attempts"]}
    drawn_attempts = [bar for bar in page.bars if bar["data-kind"] not in ("waiting", "paused")]
    assert len(drawn_attempts) == len(attempts)
    for bar in page.bars:
        assert bar["fill"] == KINDS[bar["data-kind"]][1]
        if bar["data-kind"] in ("waiting", "paused"):
            continue
        record = attempts[(bar["data-item"], int(bar["data-attempt"]))]
        assert float(bar["data-start"]) == pytest.approx(record["started"], abs=1e-3)
        assert float(bar["data-end"]) == pytest.approx(record["finished"], abs=1e-3)
    waits = {bar["data-item"]: bar for bar in page.bars if bar["data-kind"] in ("waiting", "paused")}
    assert waits["work:flaky"]["data-kind"] == "waiting" and waits["work:limited"]["data-kind"] == "paused"
    # A wait ends when the next attempt starts.
    assert float(waits["work:flaky"]["data-end"]) == pytest.approx(attempts[("work:flaky", 2)]["started"], abs=1e-3)
    assert page.item_rows == [row["key"] for row in data["items"]] and len(page.item_rows) == 6
    assert "sortable" in page.tables["items"] and "sortable" in page.tables["groups"]


def test_scripts_in_item_texts_and_output_stay_text(mixed):
    batch, _, _ = mixed
    text = (batch.path / "report.html").read_text()
    page = Page(text)
    assert page.scripts == [{"type": "application/json", "id": "report-data"}, {}]  # the data, and the sorting
    assert "<img src=x" not in text and "&lt;script&gt;document.body.dataset.pwned" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text  # nothing to fetch


def test_the_joblog_reads_as_gnu_parallels(mixed):
    batch, _, data = mixed
    lines = read_joblog(batch.path / "jobs.tsv")
    attempts = [(s["item"], s["attempt"]) for s in data["segments"] if s["kind"] not in ("waiting", "paused")]
    assert sorted((line["command"] for line in lines)) == sorted(item for item, _ in attempts)
    assert sorted(line["seq"] for line in lines) == list(range(1, len(lines) + 1))
    by_command = {}
    for line in lines:
        by_command.setdefault(line["command"], []).append(line)
        assert line["host"] == ":" and line["runtime"] >= 0 and line["send"] == line["receive"] == 0
    assert [line["exitval"] for line in by_command["work:flaky"]] == [75, 0]
    assert [line["exitval"] for line in by_command["work:broken"]] == [2]
    assert by_command["work:slow"][0]["signal"] != 0
    record = records(batch, "ok1")["attempts"][0]
    assert by_command["work:ok1"][0]["start"] == pytest.approx(record["started"], abs=1e-3)
    if shutil.which("parallel"):  # GNU parallel itself reads it: the failed attempts are what it would run again
        copy = batch.path / "jobs-copy.tsv"
        shutil.copy(batch.path / "jobs.tsv", copy)
        again = subprocess.run(["parallel", "--retry-failed", "--joblog", str(copy), "--dry-run"],
                               capture_output=True, text=True, timeout=60)
        assert sorted(again.stdout.split()) == sorted(
            line["command"] for line in lines if line["exitval"] != 0 or line["signal"] != 0)


def test_past_runs_are_listed(mixed):
    batch, _, data = mixed
    listing = batch.run("batch-status", "--runs")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith(data["run"]["run"]))
    assert row.split()[4:8] == ["4", "1", "1", "8"]  # done, failed, interrupted, attempts


@pytest.mark.skipif(executable() is None, reason="needs chromium on PATH (bash .ci/run installs it)")
def test_the_report_renders_in_headless_chromium(mixed, tmp_path):
    batch, _, data = mixed
    with Chromium() as browser:
        browser.open(batch.path / "report.html")
        assert browser.errors() == []
        assert browser.evaluate("document.body.dataset.pwned === undefined")
        assert browser.evaluate("document.querySelectorAll('#timeline rect.bar').length") == len(data["segments"])
        assert browser.evaluate("JSON.parse(document.getElementById('report-data').textContent).items.length") == 6
        # Sorting by cost's neighbour, duration: the longest first after two clicks.
        header = "document.querySelectorAll('#items th')[4]"
        browser.evaluate(f"{header}.click(); {header}.click()")
        order = browser.evaluate("Array.from(document.querySelectorAll('#items tbody tr')).map(r => r.dataset.key)")
        longest = sorted(data["items"], key=lambda row: -(row["duration_s"] or 0))[0]["key"]
        assert order[0] == longest and sorted(order) == sorted(row["key"] for row in data["items"])
        browser.screenshot(tmp_path / "report.png", full_page=True)
        assert browser.errors() == []
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def finished_in_history(batch: BatchFolder, key: str) -> bool:
    root = BatchState(batch.taskfile).root
    return any(event["event"] == "item_finished" and event["item"] == key
               for run_id in history.run_ids(root) for event in history.read_run(root, run_id))


def test_a_killed_runs_report_shows_it_up_to_the_kill(batch):
    batch.write("# K\n## G\n- [ ] a: quick\n- [ ] b: slow\n")
    batch.behave(b={"sleep": 120})
    runner = batch.start("run-batch", "-n", "2")
    wait_for(lambda: batch.runs("start")["g:b"] == 1 and finished_in_history(batch, "g:a"))  # written after its result
    runner.kill()
    runner.wait(timeout=10)
    report = batch.run("batch-report", "--format", "json", "-o", "-")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["run"]["killed"] is True
    rows = {row["key"]: row["outcome"] for row in data["items"]}
    assert rows == {"g:a": "done", "g:b": "interrupted"}
    killed = next(s for s in data["segments"] if s["item"] == "g:b")
    assert killed["kind"] == "interrupted" and killed["reason"] == "the run was killed while it ran"
    page = batch.run("batch-report")
    assert page.returncode == 0 and "the run was killed" in (batch.path / "report.html").read_text()
    assert "(killed)" in batch.run("batch-status", "--runs").stdout


def test_a_report_without_runs_or_of_an_unknown_run_says_so(batch):
    batch.write("# N\n## G\n- [ ] a: quick\n")
    nothing = batch.run("batch-report")
    assert nothing.returncode == 3 and "no run recorded yet" in nothing.stderr
    assert batch.run("run-batch").returncode == 0
    unknown = batch.run("batch-report", "--run", "nope")
    assert unknown.returncode == 3 and "no run 'nope' recorded" in unknown.stderr
    assert not (batch.path / "report.html").exists()
    # A run with nothing left to do leaves no history.
    assert batch.run("run-batch").returncode == 0
    assert len(history.run_ids(batch.path / ".batch" / "task")) == 1


def test_history_lines_stay_whole_when_threads_append_at_once(tmp_path):
    recorder = history.History(tmp_path, "r")
    text = "x" * 5000  # longer than a pipe's atomic write: a file opened O_APPEND keeps it whole anyway

    def append(number):
        for attempt in range(50):
            recorder.retry_scheduled(f"g:m{number}", attempt, text, 0.0)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    lines = (tmp_path / "runs" / "r.jsonl").read_bytes().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["cause"] == text for line in lines)
