"""The promise of a batch left running overnight. First, a 50-item batch where a
third of the attempts fail transiently, some hang, one meets a usage limit that
resets a few seconds later, and the runner is killed with SIGKILL twice at random
moments while the user edits task.md. It must end with every item done, each
item's agent having succeeded exactly once, no process left, and every edit kept.
Then the kill loops: 80 items killed 15 times, then half reworded and killed 15
times again (see below). `pytest -s` shows their figures."""

import json
import random
import re
import signal
import sys
import time
from collections import Counter

import psutil
import pytest
from conftest import FRONT_MATTER, alive

GROUPS, MODULES = 5, 10
SEED = 20261124


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


# Between an agent's exit and its runner's record of it there is a moment no runner can
# close (a few milliseconds, over 0.2 s on a busy machine), and SIGKILL takes a moment to
# end a runner (its memory goes before its files close). An agent that ends in either is
# recorded by the run's watchdog, which holds its exit status, and no success is excused:
# the figures count the successes that met a kill so (within SETTLE before it, or DYING
# after it was sent), to show the window was there.
SETTLE = 0.5
DYING = 0.2


# Beside other tests: its agents print at once, then are silent for 0.4 s at most; one that a
# loaded machine kept silent past the idle timeout is stopped before it logs its success, and
# is retried, as a hung one is.
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
    kills, runs, killed_at = 0, 0, []
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
            killed_at.append(time.time())
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
    raced = [key for key, at in successes(batch) if any(-DYING < kill - at < SETTLE for kill in killed_at)]
    duplicates = {key: count for key, count in done.items() if count > 1}
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
        "duplicate successes": len(duplicates),
        "successes that met a kill (see SETTLE and DYING)": len(raced),
        "orphans": 0,
    }
    print("soak:", json.dumps(figures))
    assert by_class.get("transient", 0) >= 10 and by_class.get("wait", 0) == 1


# The kill loops: 80 items whose agents start helpers that hold their output (and
# background helpers and daemons), the runner killed with SIGKILL at random moments,
# then half of them reworded (stale, with what waits on them) and killed again. Each
# loop ends with a clean run, and nothing lost, nothing paid for twice, no wrong
# tick, no process left.

KILL_GROUPS, KILL_MODULES, KILLS = 4, 20, 15
KILL_SEED = 20261201
HELPER_FILES = ("helper", "background", "daemon", "child")
HEADER = re.compile(r"^=== \S+ attempt \d+ of run (\S+) at ", re.MULTILINE)
KEYS = [f"g{g}:m{m}" for g in range(KILL_GROUPS) for m in range(KILL_MODULES)]


def helpers_at_work(rng: random.Random) -> dict:
    """Short agents; about half start a helper holding their stdout (some talk, a few ignore
    SIGTERM), some a background helper or a daemon; a few fail transiently once."""
    behaviours = {}
    for key in KEYS:
        behaviour = {"sleep": rng.uniform(0.03, 1.0)}
        roll = rng.random()
        if roll < 0.5:
            behaviour.update(holder=rng.uniform(2, 8), holder_talks=rng.random() < 0.4,
                             holder_stubborn=rng.random() < 0.05)
        elif roll < 0.6:
            behaviour["background"] = True
        elif roll < 0.66:
            behaviour["daemon"] = True
            if rng.random() < 0.3:
                behaviour["daemon_env"] = "clear"  # found by its cgroup alone
        if rng.random() < 0.1:
            behaviour["attempts"] = {"1": {"exit": 75}}
        behaviours[key] = behaviour
    return behaviours


def successes(batch) -> list[tuple[str, float]]:
    """Each success the agents wrote to runs.log: the item, and when."""
    log = batch.path / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(line.split()[1], float(line.split()[3])) for line in lines if line.startswith("done ")]


class KillLoop:
    """Runs `doit run-batch -n 8`, kills it with SIGKILL at random moments, then runs it to
    its end; keeps every pid it sees, to look for leftovers after."""

    def __init__(self, batch, rng: random.Random):
        self.batch, self.rng = batch, rng
        self.pids: set[int] = set()
        self.kills: list[float] = []
        self.runner = None
        self.met_kills = 0  # successes that met a kill, in the loops so far

    def note_helpers(self) -> None:
        for name in HELPER_FILES:
            for path in self.batch.path.glob(f"{name}-*.pid"):
                text = path.read_text().strip()
                if text.isdigit():
                    self.pids.add(int(text))

    def wait_for_a_moment(self, runner) -> None:
        """A random moment: one kill in four a while after the runner started (in its start-up
        and recovery, often); the others after the few successes of its own it had by then, so
        that on a busy machine a kill still lands mid-work and no loop ends before its kills."""
        started_with = len(successes(self.batch))
        if self.rng.random() < 0.25:
            deadline, wanted = time.monotonic() + self.rng.uniform(0.1, 1.5), None
        else:
            deadline, wanted = time.monotonic() + 30, started_with + self.rng.randint(0, 2)
        while time.monotonic() < deadline and runner.poll() is None:
            self.note_helpers()
            if wanted is not None and len(successes(self.batch)) >= wanted and self.batch.runs("start"):
                time.sleep(self.rng.uniform(0.0, 1.0))
                return
            time.sleep(0.05)

    def run(self, kills: int, at_least: int | None = None) -> dict:
        """Up to `kills` kills mid-work; the batch may end by itself after `at_least` of them."""
        try:
            return self._run(kills, kills if at_least is None else at_least)
        finally:
            if self.runner is not None and self.runner.poll() is None:  # a check failed mid-loop
                self.runner.kill()
                self.runner.wait()

    def _run(self, kills: int, at_least: int) -> dict:
        started, starts, dones = time.monotonic(), self.batch.runs("start"), self.batch.runs("done")
        before = len(self.kills)
        while len(self.kills) - before < kills:
            runner = self.runner = self.batch.start("run-batch", "-n", "8")
            self.wait_for_a_moment(runner)
            if runner.poll() is not None:
                output, _ = runner.communicate()
                if len(self.kills) - before >= at_least:
                    break  # it did all that was left between two kills: the clean run below has nothing to do
                raise AssertionError(f"the batch ended before kill {len(self.kills) - before + 1} of {kills}:\n{output}")
            runner.send_signal(signal.SIGKILL)
            self.kills.append(time.time())
            runner.wait(timeout=10)
        left = sum((Counter(KEYS) - self.batch.runs("done")).values()) if not dones else None
        runner = self.runner = self.batch.start("run-batch", "-n", "8")
        while runner.poll() is None:
            self.note_helpers()
            time.sleep(0.05)
        output, _ = runner.communicate()
        self.note_helpers()
        self.pids |= {int(line.split()[2]) for line in (self.batch.path / "runs.log").read_text().splitlines()}
        figures = {"kills": len(self.kills) - before, "exit": runner.returncode, "output": output,
                   "attempts started": sum((self.batch.runs("start") - starts).values()),
                   "successes": sum((self.batch.runs("done") - dones).values()),
                   "wall time": round(time.monotonic() - started, 1)}
        if left is not None:
            figures["left for the clean run"] = left
        return figures

    def raced(self) -> dict[str, list[float]]:
        """Each item's successes, as how long after each the next kill came (None: none came;
        negative: the kill came first, by less than DYING)."""
        raced: dict[str, list[float]] = {}
        for key, at in successes(self.batch):
            after = [kill - at for kill in self.kills if kill > at - DYING]
            raced.setdefault(key, []).append(round(min(after), 3) if after else None)
        return raced

    def leftovers(self) -> list[int]:
        """Live processes the batch started: a pid it logged, or one carrying one of its run
        ids, or an attempt marker in the batch's folder."""
        run_ids = set()
        for log in self.batch.path.glob(".batch/**/output.log"):
            run_ids |= set(HEADER.findall(log.read_text(errors="replace")))
        found = {pid for pid in self.pids if alive(pid)}
        for process in psutil.process_iter():
            try:
                env = process.environ()
                ours = env.get("BATCH_RUN_ID") in run_ids or (
                    "BATCH_ATTEMPT_ID" in env and process.cwd() == str(self.batch.path))
                if ours and alive(process.pid):
                    found.add(process.pid)
            except psutil.Error:
                continue
        return sorted(found)


def kill_loop_text(front_matter: str, reworded: set[str] = frozenset(), box: str = "[ ]") -> str:
    body = "# Kill loop\n"
    for g in range(KILL_GROUPS):
        body += f"\n## G{g}\n"
        for m in range(KILL_MODULES):
            tail = ", reworded" if f"g{g}:m{m}" in reworded else ""
            body += f"- {box} m{m}: step {g} of module {m}{tail}\n"
    return front_matter + body


def check_loop(batch, loop: KillLoop, figures: dict, expected_text: str, needed: Counter) -> None:
    """Nothing lost, nothing paid for twice, no wrong tick, no process left; the figures printed."""
    done, kills_after = batch.runs("done"), loop.raced()
    lost = [key for key in KEYS if done[key] < needed[key] or not (batch.state(*key.split(":")) / "result.json").exists()]
    extra = {key: done[key] - needed[key] for key in KEYS if done[key] > needed[key]}
    raced = sum(1 for key in KEYS for after in kills_after.get(key, []) if after is not None and after < SETTLE)
    left = loop.leftovers()
    output = figures.pop("output")
    met, loop.met_kills = raced - loop.met_kills, raced  # this loop's own
    figures.update({"items lost": len(lost), "repeats": sum(extra.values()), "leftovers": len(left),
                    "successes that met a kill (see SETTLE and DYING)": met})
    print("soak kill loop:", json.dumps(figures))
    for key in extra:
        print(f"soak kill loop: {key} succeeded {done[key]} times for {needed[key]} needed; the next kill came",
              kills_after[key], "s after each")
    try:
        assert figures["exit"] == 0, output
        assert not lost, (lost, output)
        assert not extra, (extra, output)
        assert batch.taskfile.read_text() == expected_text
        assert not left, left
    finally:
        for pid in left:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


# Beside other tests: it sets no timeout.
def test_eighty_items_killed_fifteen_times_with_helpers_then_half_reworded_and_killed_again(batch):
    print("soak kill loop: seed", KILL_SEED)
    rng = random.Random(KILL_SEED)
    settings = ["pipeline: true", "transient_exit_codes: [75]", "retries: 3", "retry_base: 0.1s", "retry_cap: 0.5s"]
    front_matter = FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(s + "\n" for s in settings))
    batch.write(kill_loop_text(""), front_matter)
    batch.behave(**helpers_at_work(rng))
    loop = KillLoop(batch, rng)

    figures = loop.run(KILLS)
    needed = Counter(KEYS)
    check_loop(batch, loop, figures, kill_loop_text(front_matter, box="[x]"), needed)
    results = {key: batch.record(*key.split(":"))["run_id"] for key in KEYS}

    # Reword half of them: they, and what waits on them (their module in later groups), are stale.
    reworded = set(rng.sample(KEYS, len(KEYS) // 2))
    stale = {f"g{g}:m{m}" for g in range(KILL_GROUPS) for m in range(KILL_MODULES)
             if any(f"g{earlier}:m{m}" in reworded for earlier in range(g + 1))}
    batch.taskfile.write_text(kill_loop_text(front_matter, reworded, box="[x]"))
    # Fewer items are left to do than in the first loop: a faster runner may finish them sooner.
    figures = {"stale": len(stale), **loop.run(KILLS, at_least=KILLS // 2)}
    needed.update(stale)
    check_loop(batch, loop, figures, kill_loop_text(front_matter, reworded, box="[x]"), needed)
    rerun = {key for key in KEYS if batch.record(*key.split(":"))["run_id"] != results[key]}
    assert rerun == stale  # each stale item has a result of its new work; the rest kept theirs


LANDING_SEED = 20261206
LANDING_GROUPS, LANDING_MODULES = 3, 24
LANDING_KEYS = [f"g{g}:m{m}" for g in range(LANDING_GROUPS) for m in range(LANDING_MODULES)]
# Every kind of stop, at random moments: agents, checks, merges and ticks are all cut somewhere.
STOPS = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM] * 3
LANDING_CHECK = ("import os, random, sys, time\n"
                 "time.sleep(random.uniform(0.05, 0.4))\n"
                 "open('check-report.txt', 'w').write('what a check leaves')\n"  # never the item's work
                 "sys.exit(0 if os.path.exists(sys.argv[1]) else 1)\n")


def chaos_agents(rng: random.Random) -> dict:
    """Each item writes its own file; some fail transiently once, a few hang past their timeout."""
    behaviours = {}
    for key in LANDING_KEYS:
        group, module = key.split(":")
        behaviour = {"sleep": rng.uniform(0.05, 0.6), "write": f"out-{group}-{module}.txt"}
        roll = rng.random()
        if roll < 0.2:
            behaviour["attempts"] = {"1": {"exit": 75}}
        elif roll < 0.25:
            behaviour["attempts"] = {"1": {"hang": 60}}
        behaviours[key] = behaviour
    return behaviours


def landing_text(front_matter: str, notes: list[str], box: str = "[ ]") -> str:
    body = "# Landing soak\n" + "".join(f"{note}\n" for note in notes)
    for g in range(LANDING_GROUPS):
        body += f"\n## G{g}\n" + "".join(f"- {box} m{m}: write module {m} of step {g}\n" for m in range(LANDING_MODULES))
    return front_matter + body


@pytest.mark.alone
def test_seventy_two_isolated_items_with_a_check_stopped_nine_ways_while_the_user_edits(batch):
    from gitrepo import git

    print("soak landing: seed", LANDING_SEED)
    rng = random.Random(LANDING_SEED)
    check = [sys.executable, "-c", LANDING_CHECK, "out-{group}-{module}.txt"]
    settings = ["isolation: worktree", f"check: {json.dumps(check)}", "transient_exit_codes: [75]", "retries: 3",
                "retry_base: 0.1s", "retry_cap: 0.5s", "timeout: 4s"]
    front_matter = FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(s + "\n" for s in settings))
    git("init", "-q", "-b", "main", cwd=batch.path)
    git("config", "user.name", "Soak", cwd=batch.path)
    git("config", "user.email", "soak@example.invalid", cwd=batch.path)
    (batch.path / ".gitignore").write_text("runs.log\n")
    batch.behave(**chaos_agents(rng))
    notes: list[str] = []
    batch.write(landing_text("", notes), front_matter)
    git("add", "-A", cwd=batch.path)
    git("commit", "-q", "-m", "the plan", cwd=batch.path)
    env = {"SCRIPTED_RUNS_LOG": str(batch.path / "runs.log")}
    loop, stopped, started = KillLoop(batch, rng), Counter(), time.monotonic()

    for signum in rng.sample(STOPS, len(STOPS)):
        runner = loop.runner = batch.start("run-batch", "-n", "8", env=env)
        loop.wait_for_a_moment(runner)
        if runner.poll() is not None:
            break  # all done between two stops
        # The user edits task.md while the run ticks its items (a line of their own, kept).
        notes.append(f"A note of the user's, number {len(notes) + 1}.")
        text = batch.taskfile.read_text()
        batch.taskfile.write_text(text.replace("# Landing soak\n", "# Landing soak\n" + notes[-1] + "\n", 1))
        runner.send_signal(signum)
        if signum == signal.SIGKILL:
            loop.kills.append(time.time())
        runner.communicate(timeout=120)
        stopped[signal.Signals(signum).name] += 1
    runner = batch.start("run-batch", "-n", "8", env=env)
    output, _ = runner.communicate(timeout=900)
    loop.note_helpers()
    loop.pids |= {int(line.split()[2]) for line in (batch.path / "runs.log").read_text().splitlines()}

    done, kills_after = batch.runs("done"), loop.raced()
    text = batch.taskfile.read_text()
    lost = [key for key in LANDING_KEYS if not (batch.state(*key.split(":")) / "result.json").exists()]
    repeated = {key: done[key] - 1 - sum(1 for after in kills_after[key] if after is not None and after < SETTLE)
                for key in LANDING_KEYS if done[key] > 1}
    repeated = {key: count for key, count in repeated.items() if count > 0}
    merged = Counter()
    for trailers in git("log", "--first-parent", "--merges", "--format=%(trailers:key=Batch-Item,valueonly)%x1e",
                        "batch/task", cwd=batch.path).split("\x1e"):
        if trailers.strip():
            merged[trailers.strip()] += 1
    on_branch = set(git("ls-tree", "--name-only", "batch/task", cwd=batch.path).split())
    ticked = {f"g{g}:m{m}" for g in range(LANDING_GROUPS) for m in range(LANDING_MODULES)
              if f"- [x] m{m}: write module {m} of step {g}\n" in text.split(f"## G{g}\n", 1)[1].split("\n## ", 1)[0] + "\n"}
    unlanded = [key for key in ticked if merged[key] != 1 or f"out-{key.replace(':', '-')}.txt" not in on_branch]
    untickeds = [key for key in merged if key not in ticked]
    left = loop.leftovers()
    figures = {"stops": dict(stopped), "exit": runner.returncode, "items lost": len(lost),
               "paid twice": sum(repeated.values()), "ticked without landing": len(unlanded),
               "landed without tick": len(untickeds), "leftovers": len(left),
               "user notes kept": sum(note in text for note in notes), "user notes": len(notes),
               "attempts started": sum(batch.runs("start").values()), "wall time": round(time.monotonic() - started, 1)}
    print("soak landing:", json.dumps(figures))
    try:
        assert runner.returncode == 0, output
        assert not lost and not repeated and not unlanded and not untickeds, (lost, repeated, unlanded, untickeds)
        assert ticked == set(LANDING_KEYS)
        assert all(note in text for note in notes)
        assert "check-report.txt" not in on_branch
        assert not left, left
    finally:
        for pid in left:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
