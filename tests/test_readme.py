"""Every example of the README runs as shown, read from README.md as it is: its first
sh block (install, then `doit example`) in a fresh copy of the repository and a fresh
virtual environment; each console block's `$` commands, printing what it shows, in a
copy of examples/monolith holding the markdown block before it as task.md; every
other sh command, there too, succeeding."""

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from gitrepo import git
from test_real_plans import dialect_examples

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = [(m.group(1), m.group(2), m.start()) for m in re.finditer(r"^```(\w+)\n(.*?)^```$", README, re.M | re.S)]
DOIT_BIN = Path(sys.executable).parent  # where this environment's `doit` is

# Commands of the README that these tests do not run, and why.
NOT_RUN_HERE = {
    "pipx install ./batch-tasks    # or: uv tool install ./batch-tasks": "installs into the reader's home (the newcomer's test runs the command it installs)",
    "pip install -q -e '.[test]' && python -m pytest -q": "the test suite itself",
    "doit batch-report --run 20260101T120000Z-3f9a1c -o last-week.html": "names a run id of another folder's history",
    # "Beyond one machine": a cluster of machines (tests/test_dask_executor.py runs one on loopback).
    "pip install './batch-tasks[dask]'    # from a clone of this repository; in its development venv: pip install -e '.[dask]'":
        "installs into the reader's environment",
    "dask scheduler --port 8786": "a server that runs until stopped",
    "dask worker tcp://HOST:8786 --nthreads 4 --resources agent=4": "names the reader's scheduler",
    "doit run-batch --executor dask --scheduler tcp://HOST:8786": "names the reader's scheduler",
    "dask ssh --hostfile hosts.txt --nthreads 4": "logs in to the reader's machines",
    # "Review before it lands": decisions on an item awaiting review (tests/test_review.py runs them, in order).
    "doit batch-review add-exporters:csv": "needs an item awaiting review",
    'doit batch-review add-exporters:csv --reject "register it in alphabetical order"': "needs an item awaiting review",
    "doit batch-review add-exporters:csv --approve": "needs an item awaiting review",
}
NEEDS = {"dot": "doit batch-graph --dot | dot -Tsvg > batch.svg"}  # run where the program is


def commands(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def shell_env() -> dict:
    return {**os.environ, "PATH": f"{DOIT_BIN}{os.pathsep}{os.environ['PATH']}"}


def monolith_copy(tmp_path: Path, task: str | None = None) -> Path:
    folder = tmp_path / "monolith"
    shutil.copytree(ROOT / "examples" / "monolith", folder, ignore=shutil.ignore_patterns(".batch", "notes", "interfaces", "REPORT.md"))
    if task is not None:
        (folder / "task.md").write_text(task, encoding="utf-8")
    return folder


def as_seen(text: str) -> list[str]:
    """Lines as a reader compares them: clock times, durations and run ids are whatever
    they were, and so is the count of items ended when items of a group end together."""
    text = re.sub(r"\b\d\d:\d\d:\d\d\b", "HH:MM:SS", text)
    text = re.sub(r"\b\d{8}T\d{6}Z-[0-9a-f]{6}\b", "RUN-ID", text)
    text = re.sub(r"^(HH:MM:SS) \[\d+/(\d+)\]", r"\1 [n/\2]", text, flags=re.M)
    return re.sub(r"\b\d+\.\ds\b", "N.Ns", text).splitlines()


def test_the_readme_is_what_these_tests_read():
    kinds = Counter(kind for kind, _, _ in BLOCKS)
    assert kinds["console"] >= 2 and kinds["sh"] >= 4 and kinds["markdown"] >= 3
    for command in [*NOT_RUN_HERE, *NEEDS.values()]:
        assert command in README, f"{command!r} is no longer in the README: drop it here"
    assert "tools/summarize.py" not in README  # the first example called a script that is not there


def test_every_install_command_installs_from_a_clone_as_the_package_is_not_on_pypi():
    installs = re.findall(r"(?:pip|pipx|uv tool) install ((?:-\w+ )*)(\S+)", README)
    assert len(installs) >= 5
    for options, what in installs:
        assert what.strip("'").startswith("."), f"install {options}{what}: not a path"


# Every markdown snippet, also those indented in a list and fenced with more backticks; the
# Dialects section's examples run where their tools keep them, in test_real_plans.py.
SNIPPETS = [(README[:m.start()].count("\n") + 1, snippet)
            for m in re.finditer(r"^( *)(`{3,})markdown\n(.*?)^\1\2$", README, re.M | re.S)
            if (snippet := textwrap.dedent(m.group(3))) not in {example for _, example in dialect_examples()}]


@pytest.mark.parametrize("line, snippet", SNIPPETS, ids=[f"README.md:{line}" for line, _ in SNIPPETS])
def test_every_task_md_snippet_reads_as_shown(tmp_path, line, snippet):
    folder = monolith_copy(tmp_path, snippet)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["-c", "user.name=T", "-c", "user.email=t@example.invalid",
                                                                  "commit", "-q", "-m", "snippet"]):
        git(*command, cwd=folder)  # `isolation: worktree` needs a repository, as the README says
    shown = subprocess.run(["bash", "-c", "doit run-batch --dry-run"], cwd=folder, env=shell_env(), capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0 and re.search(r"^[1-9]\d* would run", shown.stdout, re.M), shown.stdout + shown.stderr


CONSOLES = [(body, at) for kind, body, at in BLOCKS if kind == "console"]


@pytest.mark.parametrize("body, at", CONSOLES, ids=[f"console-{i}" for i in range(len(CONSOLES))])
def test_each_console_example_prints_what_it_shows(tmp_path, body, at):
    task = [b for kind, b, start in BLOCKS if kind == "markdown" and start < at][-1]
    folder = monolith_copy(tmp_path, task)
    sessions = re.split(r"^\$ ", body, flags=re.M)[1:]
    for session in sessions:
        command, _, shown = session.partition("\n")
        if any(program in command and shutil.which(program) is None for program, line in NEEDS.items() if line == command):
            continue
        ran = subprocess.run(
            ["bash", "-c", command], cwd=folder, env=shell_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120
        )
        # Items of a group run at once: their lines may come in another order, but all of them, and no other.
        assert Counter(as_seen(ran.stdout)) == Counter(as_seen(shown)), f"$ {command}\n{ran.stdout}"


def watch_until_shown(command: str, folder: Path, wanted: str, timeout: float = 60.0) -> str:
    """Run COMMAND on a terminal of its own (as `--watch` is meant to be), wait until its screen
    shows WANTED, then press Ctrl-C; what it showed. It must end at once, with status 0."""
    controller, terminal = pty.openpty()
    watcher = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=folder, env=shell_env(), stdin=subprocess.DEVNULL,
                               stdout=terminal, stderr=terminal)
    os.close(terminal)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while wanted.encode() not in shown and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                try:
                    shown += os.read(controller, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0, shown.decode(errors="replace")
    finally:
        if watcher.poll() is None:
            watcher.kill()
        os.close(controller)
    return shown.decode(errors="replace")


def test_every_other_sh_command_succeeds_in_a_batch_folder(tmp_path):
    folder = monolith_copy(tmp_path)
    (folder / "doit.cfg").unlink()  # the README's printf writes it
    subprocess.run(["bash", "-c", "doit run-batch"], cwd=folder, env=shell_env(), capture_output=True, timeout=120, check=True)
    later = [body for kind, body, _ in BLOCKS if kind == "sh"][1:]
    ran = 0
    for command in (line for body in later for line in commands(body)):
        if command in NOT_RUN_HERE or (command in NEEDS.values() and shutil.which("dot") is None):
            continue
        if "--watch" in command:  # kept up to date until Ctrl-C: give it one, once it shows its first frame
            out = watch_until_shown(command, folder, "done")
            assert "done" in out, command
        else:
            result = subprocess.run(["bash", "-c", command], cwd=folder, env=shell_env(), capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        ran += 1
    assert ran >= 3
    assert (folder / "doit.cfg").read_text() == (ROOT / "examples" / "monolith" / "doit.cfg").read_text()
    listing = subprocess.run(["bash", "-c", "doit list --all"], cwd=folder, env=shell_env(), capture_output=True, text=True)
    assert "inventory:auth" in listing.stdout  # the doit.cfg it wrote works


def repository_copy(tmp_path: Path) -> Path:
    clone = tmp_path / "batch-tasks"
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    return clone


def test_doit_example_draws_the_live_panel_on_a_terminal_and_says_what_to_try(tmp_path):
    from test_live_view import run_on_a_terminal

    class Repository:
        path = repository_copy(tmp_path)

        def command(self, *args):
            return [sys.executable, "-m", "doit", *args]

    drawn = run_on_a_terminal(Repository(), "example", size=(30, 120))
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    assert "\x1b[" in drawn and re.search(r"\d/9 done · [1-4] running in inventory", screen)  # the panel, drawn
    assert "9 done, 0 failed, 0 already done" in screen
    assert screen.replace("\r", "").rstrip().endswith("doit batch-log inventory:billing   that item's attempts, and what each printed")
    assert sorted(p.name for p in Repository.path.iterdir() if p.name.startswith(".doit")) == []


def test_a_newcomer_installs_and_runs_the_example_as_the_readme_says(tmp_path):
    """A fresh copy of the repository and a fresh virtual environment: the first sh
    block exactly as written, then run-batch's help, -j 2, a failure and its resume."""
    clone = repository_copy(tmp_path)
    before = set(os.listdir(clone))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != DOIT_BIN)
    setup = [body for kind, body, _ in BLOCKS if kind == "sh"][0]
    script = setup + (
        "doit run-batch --help | head -1\n"
        "batch-tasks --version\n"
        "(cd build/example && batch-tasks)\n"
        "cd build/example\n"
        "doit forget extract-interfaces && doit run-batch -j 2\n"
        "mv src/billing.py . && doit forget inventory:billing && ! doit run-batch\n"
        "mv billing.py src/ && doit run-batch\n"
    )
    ran = subprocess.run(["bash", "-ec", script], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    out = ran.stdout
    assert ran.returncode == 0, out
    assert "9 done, 0 failed, 0 already done" in out and "Try next, there:" in out
    assert "usage: doit run-batch [OPTIONS] [GROUP | GROUP:MODULE ...]" in out
    assert re.search(r"^batch-tasks \d+\.\d+\.\d+ \(doit 0\.37\.\d+\)$", out, re.M)  # the console script
    assert "0 done, 0 failed, 9 already done" in out  # batch-tasks is run-batch
    assert "5 done, 0 failed, 4 already done" in out  # -j 2: a forgotten group, and what follows it
    assert "inventory: there is no src/billing.py to read" in out  # the failure's cause, on screen
    totals = [line for line in out.splitlines() if re.match(r"\d+ done, \d+ failed", line)]
    assert totals[-1].startswith("6 done, 0 failed, 3 already done")  # the resume
    # Nothing else in the root (Python's bytecode cache of dodo.py comes where writing it is not turned off).
    assert set(os.listdir(clone)) - before - {"__pycache__"} == {".venv", "build", "batch_tasks.egg-info"}
