"""A loopback fake of the little of GitHub's REST API that `land: pr` uses: pull requests
(open, read), their reviews and review comments, and a merge made by the test, over a real
bare git repository (a pull request's head is what its branch holds there, as on GitHub).

    with FakeGitHub(bare_repo, token="t0ken") as github:   # github.url: the API's base
        ...                                                 # the run opens a pull request
        github.request_changes(1, "Use double quotes", [("shared.py", 2, "this line")])
        github.merge(1)                                     # as a person would, on GitHub
    github.fail_next(502) / github.rate_limit_next(reset_in=1.0)   # faults, for one request
    github.hold_reads(1) ... github.release()   # a slow GitHub: reads of pull request #1 wait

It also serves the bare repository over git's smart HTTP (`github.git_url`), to a push that
authenticates as `land: pr` does (HTTP Basic, `x-access-token` and the token), and keeps each
push's Authorization in `git_auth`.

Only what is needed: a request it does not know is a 404, one without the token a 401.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeGitHub:
    def __init__(self, bare: Path, token: str, repo: str = "acme/widgets"):
        self.bare, self.token, self.repo = bare, token, repo
        self.pulls: dict[int, dict] = {}
        self.reviews: dict[int, list[dict]] = {}
        self.comments: dict[int, list[dict]] = {}  # by review id
        self.requests: list[tuple[str, str, int]] = []  # method, path, status answered
        self.faults: list[tuple[int, dict]] = []  # (status, headers) for the next requests
        self.git_auth: list[str | None] = []  # the Authorization of each request for the git remote
        self.held: set[int] = set()  # pull requests whose reads wait for `release` (or 60 s)
        self.holding = 0  # reads waiting now
        self._released = threading.Event()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "FakeGitHub":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def git_url(self) -> str:
        return f"{self.url}/git/{self.bare.name}"

    def serve_git(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        """git's smart HTTP, by `git http-backend` (CGI) over the bare repository."""
        auth = headers.get("Authorization")
        with self.lock:
            self.git_auth.append(auth)
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if auth != f"Basic {basic}":
            return 401, {"WWW-Authenticate": 'Basic realm="GitHub"'}, b"Bad credentials"
        route, _, query = path.partition("?")
        env = {**os.environ, "GIT_PROJECT_ROOT": str(self.bare.parent), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": route.removeprefix("/git"), "QUERY_STRING": query, "REQUEST_METHOD": method,
               "CONTENT_TYPE": headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_USER": "x-access-token", "REMOTE_ADDR": "127.0.0.1"}
        done = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env)
        head, _, answer = done.stdout.partition(b"\r\n\r\n")
        said = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
        status = int(said.pop("Status", "200").split()[0])
        return status, said, answer

    # What a test (a person on GitHub) does.
    def head(self, branch: str) -> str:
        return subprocess.run(["git", "rev-parse", f"refs/heads/{branch}"], cwd=self.bare, capture_output=True,
                              text=True).stdout.strip()

    def request_changes(self, number: int, body: str, comments: list[tuple[str, int, str]] = ()) -> None:
        with self.lock:
            review_id = 1000 + sum(len(r) for r in self.reviews.values())
            commit = self.head(self.pulls[number]["head"]["ref"])
            self.reviews.setdefault(number, []).append({"id": review_id, "state": "CHANGES_REQUESTED", "body": body,
                                                        "commit_id": commit, "user": {"login": "reviewer"}})
            self.comments[review_id] = [{"path": path, "line": line, "body": text} for path, line, text in comments]

    def merge(self, number: int) -> str:
        """Merged as GitHub's "rebase and merge" of one commit would: the base moves to the head."""
        with self.lock:
            pull = self.pulls[number]
            head = self.head(pull["head"]["ref"])
            subprocess.run(["git", "update-ref", f"refs/heads/{pull['base']['ref']}", head], cwd=self.bare, check=True)
            pull.update(merged=True, state="closed", merge_commit_sha=head)
            return head

    def hold_reads(self, number: int) -> None:
        self.held.add(number)

    def release(self) -> None:
        self._released.set()

    def _wait_if_held(self, method: str, route: str) -> None:
        found = re.fullmatch(f"/repos/{self.repo}/pulls/(\\d+)", route)
        if method == "GET" and found is not None and int(found.group(1)) in self.held:
            with self.lock:
                self.holding += 1
            self._released.wait(60)
            with self.lock:
                self.holding -= 1

    def fail_next(self, status: int) -> None:
        self.faults.append((status, {}))

    def rate_limit_next(self, reset_in: float) -> None:
        self.faults.append((403, {"x-ratelimit-remaining": "0", "reset_in": reset_in}))

    # Answering.
    def answer(self, method: str, path: str, headers, body: dict | None) -> tuple[int, dict, object]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials"}
        self._wait_if_held(method, path.split("?", 1)[0])
        with self.lock:
            if self.faults:
                status, extra = self.faults.pop(0)
                if "reset_in" in extra:  # from when it is answered, as GitHub's is
                    reset = str(int(time.time() + extra["reset_in"]) + 1)
                    extra = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
                return status, extra, {"message": "API rate limit exceeded" if status == 403 else "Server Error"}
        prefix = f"/repos/{self.repo}/pulls"
        route = path.split("?", 1)[0]
        if method == "POST" and route == prefix:
            with self.lock:
                number = len(self.pulls) + 1
                self.pulls[number] = {"number": number, "html_url": f"https://github.example/{self.repo}/pull/{number}",
                                      "state": "open", "merged": False, "title": body["title"], "body": body["body"],
                                      "head": {"ref": body["head"]}, "base": {"ref": body["base"]}}
                return 201, {}, self._pull(number)
        found = re.fullmatch(prefix + r"/(\d+)(/reviews(?:/(\d+)/comments)?)?", route)
        if method != "GET" or found is None or int(found.group(1)) not in self.pulls:
            return 404, {}, {"message": "Not Found"}
        number = int(found.group(1))
        with self.lock:
            if found.group(3):
                return 200, {}, self.comments.get(int(found.group(3)), [])
            if found.group(2):
                return 200, {}, self.reviews.get(number, [])
            return 200, {}, self._pull(number)

    def _pull(self, number: int) -> dict:
        pull = self.pulls[number]
        sha = pull["merge_commit_sha"] if pull["merged"] else self.head(pull["head"]["ref"])
        head = dict(pull["head"], sha=sha)
        return {**pull, "head": head}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.startswith("/git/"):
            self._answer(*self.fake.serve_git(self.command, self.path, self.headers, self.rfile.read(length)))
            return
        body = json.loads(self.rfile.read(length)) if length else None
        status, headers, answer = self.fake.answer(self.command, self.path, self.headers, body)
        with self.fake.lock:
            self.fake.requests.append((self.command, self.path, status))
        self._answer(status, {"Content-Type": "application/json", **headers}, json.dumps(answer).encode())

    def _answer(self, status: int, headers: dict, data: bytes) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve

    def log_message(self, *args) -> None:
        pass
