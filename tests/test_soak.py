"""The promise of a batch left running overnight, in one test: a 50-item batch where a
third of the attempts fail transiently, some hang, one meets a usage limit that
resets a few seconds later, and the runner is killed with SIGKILL twice at random
moments while the user edits task.md. It must end with every item done, each
item's agent having succeeded exactly once, no process left, and every edit kept."""

import json
import random
import signal
import time

import psutil

from conftest import FRONT_MATTER

GROUPS, MODULES = 5, 10
SEED = 20261124


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def faults(rng: random.Random) -> dict:
    behaviours = {}
    for g in range(GROUPS):
        for m in range(MODULES):
            first = {}
            roll = rng.random()
            if roll < 0.32:
                first = {"exit": 75}
            elif roll < 0.42:
                first = {"hang": 60}
            behaviour = {"sleep": rng.uniform(0.1, 0.4)}
            if first:
                behaviour["attempts"] = {"1": first, "2": {"exit": 75} if rng.random() < 0.4 else {}}
            behaviours[f"g{g}:m{m}"] = behaviour
    behaviours["g2:m3"] = {"sleep": 0.2, "attempts": {"1": {"limit_in": 3}}}
    return behaviours


def test_fifty_items_two_kills_transient_failures_hangs_and_a_limit(batch):
    rng = random.Random(SEED)
    body = "# Soak\n\nProse the user will edit.\n"
    for g in range(GROUPS):
        body += f"\n## G{g}\n" + "".join(f"- [ ] m{m}: step {g} of module {m}\n" for m in range(MODULES))
    settings = ["parallel: 8", "transient_exit_codes: [75]", "retries: 3", "retry_base: 0.1s",
                "retry_cap: 0.5s", "idle_timeout: 2s"]
    batch.write(body, FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(s + "\n" for s in settings)))
    batch.behave(**faults(rng))

    edits = [
        ("Prose the user will edit.", "Prose the user edited during run 1."),
        ("## G3\n", "## G3\nA line the user added above G3's items during run 2.\n"),
        (None, "\nA closing note the user appended during run 3.\n"),
    ]
    kills, runs = 0, 0
    while True:
        runs += 1
        runner = batch.start("run-batch")
        if kills < 2:
            time.sleep(rng.uniform(1.5, 4.0))
        if runs <= len(edits):
            old, new = edits[runs - 1]
            text = batch.taskfile.read_text()
            batch.taskfile.write_text(text + new if old is None else text.replace(old, new))
        if kills < 2 and runner.poll() is None:
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            kills += 1
            continue
        output, _ = runner.communicate(timeout=120)
        if runner.returncode == 0 or runs > 6:
            break
    done = batch.runs("done")
    print("soak: runs", runs, "kills", kills, "exit", runner.returncode, "done", sum(done.values()))
    assert runner.returncode == 0, output
    assert kills == 2

    text = batch.taskfile.read_text()
    assert text.count("- [x] m") == GROUPS * MODULES and "- [ ] m" not in text
    for _, new in edits:
        assert new.strip() in text

    keys = {f"g{g}:m{m}" for g in range(GROUPS) for m in range(MODULES)}
    duplicates = {key: count for key, count in done.items() if count != 1}
    assert set(done) == keys and not duplicates, (duplicates, output)

    pids = {int(line.split()[2]) for line in (batch.path / "runs.log").read_text().splitlines()}
    assert not [pid for pid in pids if alive(pid)]

    attempts = [a for key in keys for a in json.loads((batch.state(*key.split(":")) / "result.json").read_text())["attempts"]]
    by_class = {}
    for attempt in attempts:
        if not attempt["ok"]:
            by_class[attempt["failure_class"]] = by_class.get(attempt["failure_class"], 0) + 1
    figures = {
        "runs": runs, "kills survived": kills, "agent starts": sum(batch.runs("start").values()),
        "attempts recorded": len(attempts), "failures by class": by_class, "items lost": len(keys) - len(done),
        "duplicate successes": len(duplicates), "orphans": 0,
    }
    print("soak:", json.dumps(figures))
    assert by_class.get("transient", 0) >= 10 and by_class.get("wait", 0) == 1
