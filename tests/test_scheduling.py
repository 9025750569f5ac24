"""Scheduling: pipelining across groups, barriers, caps, and the critical path first.

Each test reads the start and end times the scripted agent logged, so the
order and the overlap are the ones that really happened."""

import shutil

from conftest import FRONT_MATTER


def front_matter(*lines: str) -> str:
    return FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(f"{line}\n" for line in lines))


def timeline(batch) -> dict[str, tuple[float, float]]:
    """item → (first start, last end)."""
    starts, ends = {}, {}
    for line in (batch.path / "runs.log").read_text().splitlines():
        event, item, _, moment = line.split()
        (starts if event == "start" else ends).setdefault(item, float(moment))
    return {item: (starts[item], ends.get(item, float("inf"))) for item in starts}


def most_at_once(spans) -> int:
    spans = list(spans)
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    return peak


TWO_MODULES = "# P\n## One\n- [ ] a: first a\n- [ ] b: first b\n## Two\n- [ ] a: second a\n- [ ] b: second b\n"


def test_with_pipelining_a_module_goes_on_while_another_is_still_busy(batch):
    batch.write(TWO_MODULES, front_matter("pipeline: true", "parallel: 4"))
    batch.behave(**{"*": {"sleep": 0.1}}, **{"one:b": {"sleep": 2.0}})
    assert batch.run("run-batch").returncode == 0
    times = timeline(batch)
    assert times["two:a"][0] < times["one:b"][1]  # module a did not wait for module b
    assert times["two:b"][0] >= times["one:b"][1]


def test_without_pipelining_groups_are_barriers(batch):
    batch.write(TWO_MODULES, front_matter("parallel: 4"))
    batch.behave(**{"*": {"sleep": 0.1}}, **{"one:b": {"sleep": 1.0}})
    assert batch.run("run-batch").returncode == 0
    times = timeline(batch)
    assert times["two:a"][0] >= times["one:b"][1]


def test_staleness_follows_the_pipeline_edges(batch):
    batch.write(TWO_MODULES, front_matter("pipeline: true", "parallel: 4"))
    assert batch.run("run-batch").returncode == 0
    batch.taskfile.write_text(batch.taskfile.read_text().replace("- [x] a: first a", "- [ ] a: first a"))
    dry = batch.run("run-batch", "--dry-run").stdout
    assert "two:a  upstream: one:a will run" in dry and "after: one:a" in dry
    assert "two:b" not in dry and "one:b" not in dry


def test_a_barrier_waits_for_everything_before_and_everything_after_waits_for_it(batch):
    body = "# P\n## One\n- [ ] a: 1\n- [ ] b: 1\n## Two\n<!-- after: all -->\n- [ ] c: 2\n## Three\n- [ ] a: 3\n- [ ] d: 3\n"
    batch.write(body, front_matter("pipeline: true", "parallel: 4"))
    batch.behave(**{"*": {"sleep": 0.1}}, **{"one:b": {"sleep": 1.0}})
    assert batch.run("run-batch").returncode == 0
    times = timeline(batch)
    assert times["two:c"][0] >= max(times["one:a"][1], times["one:b"][1])
    assert times["three:a"][0] >= times["two:c"][1] and times["three:d"][0] >= times["two:c"][1]
    graph = batch.run("batch-graph").stdout
    assert "two:c  ← all of one" in graph and "three:a  ← all of two" in graph


def test_caps_are_never_exceeded(batch):
    body = "# P\n## One\n" + "".join(f"- [ ] m{i}: one\n" for i in range(6))
    body += "## Two\n<!-- parallel: 2 -->\n" + "".join(f"- [ ] m{i}: two\n" for i in range(6))
    batch.write(body, front_matter("pipeline: true", "max_concurrent: {command: 3}"))
    batch.behave(**{"*": {"sleep": 0.3}})
    assert batch.run("run-batch", "-n", "8").returncode == 0
    times = timeline(batch)
    assert most_at_once(times.values()) == 3  # the agent's cap, reached and never passed
    assert most_at_once(span for item, span in times.items() if item.startswith("two:")) <= 2


def test_the_longest_remaining_chain_starts_first_once_there_is_history(batch):
    body = "# P\n## One\n- [ ] x: quick chain\n- [ ] y: long chain\n## Two\n- [ ] x: quick\n- [ ] y: slow\n"
    batch.write(body, front_matter("pipeline: true"))
    batch.behave(**{"*": {"sleep": 0.05}}, **{"two:y": {"sleep": 0.8}})
    assert batch.run("run-batch", "-n", "1").returncode == 0
    first = timeline(batch)
    assert first["one:x"][0] < first["one:y"][0]  # no history: document order

    (batch.path / "runs.log").unlink()
    (batch.path / "again.j2").write_text("Again: {{ item.instruction }}\n")
    batch.taskfile.write_text(batch.taskfile.read_text().replace("agent: command\n", "agent: command\ntemplate: again.j2\n"))
    assert batch.run("run-batch", "-n", "1").returncode == 0
    second = timeline(batch)
    assert second["one:y"][0] < second["one:x"][0]  # y's chain (with two:y) is the longest
    assert second["two:y"][0] < second["one:x"][0]


def start_order(batch) -> list[str]:
    return [line.split()[1] for line in (batch.path / "runs.log").read_text().splitlines() if line.startswith("start ")]


EIGHT_AND_EIGHT = "# P\n## A\n" + "".join(f"- [ ] a{n}: item {n}\n" for n in range(1, 9)) + "## B\n{hint}" + "".join(
    f"- [ ] b{n}: item {n}\n" for n in range(1, 9)
)


def test_one_at_a_time_runs_in_document_order_three_runs_in_a_row(batch):
    expected = [f"a:a{n}" for n in range(1, 9)] + [f"b:b{n}" for n in range(1, 9)]
    for run in range(3):
        (batch.path / "runs.log").unlink(missing_ok=True)
        batch.write(EIGHT_AND_EIGHT.replace("{hint}", ""))
        if run:
            shutil.rmtree(batch.path / ".batch")  # fresh state: no history to rank by
        assert batch.run("run-batch").returncode == 0
        assert start_order(batch) == expected, f"run {run + 1}"


def test_a_parallel_false_group_runs_in_document_order_beside_free_slots(batch):
    batch.write(EIGHT_AND_EIGHT.replace("{hint}", "<!-- parallel: false -->\n"), front_matter("parallel: 4"))
    assert batch.run("run-batch").returncode == 0
    order = start_order(batch)
    assert [key for key in order if key.startswith("b:")] == [f"b:b{n}" for n in range(1, 9)]
    assert most_at_once(span for key, span in timeline(batch).items() if key.startswith("b:")) == 1
