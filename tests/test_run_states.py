"""The states of a run that are not failures, told apart everywhere people look: the
board, the panel, plain lines, the summary and `doit batch-status`.

Most drive the Board and its views directly with plain data, as the runner does (some
states, such as skipped, no run reaches yet); the last ones run real batches.
"""

import io
import json
import re
import time

from conftest import wait_for
from rich.console import Console

from batch_tasks.events import AgentEvent
from batch_tasks.views.board import FAILED, INTERRUPTED, NOT_STARTED, RETRYING, RUNNING, SKIPPED, WAITING, Board
from batch_tasks.views.live_view import HEARTBEAT_SECONDS, Panel, view_for
from batch_tasks.views.run_summary import summary


def board_of(*keys, workers=1, **options):
    return Board([(key, key.split(":")[0]) for key in keys], workers=workers, root="/work/batch", **options)


def drawn(board, width=100, height=24) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, height=height, highlight=False).print(Panel(board))
    return out.getvalue().splitlines()


def plain(board):
    out = io.StringIO()
    return view_for(out, board), out


def test_each_state_is_counted_by_its_name():
    board = board_of("g:a", "g:b", "g:c", "g:d", "g:e", "g:f")
    board.started("g:a", 1, "/work/batch/.batch/task/items/g/a/output.log")
    board.started("g:b", 1, "")
    board.retrying("g:b", 1, "server error (529)", time.time() + 30)
    board.not_started("g:c", "an item it depends on failed")
    board.skipped("g:d", "ignored (doit ignore)")
    board.started("g:e", 1, "")
    board.interrupted("g:e")
    totals = board.totals()
    assert {s: totals[s] for s in (RUNNING, RETRYING, NOT_STARTED, SKIPPED, INTERRUPTED, FAILED, WAITING)} == {
        RUNNING: 1, RETRYING: 1, NOT_STARTED: 1, SKIPPED: 1, INTERRUPTED: 1, FAILED: 0, WAITING: 1
    }
    assert [view.key for view in board.flying()] == ["g:a", "g:b"]
    board.finished("g:a", False, {"agent": "claude"}, "exit status 1", ["boom"])
    assert board.totals()[FAILED] == 1


def test_plain_lines_have_a_counter_a_line_per_failed_attempt_and_a_heartbeat():
    board = board_of("g:a", "g:b", "g:c")
    view, out = plain(board)
    board.started("g:a", 1, "")
    board.started("g:b", 1, "")
    board.finished("g:b", True, {"cost_usd": None})
    at = time.time() + 9
    board.retrying("g:a", 1, "server error (529): API Error: 529 Overloaded", at)
    board.paused("claude", at + 3600)
    board.not_started("g:c", "the batch's budget of $5.00 is spent")
    lines = out.getvalue().splitlines()
    assert [line[9:] for line in lines[:3]] == ["[0/3] ▶ g:a", "[0/3] ▶ g:b", "[1/3] ✓ g:b 0.0s"]
    retry = lines[3][9:]
    assert retry.startswith("[1/3] ↻ g:a attempt 1 failed: server error (529): API Error: 529 Overloaded; attempt 2 at ")
    assert re.search(r"attempt 2 at \d\d:\d\d:\d\d \(in [89]\.\ds\)$", retry)
    assert re.fullmatch(r"\[1/3\] ⏸ claude paused for a usage limit until \d\d:\d\d:\d\d \(in 1h0[01]m\)", lines[4][9:])
    assert len(lines) == 5  # a not started item is in the summary, by why, not a line each
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d ", line[:9]) for line in lines)

    board.started("g:a", 2, "")
    board.event("g:a", AgentEvent("tool_use", "Bash: pytest -q"))
    view.tick(time.time() + 1)
    assert len(out.getvalue().splitlines()) == 6  # the start of attempt 2, no heartbeat yet
    now = time.time() + HEARTBEAT_SECONDS + 40
    view.tick(now)
    heartbeat = out.getvalue().splitlines()[-1][9:]
    # g:c, never started, is not counted as ended: a run that stops refusing items does not jump to its end.
    assert re.fullmatch(r"\[1/3\] … g:a running 2m\d\ds, last activity 2m\d\ds ago: Bash: pytest -q", heartbeat)
    view.tick(now + 1)
    assert out.getvalue().splitlines()[-1][9:] == heartbeat  # one heartbeat per silence, not one a second


def test_a_failure_in_plain_lines_carries_its_cause_and_last_ten_lines_indented():
    board = board_of("g:a")
    view, out = plain(board)
    board.started("g:a", 1, "/work/batch/.batch/task/items/g/a/output.log")
    board.finished("g:a", False, None, "exit status 2", [f"line {i}" for i in range(10)])
    lines = out.getvalue().splitlines()
    assert lines[1][9:] == "[1/1] ✗ g:a 0.0s: exit status 2 (log: .batch/task/items/g/a/output.log)"
    assert lines[2:] == [f"    line {i}" for i in range(10)]


def test_the_panel_tells_running_from_waiting_to_retry_and_a_paused_agent():
    board = board_of("review:auth", "review:billing", "review:catalog")
    board.started("review:auth", 1, "")
    board.event("review:auth", AgentEvent("started", "session 0a1b2c3d-uuid (claude-sonnet-4-5)", {"session_id": "0a1b", "model": "claude-sonnet-4-5"}))
    board.started("review:billing", 1, "")
    board.retrying("review:billing", 1, "server error (529)", time.time() + 20)
    board.paused("claude", time.time() + 600)
    lines = drawn(board)
    assert lines[0].startswith("0/3 done · 1 running in review · 1 waiting to retry · ")
    assert re.fullmatch(r"⏸ claude paused for a usage limit until \d\d:\d\d:\d\d \(in (9m5\d|10m00)s\)", lines[1])
    assert lines[2].split() == ["review:auth", "#1", lines[2].split()[2], "started", "(claude-sonnet-4-5)"]  # not the session id
    assert re.fullmatch(r"review:billing  #1  in [12]\ds  waiting to retry: server error \(529\)", lines[3])
    assert "$" not in "\n".join(lines)  # no cost is known: none is shown


def test_the_panel_columns_give_way_least_used_first_and_activity_takes_the_rest():
    board = board_of("extract-interfaces:billing")
    board.started("extract-interfaces:billing", 3, "")
    board.event("extract-interfaces:billing", AgentEvent("usage", "", {"tokens": {"input": 18204, "cache_read": 120410}}))
    board.event("extract-interfaces:billing", AgentEvent("result", "ok", {"cost_usd": 0.184}))
    board.event("extract-interfaces:billing", AgentEvent("tool_use", "Edit " + "src/billing/" * 20 + "service.py"))
    wide = drawn(board, width=250)[1]
    assert len(wide) == 250 and wide.endswith("18,204 tok (+120,410 cached)  $0.1840")
    assert "src/billing/" * 12 in wide  # far past 48 characters
    narrow = drawn(board, width=80)[1]
    assert len(narrow) == 80 and "#3" in narrow and "$" not in narrow and "tok" not in narrow  # cost, tokens go first
    assert narrow.endswith("…") and "Edit src/billing/" in narrow
    cut = drawn(board, width=60)[1]
    assert re.match(r"extract-int…aces:billing  #3  \d+\.\ds  Edit src/", cut)  # a long name gives its middle
    smaller = drawn(board, width=50)[1]
    assert re.match(r"extract-int…aces:billing  \d+\.\ds  Edit src/", smaller) and "#3" not in smaller  # then attempt
    tiny = drawn(board, width=40)[1]
    assert tiny.startswith("extract-int…aces:billing  Edit src/") and len(tiny) == 40  # then time


def test_the_panel_never_grows_taller_than_the_screen():
    board = board_of(*(f"g:m{i}" for i in range(12)))
    for i in range(12):
        board.started(f"g:m{i}", 1, "")
    lines = drawn(board, height=8)
    assert len(lines) == 7 and lines[-1] == "+7 more running"
    assert lines[1].startswith("g:m0") and lines[5].startswith("g:m4")  # the longest running first


def test_the_eta_counts_down_between_completions_and_does_not_depend_on_who_reads_it():
    now = time.time()
    runner = board_of("g:a", "g:b", "g:c", "g:d", "g:e", "g:f", workers=2)  # the runner knows -n
    status = board_of("g:a", "g:b", "g:c", "g:d", "g:e", "g:f")  # batch-status does not
    for board in (runner, status):
        for key in ("g:a", "g:b"):
            board.started(key, 1, "")
            board.items[key].started = now - 10
            board.finished(key, True, {})
            board.items[key].finished = now
        board._done_seconds = [20.0, 2]  # two items done, 10 s each
        for key in ("g:c", "g:d"):
            board.started(key, 1, "")
            board.items[key].started = now - 4
    first, later = runner.totals(now)["eta"], runner.totals(now + 3)["eta"]
    assert first == (2 * 10 + 6 + 6) / 2 and later == first - 3
    assert status.totals(now)["eta"] == first


def test_the_summary_says_what_happened_and_what_to_do_next():
    board = board_of("inventory:auth", "inventory:billing", "extract:auth", "extract:billing", "extract:catalog")
    board.started("inventory:auth", 1, "/work/batch/.batch/task/items/inventory/auth/output.log")
    board.event("inventory:auth", AgentEvent("result", "", {"cost_usd": 0.25}))
    record = {"agent": "claude", "cost_usd": 0.25, "attempts": [{"session_id": "5f1e-failed-session"}]}
    board.finished("inventory:auth", False, record, "max turns reached", ["Edit src/auth.py", "Bash: pytest -q"])
    board.started("inventory:billing", 1, "")
    board.event("inventory:billing", AgentEvent("result", "", {"cost_usd": 0.5}))
    board.interrupted("inventory:billing")
    for key in ("extract:auth", "extract:billing"):
        board.not_started(key, "an item it depends on failed")
    board.skipped("extract:catalog", "ignored by doit ignore")
    lines = summary(board)
    assert lines[0].startswith("0 done, 1 failed, 1 interrupted, 2 not started, 1 skipped, 0 already done in ")
    assert lines[0].endswith(", $0.7500")  # the interrupted attempt's cost counts
    assert lines[1:5] == [
        "failed:",
        "  ✗ inventory:auth 0.0s $0.2500: max turns reached (log: .batch/task/items/inventory/auth/output.log)",
        "      Edit src/auth.py",
        "      Bash: pytest -q",
    ]
    assert "not started: 2 items, an item it depends on failed: extract:auth, extract:billing" in lines
    assert "skipped: 1 item, ignored by doit ignore: extract:catalog" in lines
    assert lines[-2:] == [
        "next: fix inventory:auth (its cause is above), then `doit run-batch` reruns only the 4 items left",
        "  claude --resume 5f1e-failed-session   continues inventory:auth by hand",
    ]


def test_a_spent_budget_says_to_raise_it():
    board = board_of("g:a", "g:b")
    board.started("g:a", 1, "")
    board.finished("g:a", True, {"cost_usd": 5.2})
    board.not_started("g:b", "the batch's budget of $5.00 is spent")
    assert summary(board)[-1] == "next: raise budget_usd in task.md, then `doit run-batch` reruns only the 1 item left"


def test_batch_status_shows_an_item_waiting_to_retry_and_one_interrupted(batch):
    batch.write("# T\n## G\n- [ ] a: one\n- [ ] b: two\n", front_matter=_front_matter(parallel=2))
    batch.behave(**{"g:a": {"sleep": 60}, "g:b": {"sleep": 60}})
    runner = batch.start("run-batch")
    deadline = time.monotonic() + 30
    while batch.runs("start").total() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    events_of_b = batch.state("g", "b") / "events.jsonl"
    # Its agent's last line before it sleeps, else a line logged after the notice would be its latest activity.
    wait_for(lambda: events_of_b.exists() and '"prompt: ' in events_of_b.read_text())
    # The runner's notice of a failed attempt, as events.jsonl carries it (see board_on_disk._read_activity).
    notice = {"t": time.time(), "attempt": 1, "kind": "retry", "text": "server error (529)", "data": {"retry_at": time.time() + 50}}
    with open(events_of_b, "a") as events:
        events.write(json.dumps(notice) + "\n")
    status = batch.run("batch-status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"\n1/2 done|\n0/2 done · 1 running in g · 1 waiting to retry", "\n" + status.stdout)
    assert re.search(r"g:b\s+#1\s+in \d\ds\s+waiting to retry: server error \(529\)", status.stdout)
    runner.send_signal(2)
    runner.communicate(timeout=30)
    after = batch.run("batch-status").stdout
    assert "0 of 2 done, 0 failed, 2 interrupted" in after and "■ g:a interrupted" in after


def _front_matter(parallel):
    from conftest import FRONT_MATTER

    return FRONT_MATTER.replace("agent: command\n", f"agent: command\nparallel: {parallel}\n")


def test_a_retry_and_a_usage_limit_pause_show_as_such_in_plain_lines(batch):
    settings = "retries: 1\nretry_base: 1s\ntransient_exit_codes: [75]\n"
    batch.write("# T\n## G\n- [ ] a: one\n- [ ] b: two\n", front_matter=_front_matter(parallel=1).replace("---\n", "---\n" + settings, 1))
    batch.behave(**{"g:a": {"attempts": {"1": {"exit": 75}}}, "g:b": {"attempts": {"1": {"limit_in": 1.5}}}})
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line[9:] for line in result.stdout.splitlines() if line[:2].isdigit()]
    retry = next(line for line in lines if "↻ g:a" in line)
    # Was: a retry looked like a running item, and plain output said only `▶ g:a (attempt 2)`.
    assert re.fullmatch(r"\[0/2\] ↻ g:a attempt 1 failed: exit status 75: retry 1 of 1 in [\d.]+s; attempt 2 at \d\d:\d\d:\d\d \(in [\d.]+s\)", retry)
    assert lines.index(retry) < lines.index("[0/2] ▶ g:a (attempt 2)")
    assert any(re.fullmatch(r"\[0/2\] ⏸ command paused for a usage limit until \d\d:\d\d:\d\d \(in [\d.]+s\)", line) for line in lines)
    assert lines[-1] == "[2/2] ✓ g:b " + lines[-1].split()[-1]


def test_an_ignored_item_is_skipped_not_failed_nor_not_started(batch):
    batch.write("# T\n## G\n- [ ] a: one\n- [ ] b: two\n")
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    assert batch.run("ignore", "g:b").returncode == 0
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch.runs() == {"g:a": 1}
    summary = result.stdout[result.stdout.index("\n\n") :]
    assert summary.lstrip().startswith("1 done, 0 failed, 1 skipped, ")
    assert "skipped: 1 item, ignored by `doit ignore` (`doit forget` it to run it again): g:b" in summary
    assert "not started" not in summary and "next:" not in summary


def test_always_counts_the_items_it_runs_again_as_done_not_already_done(batch):
    batch.write("# T\n## G\n- [ ] a: one\n- [ ] b: two\n## H\n- [ ] a: three\n")
    assert batch.run("run-batch").returncode == 0
    again = batch.run("run-batch", "-a", "g")
    assert again.returncode == 0, again.stdout + again.stderr
    assert batch.runs() == {"g:a": 2, "g:b": 2, "h:a": 1}
    # Was: `0 done, 0 failed, 2 already done`, for the two items it had just run again.
    assert "\n2 done, 0 failed, 0 already done in " in again.stdout


def test_the_next_line_names_the_task_file_it_was_given(batch):
    batch.write("# T\n## G\n- [ ] a: one\n- [ ] b: two\n", name="plan.md")
    batch.behave(**{"g:a": {"exit": 2}})
    result = batch.run("run-batch", "-T", "plan.md", "-k")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "then `doit run-batch -T plan.md` reruns only the 1 item left" in result.stdout


def test_batch_status_counts_the_runs_workers_in_its_eta(batch):
    # One item of four slots is running and four wait: the ETA is their work over four slots,
    # as the runner counts it, not over the one running (that was 4x the runner's figure).
    batch.write("# T\n## G\n- [ ] quick: one\n- [ ] slow: two\n## H\n- [ ] a: 1\n- [ ] b: 2\n- [ ] c: 3\n- [ ] d: 4\n")
    batch.behave(**{"g:quick": {"sleep": 1}, "g:slow": {"sleep": 60}})
    runner = batch.start("run-batch", "-n", "4")
    try:
        wait_for(lambda: batch.runs().get("g:quick") == 1 and (batch.state("g", "quick") / "result.json").exists())
        time.sleep(1.2)  # the slow one is past the mean: only the waiting items' work is left
        status = batch.run("batch-status")
        assert status.returncode == 0, status.stderr
        eta = float(re.search(r"ETA ([\d.]+)s", status.stdout).group(1))
        mean = batch.record("g", "quick")["duration_s"]
        assert abs(eta - 4 * mean / 4) < 0.3, (eta, mean, status.stdout)
    finally:
        runner.send_signal(2)
        runner.communicate(timeout=30)
