"""Secrets are masked in every form the agent prints them in, wherever batch-tasks keeps them.

Real `doit run-batch` processes: the scripted agent prints secrets raw, as JSON, split
between writes, line by line; a stand-in Claude CLI prints them inside its JSON events,
escaped as JSON encoders do and as nobody does.
"""

import json
import os
import subprocess
import sys

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----"
)
QUOTED = 'tok"en\\with-a/quote<&>'
SPLIT = "split-secret-0123456789abcdef"
SECRETS = {"DEPLOY_PRIVATE_KEY": PEM, "QUOTED_TOKEN": QUOTED, "SPLIT_SECRET": SPLIT}


def forms(secret: str) -> list[str]:
    """What must not be found: the secret, its JSON escapings, and each line of a PEM body."""
    found = [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]
    return found + [line for line in secret.splitlines() if len(line) > 40]


def kept(batch, *outputs: str) -> str:
    """Everything batch-tasks kept or printed."""
    files = [p for p in (batch.path / ".batch").rglob("*") if p.is_file() and p.suffix != ".sqlite"]
    return "".join(p.read_text(errors="replace") for p in files) + "".join(outputs)


def leaks(text: str) -> list[str]:
    return [form for secret in SECRETS.values() for form in forms(secret) if form in text]


def test_every_form_a_command_prints_is_masked(batch):
    names = list(SECRETS)
    items = "".join(f"- [ ] {form}: leaks {form}\n" for form in ("raw", "json", "split", "lines"))
    batch.write(f"# T\n## G\n{items}")
    batch.behave(**{form: {"leak": names, "leak_as": form} for form in ("raw", "json", "split", "lines")})
    result = batch.run("run-batch", env=SECRETS)
    assert result.returncode == 0, result.stdout + result.stderr
    everything = kept(batch, result.stdout, result.stderr)
    assert leaks(everything) == []
    assert "the value is ***" in everything and "part: ***" in everything


def test_secrets_inside_an_agents_json_events_are_masked_when_decoded_too(batch):
    # Claude Code's JSON escapes `"` and `\`; a hostile or odd encoder escapes letters too.
    odd = "".join(f"\\u{ord(c):04x}" for c in SPLIT)
    said = f"the key is {QUOTED} and {PEM}"
    events = [
        json.dumps({"type": "system", "subtype": "init", "session_id": "s-1", "model": "m"}),
        json.dumps({"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": said}]}}),
        '{"type":"result","subtype":"success","is_error":false,"session_id":"s-1","total_cost_usd":0.01,'
        f'"result":"{odd} and {json.dumps(said)[1:-1]}"}}',
    ]
    (batch.path / "stream.jsonl").write_text("\n".join(events) + "\n")
    bin_folder = batch.path / "bin"
    bin_folder.mkdir()
    claude = bin_folder / "claude"
    claude.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\nsys.stdout.write(open('stream.jsonl').read())\n")
    claude.chmod(0o755)
    batch.write("# T\n## G\n- [ ] a: answer\n", "---\nagent: claude\n---\n")
    result = batch.run("run-batch", env={**SECRETS, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    everything = kept(batch, result.stdout, result.stderr)
    assert leaks(everything) == []
    assert "the key is ***" in everything
    record = json.loads((batch.state("g", "a") / "result.json").read_text())
    assert SPLIT not in record["result_text"] and "***" in record["result_text"]


def test_a_value_that_is_not_utf8_in_the_environment_does_not_crash_an_item(batch):
    batch.write("# T\n## G\n- [ ] a: leaks\n")
    batch.behave(a={"print": "plain output"})
    env = {"ODD_TOKEN": "abc\udcffdefgh", "ODD_SETTING": "\udcfe"}  # the bytes 0xff and 0xfe
    result = batch.run("run-batch", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_secret_in_a_check_s_command_line_is_masked_where_its_step_is_shown(batch):
    check = json.dumps([sys.executable, "-c", "pass", SPLIT])  # the check names the secret itself
    batch.write("# T\n## G\n- [ ] a: checked\n", f"---\nagent: command\ncommand: [{json.dumps(sys.executable)}, -c, pass]\n"
                                                 f"check: {check}\n---\n")
    result = batch.run("run-batch", env=SECRETS)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [event for event in batch.events("g", "a") if event["kind"] == "step"]
    assert [event["data"]["step"] for event in steps] == ["agent", "check"] and steps[1]["text"].endswith(" pass ***")
    shown = [batch.state("g", "a") / name for name in ("events.jsonl", "output.log", "result.json")]
    assert leaks("".join(path.read_text() for path in shown) + result.stdout + result.stderr) == []


def test_what_setup_and_the_merged_state_check_print_is_masked_everywhere_kept(tmp_path):
    """worktree_setup and the check (on the item's worktree, and again on the merged state) print the
    secret, and task.md's check names it: masked in every file kept, the report, `doit info`, plan.json."""
    from gitrepo import git
    from test_git_guard import hostile_batch, run_batch

    prints = "import os, sys; print(sys.argv[1], os.environ['SPLIT_SECRET'], flush=True)"
    setup = json.dumps([sys.executable, "-c", prints, "setup"])
    check = json.dumps([sys.executable, "-c", prints, "check", SPLIT])
    started = {name: str(tmp_path / f"{name}-started") for name in ("a", "b")}
    plan = {name: {"write": {started[name]: "", f"{name}.py": "x = 1\n"}, "wait_for": started[other]}
            for name, other in (("a", "b"), ("b", "a"))}  # both start from one tip: the second merges on a moved one
    repo = hostile_batch(tmp_path, "# T\n## G\n- [ ] a: one\n- [ ] b: two\n", plan, worktree_setup=setup, check=check,
                         parallel="2")
    result = run_batch(repo, tmp_path, env={"SPLIT_SECRET": SPLIT})
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads((repo / ".batch" / "task" / "items" / "g" / name / "result.json").read_text()) for name in "ab"]
    assert any(record["merge"].get("merged_state_check") for record in records)  # the check ran on the merged state
    (repo / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    info = subprocess.run([sys.executable, "-m", "doit", "info", "g:a"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "SPLIT_SECRET": SPLIT}, timeout=60)
    report = subprocess.run([sys.executable, "-m", "doit", "batch-report", "-o", str(tmp_path / "report.html")],
                            cwd=repo, capture_output=True, text=True, env={**os.environ, "SPLIT_SECRET": SPLIT},
                            timeout=60)
    assert info.returncode == 0 and report.returncode == 0, info.stderr + report.stderr
    assert "***" in info.stdout, info.stdout
    checkouts = (repo / ".batch" / "task" / "integration", repo / ".batch" / "task" / "worktrees")  # the user's files
    files = [p for p in (repo / ".batch").rglob("*")
             if p.is_file() and p.suffix != ".sqlite" and not any(p.is_relative_to(c) for c in checkouts)]
    assert not (repo / ".batch" / "task" / "plan.json").exists()  # task.md names the secret: no plan kept
    kept_text = "".join(p.read_text(errors="replace") for p in [*files, tmp_path / "report.html"])
    assert "setup ***" in kept_text and "check ***" in kept_text
    leaked = {str(p): p.read_text(errors="replace").count(SPLIT) for p in [*files, tmp_path / "report.html"]}
    assert {path: count for path, count in leaked.items() if count} == {}
    assert [form for form in forms(SPLIT) if form in kept_text + info.stdout + result.stdout + result.stderr] == []
    assert SPLIT not in git("log", "--all", "--format=%B", cwd=repo)
