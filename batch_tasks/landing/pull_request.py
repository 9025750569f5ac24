"""`land: pr`: instead of the local merge queue, an item's checked branch is pushed to the
remote and a pull request opened on GitHub with the evidence as its body (the instruction,
the check's result and tail, the files changed, the cost). The item waits, parked without a
slot (see review.py: its ASK_REVIEW step opens the pull request, its APPROVE step is the
pull request merged), and is recorded and ticked once GitHub says it was merged with the
item's very commit at its head. A review requesting changes on that commit goes back to the
item's session, as a rejection does, with its comments; the session's new commits are pushed
to the same branch, so the same pull request. Closed unmerged, the item fails.

The pull request's number is kept in the item's state folder (pull_request.json); it is
trusted only as far as GitHub confirms it (its head is the item's branch, and, merged, its
head commit is the item's work). The API (see github.py) is asked at most every `pr_poll`
per item, from the review watch's thread (see review_watch), never the runner's loop nor
an attempt's step; a rate limit or an error is said and asked again later, never a failure.

Touches the remote (the item's branch, force-pushed: the branch is the batch's own) and the
item's pull_request.json.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

from ..agents import PERMANENT, retry
from ..errors import BatchError
from ..formats import money
from ..redaction import Redactor
from ..repository.git import GitError, git
from ..state.state import open_to_read, write_json_atomic
from . import github

if TYPE_CHECKING:
    from ..state.records import Attempt
    from .landing_item import ReviewedItem  # what these steps need of an item's run

PR_FILE = "pull_request.json"
DEFAULT_POLL = 30.0
GITHUB_URL = re.compile(r"github\.com[:/]([^/\s]+/[^/\s]+?)(?:\.git)?/?$")
OPEN, MERGED, CHANGES, CLOSED, OPENED = "open", "merged", "changes", "closed", "opened"


def _client(settings, top) -> github.GitHub:
    auth = github.token()
    if auth is None:
        raise github.GitHubError("land: pr needs a token: GH_TOKEN or GITHUB_TOKEN, or `gh auth login`")
    repo = settings.get("github_repo")
    if repo is None:
        url = git("remote", "get-url", _remote(settings), cwd=top, allowed=(0, 2, 128)).text
        found = GITHUB_URL.search(url)
        if found is None:
            raise github.GitHubError(f"land: pr cannot tell the GitHub repository of the remote {url!r}: "
                                     "say it with github_repo: OWNER/NAME")
        repo = found.group(1)
    return github.GitHub(github.api_base(settings), repo, auth)


def _remote(settings) -> str:
    return settings.get("remote") or "origin"


def _base_branch(settings, top) -> str:
    if settings.get("pr_base"):
        return settings["pr_base"]
    found = git("symbolic-ref", "-q", "--short", "HEAD", cwd=top, allowed=(0, 1))
    return found.text or "main"


def kept(item_run: "ReviewedItem") -> dict[str, Any]:
    return _read_kept(os.path.join(item_run.folder.folder, PR_FILE))


def _read_kept(path: str) -> dict[str, Any]:
    try:
        with open_to_read(path) as stream:
            said = json.loads(stream.read(1 << 16))
    except (OSError, ValueError):
        return {}
    return said if isinstance(said, dict) and isinstance(said.get("number"), int) else {}


def push(settings, top, branch: str, commit: str, redactor) -> None:
    """`branch` on the remote at `commit`; a token, for an https remote, as a header given in
    git's environment (its argv is shown by `ps` to every user of the machine)."""
    url = git("remote", "get-url", _remote(settings), cwd=top, allowed=(0, 2, 128)).text or _remote(settings)
    header, secrets = (), []
    if url.startswith("https://") and (auth := github.token()):
        basic = base64.b64encode(f"x-access-token:{auth}".encode()).decode()
        header, secrets = (("http.extraHeader", f"Authorization: Basic {basic}"),), [auth, basic]
    try:  # to its URL: a remote's name would bring the remote's configured helpers, which git_config_guard disarms
        git("push", "-q", "--no-verify", url, f"+{commit}:refs/heads/{branch}", cwd=top, secret_config=header)
    except GitError as error:  # the token may not be in the environment (`gh auth token`): masked by value too
        said = Redactor({}, also=secrets).text(redactor.text(error.stderr.strip()[-300:]))
        raise BatchError(f"pushing {branch} to {_remote(settings)} failed: {said}") from None


def ask(item_run: "ReviewedItem", attempt: "Attempt", commit: str) -> None:
    """The ASK_REVIEW step: push the work, and open its pull request (or find it open: the
    session's new commits go to the same one). GitHub not answering is no failure: the item
    waits, and the pull request is opened when it answers (see `verdict`)."""
    workspace = item_run.workspace
    push(item_run.job.settings, workspace.isolation.top, workspace.branch, commit, item_run.run.redactor)
    attempt.extra["pull_request"] = _open(item_run, attempt)


def _open(item_run: "ReviewedItem", attempt: "Attempt") -> dict[str, Any]:
    earlier = kept(item_run)
    settings, top = item_run.job.settings, item_run.workspace.isolation.top
    try:
        client = _client(settings, top)
        if earlier:
            pull = client.pull(earlier["number"])
            if pull.get("state") == OPEN or pull.get("merged"):
                return earlier  # open: the new commits are on it; merged: its verdict says what was merged
        opened = client.open_pull(f"{item_run.job.item.key}: {item_run.job.item.text}"[:250],
                                  item_run.workspace.branch, _base_branch(settings, top), evidence(item_run, attempt))
    except github.RateLimited as error:
        return {"error": str(error), "retry_at": error.until}
    except github.GitHubError as error:
        return {"error": str(error)}
    said = {"number": opened["number"], "url": opened.get("html_url", ""), "branch": item_run.workspace.branch}
    write_json_atomic(os.path.join(item_run.folder.folder, PR_FILE), said)
    return said


def evidence(item_run: "ReviewedItem", attempt: "Attempt") -> str:
    """The pull request's body: what the item was asked, what its check said, what changed, its cost."""
    job, workspace = item_run.job, item_run.workspace
    check = attempt.extra.get("check") or {}
    stat = git("diff", "--no-ext-diff", "--stat", f"{workspace.isolation.ref}...{workspace.tip()}",
               cwd=workspace.isolation.top).text
    cost = money(sum(a.record()["cost_usd"] or 0 for a in item_run.attempts)) or "unknown"
    parts = [f"**{job.item.key}** of the batch \"{job.batch_title}\":", "", job.item.instruction, ""]
    if check:
        parts += [f"**Check**: {'passed' if check.get('passed') else 'failed'} in {check.get('duration_s', 0):.1f}s",
                  "", "```", (check.get("tail") or "").strip()[-3000:], "```", ""]
    else:
        parts += ["**Check**: none", ""]
    parts += ["**Files changed**:", "", "```", stat, "```", "", f"**Cost**: {cost} over "
              f"{len(item_run.attempts)} attempt(s)", "", f"_Opened by batch-tasks, run {item_run.run.run_id}._"]
    return item_run.run.redactor.text("\n".join(parts))


def due(item_run: "ReviewedItem", now: float) -> bool:
    """Whether the item's pull request is to be asked about now (every `pr_poll`)."""
    if now < item_run.review_poll_at:
        return False
    item_run.review_poll_at = now + (item_run.job.settings.get("pr_poll") or DEFAULT_POLL)
    return True


def verdict(item_run: "ReviewedItem", attempt: "Attempt", commit: str) -> tuple[str, str] | None:
    """What GitHub says of the item's work at `commit`: (MERGED, merge commit), (CHANGES, the
    review's words and comments), (CLOSED, why), (OPENED, "") when it could only be opened now
    (the item waits again, naming it), or None (open, or GitHub not answering)."""
    said = attempt.extra.get("pull_request") or {}
    if "number" not in said:
        if said.get("retry_at", 0) > time.time():
            return None
        said = attempt.extra["pull_request"] = _open(item_run, attempt)  # it could not be opened before
        return (OPENED, "") if "number" in said else None
    try:
        client = _client(item_run.job.settings, item_run.workspace.isolation.top)
        pull = client.pull(said["number"])
        if (pull.get("head") or {}).get("ref") != item_run.workspace.branch:
            return CLOSED, f"pull request #{said['number']} is not this item's (its head is another branch)"
        if pull.get("merged"):
            if (pull.get("head") or {}).get("sha") != commit:
                return CLOSED, f"pull request #{said['number']} was merged with other work than the item's"
            return MERGED, str(pull.get("merge_commit_sha") or "")
        if pull.get("state") == CLOSED:
            return CLOSED, f"pull request #{said['number']} was closed without merging"
        return _changes_requested(client, said["number"], commit)
    except github.RateLimited as error:
        item_run.review_poll_at = max(item_run.review_poll_at, error.until)
        attempt.extra["pull_request"] = {**said, "error": str(error)}
    except github.GitHubError as error:
        attempt.extra["pull_request"] = {**said, "error": str(error)}
    return None


def _changes_requested(client: github.GitHub, number: int, commit: str) -> tuple[str, str] | None:
    """The latest word of each reviewer on this commit: changes requested, with its comments."""
    latest: dict[str, dict] = {}
    for review in client.reviews(number):
        if review.get("commit_id") == commit and review.get("state") in ("APPROVED", "CHANGES_REQUESTED"):
            latest[(review.get("user") or {}).get("login", "")] = review
    asking = [review for review in latest.values() if review["state"] == "CHANGES_REQUESTED"]
    if not asking:
        return None
    lines = []
    for review in asking:
        lines.append((review.get("body") or "").strip())
        for comment in client.review_comments(number, review["id"]):
            where = f"{comment.get('path')}:{comment.get('line') or comment.get('original_line') or ''}"
            lines.append(f"{where}: {(comment.get('body') or '').strip()}")
    return CHANGES, "\n".join(line for line in lines if line)


def poll(item_run: "ReviewedItem", attempt: "Attempt", commit: str) -> bool:
    """Whether GitHub has a verdict on the item's work at `commit`, asked by the review watch (off
    the runner's loop: GitHub may be slow); the verdict is kept for the item's APPROVE step."""
    item_run.review_verdict = verdict(item_run, attempt, commit)
    return item_run.review_verdict is not None


def approve_step(item_run: "ReviewedItem", attempt: "Attempt", not_yet: type[Exception]):
    """The APPROVE step of `land: pr`: merged on GitHub, or why not, as the review watch's `poll`
    found; `not_yet` while it is open, or not asked yet. It never asks GitHub itself: it runs in
    the item's attempt, and the pull request it opened a moment ago is asked about from the watch."""
    found, item_run.review_verdict = item_run.review_verdict, None
    if found is None or found[0] == OPENED:
        raise not_yet()
    kind, said = found
    number = attempt.extra["pull_request"]["number"]
    if kind == MERGED:
        attempt.extra["merge"] = {"status": "merged", "merge_commit": said, "pull_request":
                                  attempt.extra["pull_request"].get("url") or f"#{number}"}
        return None
    if kind == CHANGES:
        return f"rejected in review (pull request #{number}): {said}", retry.CHECK
    return said, PERMANENT


def waiting_text(attempt: "Attempt") -> str:
    said = attempt.extra.get("pull_request") or {}
    if "number" in said:
        return f"pull request #{said['number']}" + (f" {said['url']}" if said.get("url") else "")
    return f"its pull request, not open yet: {said.get('error', 'GitHub did not answer')}"


def open_for_batch(isolation, settings, title: str, landed: dict[str, dict], redactor, run_id: str) -> str:
    """`land: pr-batch`, at the end of a run that landed items: the integration branch pushed, and
    one pull request for it opened (or, open already, updated by the push); a line for the user."""
    top, branch = isolation.top, isolation.branch
    try:
        push(settings, top, branch, isolation.tip(), redactor)
    except BatchError as error:
        return f"the batch's pull request was not opened: {error}"
    path = os.path.join(isolation.state_root, PR_FILE)
    earlier = _read_kept(path)
    lines = [f"The batch \"{title}\", run {run_id}, landed:", ""]
    for key, record in landed.items():
        check, merge = record.get("check") or {}, record.get("merge") or {}
        lines.append(f"- **{key}**: merged {str(merge.get('merge_commit', ''))[:12]}"
                     + (", check passed" if check.get("passed") else "")
                     + (f", ${record['cost_usd']:.4f}" if record.get("cost_usd") else ""))
    try:
        client = _client(settings, top)
        if earlier and client.pull(earlier["number"]).get("state") == OPEN:
            return f"pull request #{earlier['number']} updated: {earlier.get('url', '')}".rstrip()
        opened = client.open_pull(f"{title}: {len(landed)} item(s)"[:250], branch, _base_branch(settings, top),
                                  redactor.text("\n".join(lines)))
    except github.GitHubError as error:
        return f"the batch's pull request could not be opened: {redactor.text(str(error))}"
    said = {"number": opened["number"], "url": opened.get("html_url", ""), "branch": branch}
    write_json_atomic(path, said)
    return f"pull request #{said['number']} opened: {said['url']}".rstrip()
