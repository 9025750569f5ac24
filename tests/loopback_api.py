"""What the loopback fakes of model APIs share (tests/fake_openai.py, tests/fake_gemini.py):
a threaded HTTP server on 127.0.0.1, scripted replies per conversation, and a log of
every request. Stdlib only. Each fake says how its API's requests and replies look.

A conversation is routed by its prompt: the first key of `by_prompt` found in the
request's user text takes the next reply of that key's script; other requests take
the next reply of `turns`. A used-up script answers plain text "done".
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    kind: str  # "text" | "tool" | "error" | "hang"
    text: str = ""
    tool: str = ""  # the tool's name, as the API offers it to the model
    arguments: Any = None  # a dict (JSON arguments), or a string (a custom tool's input)
    status: int = 200
    body: Any = None  # an error's JSON body, or a function that makes it when the request comes
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0  # how long a hang stalls the stream


def text(answer: str = "done") -> Reply:
    """The model's final answer."""
    return Reply("text", text=answer)


def tool(name: str, arguments: Any, *, text: str = "") -> Reply:
    """The model calls a tool (with some text first, if given)."""
    return Reply("tool", tool=name, arguments=arguments, text=text)


def error(status: int, body: Any, *, headers: dict | None = None) -> Reply:
    """An HTTP error with its JSON body."""
    return Reply("error", status=status, body=body, headers=dict(headers or {}))


def hang(seconds: float) -> Reply:
    """Start the stream, then stall `seconds` (stop() cuts it short) and drop it."""
    return Reply("hang", seconds=seconds)


def body_of(reply: Reply) -> Any:
    """An error reply's body, made now if it is made when the request comes."""
    return reply.body() if callable(reply.body) else reply.body


@dataclass
class Request:
    method: str
    path: str
    body: Any
    main: bool = False  # a conversation turn, which takes a scripted reply
    reply: str = ""  # the kind of reply given
    key: str = ""  # the by_prompt key that routed it
    time: float = field(default_factory=time.time)  # when it came


class LoopbackAPI:
    """The server; a fake's subclass says which requests are turns and how to answer them."""

    def __init__(self, turns: list[Reply] = (), *, by_prompt: dict[str, list[Reply]] | None = None):
        self.script = list(turns)
        self.by_prompt = {key: list(replies) for key, replies in (by_prompt or {}).items()}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- what a fake defines ---
    def is_turn(self, method: str, path: str, body: Any) -> bool:
        raise NotImplementedError

    def user_text(self, body: Any) -> str:
        raise NotImplementedError

    def answer(self, handler: "Handler", request: Request, reply: Reply | None) -> None:
        """Answer one request (reply is None for requests that are no turn)."""
        raise NotImplementedError

    # --- lifecycle ---
    def start(self):
        handler = type("BoundHandler", (Handler,), {"api": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self.stopping.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    # --- for tests ---
    def turns(self, key: str | None = None) -> list[Request]:
        """The conversation turns served, all of them or those of one by_prompt key."""
        return [r for r in self.requests if r.main and (key is None or r.key == key)]

    def sleep(self, seconds: float) -> bool:
        """An interruptible sleep; False if the server is stopping."""
        return not self.stopping.wait(seconds) if seconds > 0 else True

    def _take(self, request: Request) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            if not request.main:
                return None
            prompt = self.user_text(request.body)
            for key, replies in self.by_prompt.items():
                if key in prompt:
                    request.key = key
                    return replies.pop(0) if replies else text()
            return self.script.pop(0) if self.script else text()


class Handler(BaseHTTPRequestHandler):
    api: LoopbackAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0]
        request = Request(self.command, self.path, body, main=self.api.is_turn(self.command, path, body))
        reply = self.api._take(request)
        request.reply = reply.kind if reply else ""
        try:
            self.api.answer(self, request, reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI gave up on this request

    do_GET = do_POST = do_HEAD = _handle

    def send_json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        """An SSE response, ended by closing the connection."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def send_event(self, data: Any, event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
