"""A scripted fake of the Anthropic Messages API, for running the real Claude
Code CLI offline in tests (stdlib only).

    with FakeAnthropic([tool_use("Write", {...}), text("ok")]) as api:
        subprocess.run([claude, "-p", ...], env=cli_env(api.url, home), ...)
        assert api.tool_results()[0]["is_error"] is False

Each *main* POST /v1/messages consumes the next scripted reply; once the
script is used up the server answers plain text "done" / end_turn.

What Claude Code 2.1.330 (native binary) was seen to send, found by running
it against this server and reading the strings in its bundle:

* ``HEAD /api/hello`` at start-up (a connectivity pre-check; skipped with
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1). Answered 200.
* ``POST /v1/messages?beta=true`` with ``stream: true`` for every turn of the
  conversation. The main loop's requests always carry the CLI's ``tools`` list
  and a large ``max_tokens``.
* In ``-p`` mode nothing else reached the base URL (no count_tokens, no
  /v1/models, no OAuth; telemetry goes to other hosts and is disabled by the
  DISABLE_* env vars). The bundle does contain side calls that would hit
  /v1/messages: a quota probe (``max_tokens: 1``, content "quota"), model /
  API-key checks (``max_tokens: 1``, "Hi" / "test"), session title and
  summary generation (small model, no ``tools``). So a request is treated as
  *side* when ``max_tokens <= 1`` or it has no ``tools``; side requests get a
  canned "done" and never consume the script. Pass ``is_main=`` to override.
  Subagent (Agent tool) turns do carry tools, so they consume the script too.
* No non-streaming request was seen; one would get a plain JSON message.
* A tool call's input may say ``{cwd}``: it is given the session's working
  directory, as the CLI states it in its environment message.
* count_tokens and /v1/models are answered anyway (cheap); other paths get a
  404 in Anthropic's error format.

``prompt_cache=True`` charges main requests as the real API's prompt cache does:
a request's prompt (its tools, system and messages, in that order; 4 characters
a token) is read from the cache as far as it shares a prefix with a prompt
cached less than 5 minutes ago, and written for the rest (the CLI marks the
last message for caching, so all of it is cacheable); a prompt is cached once
its response begins. The CLI prices the usage: a write at 1.25 x the input
price, a read at 0.1 x. Each request records its ``cache_read`` and
``cache_write`` tokens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
CACHE_SECONDS = 300.0  # the API's default cache lifetime, renewed by each read

# Token counts chosen so the CLI computes a small but non-zero cost.
DEFAULT_USAGE = {
    "input_tokens": 1200,
    "output_tokens": 40,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 9000,
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


# --- scripted replies -------------------------------------------------------


@dataclass
class Reply:
    kind: str  # "text" | "tool_use" | "error" | "hang"
    text: str = ""
    tool: str = ""
    input: dict = field(default_factory=dict)
    status: int = 200
    message: str = ""
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0  # how long a "hang" stalls
    delay: float = 0.0  # wait before answering at all
    together: int = 0  # held until this many main requests have come, for `delay` at most
    until: threading.Event | None = None  # held until the test sets it (or the server stops)


def text(answer: str = "done", *, delay: float = 0.0, together: int = 0,
         until: threading.Event | None = None) -> Reply:
    """An assistant text answer, stop_reason end_turn; with `together`, not before that many
    main requests have come (sessions known to be in flight at once, without a timing window);
    with `until`, not before the test has seen what it looks at while the agent runs."""
    return Reply("text", text=answer, delay=delay, together=together, until=until)


def tool_use(name: str, input: dict, *, text: str = "", delay: float = 0.0) -> Reply:
    """A tool call (optionally preceded by some text), stop_reason tool_use."""
    return Reply("tool_use", tool=name, input=input, text=text, delay=delay)


def error(
    status: int,
    message: str = "",
    *,
    retry_after: int | None = None,
    headers: dict | None = None,
    delay: float = 0.0,
) -> Reply:
    """An HTTP error with Anthropic's JSON error body. The CLI reads
    retry-after as whole seconds; headers={"x-should-retry": "false"} makes it
    give up without retrying."""
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["retry-after"] = str(retry_after)
    etype = ERROR_TYPES.get(status, "api_error")
    return Reply("error", status=status, message=message or etype.replace("_", " "),
                 headers=hdrs, delay=delay)


def prompt_too_long(tokens: int = 208310, limit: int = 200000) -> Reply:
    """The API's answer to a conversation longer than the model's window: a 400
    invalid_request_error "prompt is too long: N tokens > M maximum"."""
    return error(400, f"prompt is too long: {tokens} tokens > {limit} maximum")


def hang(seconds: float, *, delay: float = 0.0) -> Reply:
    """Send 200 + message_start, stall `seconds`, then drop the connection
    without finishing the message (the server's stop() cuts the stall short).
    The CLI's stream-idle watchdog cannot go below 5 minutes; a stall *before*
    the headers (`delay=`) is cut by API_TIMEOUT_MS instead."""
    return Reply("hang", seconds=seconds, delay=delay)


# --- recorded requests ------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: Any  # parsed JSON, raw text, or None
    main: bool = False  # a main-conversation turn (consumes the script)
    reply: str = ""  # kind of reply given
    time: float = field(default_factory=time.monotonic)  # arrival, for retry gaps
    cache_read: int = 0  # tokens, with prompt_cache
    cache_write: int = 0


def default_is_main(body: Any) -> bool:
    """Main-loop requests carry the tool list and a real max_tokens; probes
    (max_tokens 1) and title/summary calls (no tools) are side requests."""
    return (
        isinstance(body, dict)
        and bool(body.get("tools"))
        and (body.get("max_tokens") or 0) > 1
    )


# --- the server -------------------------------------------------------------


class FakeAnthropic:
    def __init__(
        self,
        turns: list[Reply] = (),
        *,
        model: str | None = None,  # None: echo the requested model
        usage: dict | None = None,
        is_main: Callable[[Any], bool] = default_is_main,
        by_prompt: dict[str, list[Reply]] | None = None,
        prompt_cache: bool = False,
    ):
        self.script = list(turns)
        self.prompt_cache = prompt_cache
        self._cached: dict[str, float] = {}  # a cached prompt → when it was last written or read
        # For sessions running at once: a conversation whose first user message
        # contains a key takes its replies from that key's script.
        self.by_prompt = {key: list(replies) for key, replies in (by_prompt or {}).items()}
        self.model = model
        self.usage = dict(usage or DEFAULT_USAGE)
        self.is_main = is_main
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # told of each main request
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> "FakeAnthropic":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True  # never block shutdown on a handler
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._httpd:
            return
        self._stopping.set()  # wakes delays and hangs
        with self._arrived:
            self._arrived.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # inspection helpers for tests
    @property
    def main_requests(self) -> list[Request]:
        return [r for r in self.requests if r.main]

    @property
    def remaining(self) -> int:
        return len(self.script)

    def tool_results(self) -> list[dict]:
        """tool_result blocks in the last main request (it holds the whole
        conversation so far)."""
        if not self.main_requests:
            return []
        return [
            block
            for msg in self.main_requests[-1].body.get("messages", [])
            if isinstance(msg.get("content"), list)
            for block in msg["content"]
            if block.get("type") == "tool_result"
        ]

    # internals
    def _record(self, req: Request) -> Reply | None:
        """Store the request; for a main /v1/messages call pop its reply."""
        with self._lock:
            self.requests.append(req)
            if not req.main:
                return None
            self._charge_cache(req)  # before the held requests hear of it and are cached
            self._arrived.notify_all()
            first = _first_user_text(req.body)
            for key, replies in self.by_prompt.items():
                if key in first:
                    return _in_working_directory(replies.pop(0), req.body) if replies else None
            if self.script:
                return _in_working_directory(self.script.pop(0), req.body)
        return None

    def _charge_cache(self, req: Request) -> None:
        """With prompt_cache, what the request reads from the cache and writes to it, as the API
        decides on arrival (the prompt is cached by `_cache`, once its response begins).
        Called with the lock held."""
        if not self.prompt_cache:
            return
        prompt = _prompt(req.body)
        now = time.monotonic()
        live = [cached for cached, at in self._cached.items() if now - at < CACHE_SECONDS]
        shared = max((_common_prefix(prompt, cached) for cached in live), default=0)
        for cached in live:
            if shared and cached.startswith(prompt[:shared]):
                self._cached[cached] = now  # a read renews the entry
        req.cache_read, req.cache_write = shared // 4, (len(prompt) - shared) // 4

    def _usage(self, req: Request) -> dict:
        """The request's usage: the script's, or with prompt_cache, its cache reads and writes."""
        if not (self.prompt_cache and req.main):
            return self.usage
        return dict(self.usage, input_tokens=0, cache_read_input_tokens=req.cache_read,
                    cache_creation_input_tokens=req.cache_write)

    def _cache(self, req: Request) -> None:
        if self.prompt_cache and req.main:
            with self._lock:
                self._cached[_prompt(req.body)] = time.monotonic()

    def _sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False if the server is stopping."""
        return not self._stopping.wait(seconds) if seconds > 0 else True

    def _hold(self, reply: Reply) -> bool:
        """Wait as the reply says; False if the server is stopping."""
        if reply.until is not None:
            while not (reply.until.wait(0.1) or self._stopping.is_set()):
                pass
            return not self._stopping.is_set()
        if not reply.together:
            return self._sleep(reply.delay)
        with self._arrived:
            self._arrived.wait_for(lambda: self._stopping.is_set() or len(self.main_requests) >= reply.together,
                                   timeout=reply.delay)
        return not self._stopping.is_set()


def _in_working_directory(reply: Reply, body: Any) -> Reply:
    """A tool call whose input says `{cwd}` gets the session's working directory there, as the
    CLI told it ("Primary working directory: ..."): for a session whose folder the test cannot
    know (a remote worker's worktree)."""
    if reply.kind != "tool_use" or "{cwd}" not in json.dumps(reply.input):
        return reply
    found = re.search(r"Primary working directory: ([^\s\\]+)", json.dumps(body))
    if found is None:
        return reply
    return replace(reply, input=json.loads(json.dumps(reply.input).replace("{cwd}", found.group(1))))


def _prompt(body: Any) -> str:
    """What the API caches, in its order: tools, then system, then messages."""
    return json.dumps([body.get("tools"), body.get("system"), body.get("messages")], sort_keys=True)


def _common_prefix(a: str, b: str) -> int:
    """How many characters `a` and `b` share from their start (by halves: slices compare in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _first_user_text(body: Any) -> str:
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(b.get("text", "") for b in content or [] if isinstance(b, dict))
    return ""


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    server_version = "fake-anthropic"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _read_body(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", obj.get("request_id") or _request_id())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_body()
        is_messages = self.command == "POST" and path == "/v1/messages"
        req = Request(self.command, self.path, dict(self.headers), body,
                      main=is_messages and self.fake.is_main(body))
        reply = self.fake._record(req)
        try:
            if is_messages:
                reply = reply or text("done")
                req.reply = reply.kind
                self._messages(body, reply, req)
            elif path == "/v1/messages/count_tokens":
                self._json(200, {"input_tokens": len(json.dumps(body)) // 4})
            elif path == "/api/hello":
                self._json(200, {"message": "hello"})
            elif path == "/v1/models":
                model = self.fake.model or DEFAULT_MODEL
                self._json(200, {"data": [_model_info(model)], "has_more": False,
                                 "first_id": model, "last_id": model})
            else:
                self._json(404, _error_body(404, f"{path} not found"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI gave up on this request (timeout, abort, exit)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = _handle

    def _messages(self, body: Any, reply: Reply, req: Request) -> None:
        fake = self.fake
        body = body if isinstance(body, dict) else {}
        usage = fake._usage(req)
        if not fake._hold(reply):
            return
        if reply.kind == "error":
            self._json(reply.status, _error_body(reply.status, reply.message), reply.headers)
            return
        model = fake.model or body.get("model") or DEFAULT_MODEL
        msg = _message(reply, model, usage)
        fake._cache(req)
        if not body.get("stream"):
            if reply.kind == "hang":
                fake._sleep(reply.seconds)
                self.close_connection = True
                return
            self._json(200, msg)
            return

        # Streaming: HTTP/1.0-style response delimited by closing the socket.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", _request_id())
        self.end_headers()
        self.close_connection = True
        start = dict(msg, content=[], stop_reason=None,
                     usage=dict(usage, output_tokens=1))
        self.wfile.write(_sse("message_start", {"type": "message_start", "message": start}))
        self.wfile.write(_sse("ping", {"type": "ping"}))
        self.wfile.flush()
        if reply.kind == "hang":
            fake._sleep(reply.seconds)
            return
        for i, block in enumerate(msg["content"]):
            for event in _block_events(i, block):
                self.wfile.write(event)
        self.wfile.write(_sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }))
        self.wfile.write(_sse("message_stop", {"type": "message_stop"}))
        self.wfile.flush()


def _message(reply: Reply, model: str, usage: dict) -> dict:
    content = []
    if reply.text or reply.kind != "tool_use":
        content.append({"type": "text", "text": reply.text or "done"})
    if reply.kind == "tool_use":
        content.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24],
                        "name": reply.tool, "input": reply.input})
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if reply.kind == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": dict(usage),
    }


def _block_events(index: int, block: dict) -> list[bytes]:
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    else:
        start = dict(block, input={})
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    return [
        _sse("content_block_start", {"type": "content_block_start", "index": index,
                                     "content_block": start}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                     "delta": delta}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def _error_body(status: int, message: str) -> dict:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": _request_id(),
    }


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


def _model_info(model: str) -> dict:
    return {"type": "model", "id": model, "display_name": model,
            "created_at": "2025-09-29T00:00:00Z"}


# --- running the CLI against the fake ----------------------------------------

CI_CLAUDE = Path(__file__).resolve().parents[1] / ".ci/node/node_modules/.bin/claude"


def find_claude() -> str | None:
    """The claude binary on PATH, else the repo-local npm install, else None."""
    found = shutil.which("claude")
    if found:
        return found
    return str(CI_CLAUDE) if os.access(CI_CLAUDE, os.X_OK) else None


def claude_path_env(claude: str) -> str:
    """PATH with the directory of `claude` first, for processes that look it up."""
    return os.pathsep.join([str(Path(claude).parent), os.environ.get("PATH", "/usr/bin:/bin")])


def cli_env(base_url: str, home: str | os.PathLike, **extra: str) -> dict:
    """A minimal, isolated environment for a headless CLI session. Creates
    home/tmp: TMPDIR there keeps the CLI's cc-socks/ and claude-0/ out of /tmp."""
    tmp = Path(home) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "CLAUDE_CONFIG_DIR": str(Path(home) / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-key",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "NO_PROXY": "127.0.0.1",
    }
    env.update(extra)
    return env
