"""The little of GitHub's REST API that `land: pr` needs: open a pull request, read it, its
reviews and their comments. urllib, JSON, a token.

The token comes from GH_TOKEN, else GITHUB_TOKEN, else `gh auth token`; the API's base URL
from `github_api` (GitHub Enterprise: `https://HOST/api/v3`), else GITHUB_API_URL, else
api.github.com. Errors are told apart by cause: a server error or a dropped connection is
retried at once a few times, backing off; a rate limit (primary or secondary: 403 or 429
with its headers) raises RateLimited with when to come back; anything else raises
GitHubError, naming the request and GitHub's message. The token never appears in either.

It touches nothing but the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Mapping

DEFAULT_API = "https://api.github.com"
TOKEN_NAMES = ("GH_TOKEN", "GITHUB_TOKEN")
TRIES, FIRST_BACKOFF = 3, 0.5
TIMEOUT_SECONDS = 30


class GitHubError(Exception):
    pass


class RateLimited(GitHubError):
    def __init__(self, message: str, until: float):
        super().__init__(message)
        self.until = until


def token() -> str | None:
    for name in TOKEN_NAMES:
        if os.environ.get(name):
            return os.environ[name]
    if shutil.which("gh") is None:
        return None
    try:
        found = subprocess.run(["gh", "auth", "token"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def api_base(settings: Mapping[str, Any]) -> str:
    return (settings.get("github_api") or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")


class GitHub:
    def __init__(self, base: str, repo: str, auth: str):
        self.base, self.repo, self._auth = base, repo, auth

    def open_pull(self, title: str, head: str, base: str, body: str) -> dict[str, Any]:
        return self._call("POST", f"/repos/{self.repo}/pulls", {"title": title, "head": head, "base": base,
                                                                "body": body})

    def pull(self, number: int) -> dict[str, Any]:
        return self._call("GET", f"/repos/{self.repo}/pulls/{number}")

    def reviews(self, number: int) -> list[dict[str, Any]]:
        return self._call("GET", f"/repos/{self.repo}/pulls/{number}/reviews?per_page=100")

    def review_comments(self, number: int, review_id: int) -> list[dict[str, Any]]:
        return self._call("GET", f"/repos/{self.repo}/pulls/{number}/reviews/{review_id}/comments?per_page=100")

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        for tried in range(1, TRIES + 1):
            request = urllib.request.Request(self.base + path, data=data, method=method, headers={
                "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                "Authorization": f"Bearer {self._auth}", "User-Agent": "batch-tasks",
                **({"Content-Type": "application/json"} if data is not None else {})})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                said = _message(error)
                limited = _rate_limit(error)
                if limited is not None:
                    raise RateLimited(f"GitHub's rate limit: {method} {path}: {said}", limited) from None
                if error.code < 500 or tried == TRIES:
                    raise GitHubError(f"GitHub said {error.code} to {method} {path}: {said}") from None
            except (urllib.error.URLError, OSError) as error:
                if tried == TRIES:
                    raise GitHubError(f"cannot reach GitHub ({self.base}): {getattr(error, 'reason', error)}") from None
            time.sleep(FIRST_BACKOFF * 2 ** (tried - 1))
        raise AssertionError("unreachable")


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read() or b"{}").get("message", error.reason))
    except ValueError:
        return str(error.reason)


def _rate_limit(error: urllib.error.HTTPError) -> float | None:
    """When to come back, if the error is a rate limit (GitHub's documented headers)."""
    if error.code not in (403, 429):
        return None
    headers = error.headers
    if headers.get("retry-after", "").isdigit():
        return time.time() + int(headers["retry-after"])
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
        return float(headers["x-ratelimit-reset"])
    return time.time() + 60 if error.code == 429 else None
