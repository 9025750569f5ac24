"""`land: pr` end to end: a real `doit run-batch`, a real bare git remote, and a loopback fake
of GitHub's REST API (tests/fake_github.py): the pull request opened with the evidence (after
a rate limit and a server error), a review requesting changes sent back to the item's agent
and its fix pushed to the same pull request, the merge on GitHub ticking the item."""

from __future__ import annotations

import base64
import json
import os
import shutil
from types import SimpleNamespace

import pytest
from conftest import wait_for
from fake_github import FakeGitHub
from gitrepo import git, make_repo
from test_isolated_batch import run, setup, starts
from test_review import BODY, PLAN, ended, start, stop_if_left

from batch_tasks.errors import BatchError
from batch_tasks.landing import pull_request
from batch_tasks.landing.github import GitHub
from batch_tasks.redaction import Redactor

BRANCH = "batch/task.items/sections/alpha"


def test_a_pull_request_per_item_its_requested_changes_go_back_and_its_merge_ticks_it(tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    with FakeGitHub(bare, token="t0ken") as github:
        repo, env = setup(tmp_path, BODY, PLAN, land="pr", github_api=github.url, github_repo="acme/widgets",
                          pr_poll="0.2s")
        git("remote", "add", "origin", str(bare), cwd=repo)
        git("push", "-q", "origin", "main", cwd=repo)
        env["GH_TOKEN"] = "t0ken"
        github.rate_limit_next(reset_in=1.0)  # the first try to open it: paused until the reset
        github.fail_next(502)  # the next: retried at once
        runner = start(repo, env)
        try:
            wait_for(lambda: 1 in github.pulls)
            pull = github.pulls[1]
            assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
            assert "edit alpha" in pull["body"] and "**Check**: passed" in pull["body"]
            assert "shared.py" in pull["body"] and "**Cost**" in pull["body"]
            first = github.head(BRANCH)
            assert "alpha = 'attempt 1'" in git("show", f"{first}:shared.py", cwd=bare)
            wait_for(lambda: (repo / ".batch/task/items/sections/alpha/failure.json").exists()
                     and "pull request #1" in (repo / ".batch/task/items/sections/alpha/failure.json").read_text())

            github.request_changes(1, "Say it is the second try.", [("shared.py", 2, "this line")])
            wait_for(lambda: github.head(BRANCH) not in ("", first))  # its fix, pushed to the same branch
            told = starts(tmp_path)
            assert [s["attempt"] for s in told] == [1, 2]
            assert all(s["tokens"] == [] for s in told)  # the token that reads its pull request is not the agent's
            assert "Say it is the second try." in told[1]["prompt"] and "shared.py:2: this line" in told[1]["prompt"]
            assert list(github.pulls) == [1]  # the same pull request
            assert "alpha = 'attempt 2'" in git("show", f"{github.head(BRANCH)}:shared.py", cwd=bare)

            merged = github.merge(1)
            out = ended(runner)
        finally:
            stop_if_left(runner)
    assert runner.returncode == 0, out
    assert "its pull request, not open yet: GitHub's rate limit" in out  # first, while the limit lasts
    assert "review it: pull request #1 https://github.example/acme/widgets/pull/1" in out  # then who waits
    assert "- [x] alpha" in (repo / "task.md").read_text()
    record = json.loads((repo / ".batch/task/items/sections/alpha/result.json").read_text())
    assert record["merge"]["merge_commit"] == merged and record["merge"]["pull_request"].endswith("/pull/1")
    statuses = [status for method, path, status in github.requests if method == "POST"]
    assert statuses[:3] == [403, 502, 201]  # a rate limit waited out, a server error retried
    assert all(status != 401 for _, _, status in github.requests)


def test_a_pull_request_merged_before_the_next_attempt_asks_about_it_is_kept_not_opened_again(tmp_path, monkeypatch):
    """Its fix was pushed, and a person merged the pull request before the item asked GitHub
    about it: that pull request is the item's (its verdict judges what was merged), never a
    second one for the same branch."""
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    repo = make_repo(tmp_path / "repo")
    git("push", "-q", str(bare), "main:main", f"HEAD:refs/heads/{BRANCH}", cwd=repo)
    monkeypatch.setenv("GH_TOKEN", "t0ken")
    with FakeGitHub(bare, token="t0ken") as github:
        settings = {"github_api": github.url, "github_repo": "acme/widgets"}
        opened = GitHub(github.url, "acme/widgets", "t0ken").open_pull("sections:alpha: edit alpha", BRANCH, "main", "")
        (tmp_path / "item").mkdir()
        (tmp_path / "item" / pull_request.PR_FILE).write_text(json.dumps({"number": opened["number"]}))
        github.merge(opened["number"])
        item_run = SimpleNamespace(folder=SimpleNamespace(folder=str(tmp_path / "item")),
                                   job=SimpleNamespace(settings=settings, item=SimpleNamespace(key="sections:alpha",
                                                                                               text="edit alpha")),
                                   workspace=SimpleNamespace(isolation=SimpleNamespace(top=repo), branch=BRANCH))
        monkeypatch.setattr(pull_request, "evidence", lambda item_run, attempt: "")  # its body is not the point
        assert pull_request._open(item_run, attempt=None) == {"number": opened["number"]}
        assert list(github.pulls) == [opened["number"]]


def test_a_batch_pull_request_is_the_integration_branch_opened_once_and_updated_by_later_runs(tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    plan = {**PLAN, "beta": {"file": "shared.py", "line": 11, "text": "beta = 'edited'"}}
    with FakeGitHub(bare, token="t0ken") as github:
        repo, env = setup(tmp_path, BODY, plan, land="pr-batch", github_api=github.url, github_repo="acme/widgets")
        git("remote", "add", "origin", str(bare), cwd=repo)
        git("push", "-q", "origin", "main", cwd=repo)
        env["GH_TOKEN"] = "t0ken"
        first = run(repo, env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "pull request #1 opened" in first.stdout
        pull = github.pulls[1]
        assert pull["head"]["ref"] == "batch/task" and pull["base"]["ref"] == "main"
        assert "**sections:alpha**: merged" in pull["body"] and "check passed" in pull["body"]
        assert github.head("batch/task") == git("rev-parse", "batch/task", cwd=repo)

        (repo / "task.md").write_text((repo / "task.md").read_text() + "- [ ] beta: edit beta\n")
        second = run(repo, env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "pull request #1 updated" in second.stdout and list(github.pulls) == [1]
        assert "beta = 'edited'" in git("show", f"{github.head('batch/task')}:shared.py", cwd=bare)


def fake_gh(folder, said: str, status: int = 0) -> None:
    """A `gh` whose `auth token` says `said`, with exit status `status`."""
    gh = folder / "gh"
    gh.write_text(f'#!/bin/sh\n[ "$*" = "auth token" ] && echo "{said}" && exit {status}\nexit 2\n')
    gh.chmod(0o755)


@pytest.mark.parametrize("environ, gh, found", [
    ({"GH_TOKEN": "from-gh-token", "GITHUB_TOKEN": "from-github-token"}, ("from-gh", 0), "from-gh-token"),
    ({"GITHUB_TOKEN": "from-github-token"}, ("from-gh", 0), "from-github-token"),
    ({}, ("from-gh", 0), "from-gh"),
    ({}, ("not logged in", 1), None),
    ({}, None, None),
], ids=["GH_TOKEN", "GITHUB_TOKEN", "gh auth token", "gh logged out", "no gh"])
def test_the_token_is_gh_token_else_github_token_else_what_gh_auth_token_says(tmp_path, monkeypatch, environ, gh,
                                                                                found):
    from batch_tasks.landing import github

    for name in github.TOKEN_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    if gh is not None:
        fake_gh(tmp_path, *gh)
    monkeypatch.setenv("PATH", str(tmp_path))  # no other gh
    assert github.token() == found


def test_a_push_authenticates_with_a_token_that_gits_argv_does_not_show_nor_its_failure(tmp_path, monkeypatch):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    repo = make_repo(tmp_path / "repo")
    remote = "https://github.example/acme/widgets.git"
    git("remote", "add", "origin", remote, cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo)
    argv_log, wrapper = tmp_path / "argv.log", tmp_path / "bin" / "git"
    wrapper.parent.mkdir()  # every git started, as `ps` would show it
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{argv_log}"\nexec "{shutil.which("git")}" "$@"\n')
    wrapper.chmod(0o755)
    with FakeGitHub(bare, token="t0ken-of-the-user") as github:
        monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
        for name, value in {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{github.git_url}.pushInsteadOf",
                            "GIT_CONFIG_VALUE_0": remote}.items():  # the https remote, served by the fake
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GH_TOKEN", github.token)
        pull_request.push({}, repo, "batch/one", commit, Redactor(os.environ))
        assert github.head("batch/one") == commit  # it authenticated

        monkeypatch.delenv("GH_TOKEN")  # the token from `gh auth token`, which no redactor of the environment knows
        fake_gh(wrapper.parent, "a-token-github-refuses")
        with pytest.raises(BatchError) as refused:
            pull_request.push({}, repo, "batch/two", commit, Redactor(os.environ))
    tokens = ["t0ken-of-the-user", "a-token-github-refuses"]
    secrets = tokens + [base64.b64encode(f"x-access-token:{token}".encode()).decode() for token in tokens]
    assert f"Basic {secrets[2]}" in github.git_auth and f"Basic {secrets[3]}" in github.git_auth
    started = argv_log.read_text()
    assert " push " in started and not any(secret in started for secret in secrets)
    assert "pushing batch/two to origin failed" in str(refused.value)
    assert not any(secret in str(refused.value) for secret in secrets)


def test_a_slow_github_does_not_hold_back_another_items_start(tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    plan = {**PLAN, "beta": {"file": "shared.py", "line": 11, "text": "beta = 'edited'"}}
    with FakeGitHub(bare, token="t0ken") as github:
        repo, env = setup(tmp_path, BODY + "- [ ] beta: edit beta\n", plan, land="pr", github_api=github.url,
                          github_repo="acme/widgets", pr_poll="0.2s")
        git("remote", "add", "origin", str(bare), cwd=repo)
        git("push", "-q", "origin", "main", cwd=repo)
        env["GH_TOKEN"] = "t0ken"
        github.hold_reads(1)  # asked about, alpha's pull request answers only once released
        runner = start(repo, env)  # one slot: beta starts once alpha waits for its pull request
        try:
            wait_for(lambda: github.holding)
            wait_for(lambda: "beta" in [s["module"] for s in starts(tmp_path)], timeout=20)
            assert github.holding  # beta started while GitHub had not answered
            wait_for(lambda: 2 in github.pulls)
            github.release()
            github.merge(1)
            github.merge(2)
            out = ended(runner)
        finally:
            github.release()
            stop_if_left(runner)
    assert runner.returncode == 0, out
    assert (repo / "task.md").read_text().count("- [x]") == 2
