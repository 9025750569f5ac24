"""A scripted fake of the OpenAI Responses API, as codex-cli 0.169.0 calls it, on loopback.

    with FakeOpenAI(by_prompt={"Module: auth": [shell("touch a"), text("ok")]}) as api:
        subprocess.run(["codex", "exec", "--json", "-"], env=codex_env(api, home), ...)

What codex-cli 0.169.0 was seen to send (run against this server):

* Only ``POST /v1/responses``, ``stream: true``, answered as server-sent events
  (response.created, response.output_item.added/done, response.completed). Each turn of
  the conversation is one request carrying the whole conversation in ``input``.
* It ignores OPENAI_BASE_URL: the provider comes from ``$CODEX_HOME/config.toml``
  (``model_provider``, ``[model_providers.NAME]`` with base_url, env_key, wire_api).
* Its own retries are per provider: ``request_max_retries`` (an HTTP error before the
  stream) and ``stream_max_retries`` (a stream that broke off), 5 each by default;
  ``stream_idle_timeout_ms`` ends a silent stream (5 minutes by default).
* A 429 whose body's error type is ``usage_limit_reached`` (with ``resets_at``, epoch
  seconds) becomes "You've hit your usage limit ... try again at 2:05 PM."; it is not
  retried.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from loopback_api import Handler, LoopbackAPI, Reply, Request, body_of, error, hang, text, tool

MODEL = "gpt-5-codex"
# Input 1000 of which 600 cached, output 50: what each turn reports.
USAGE = {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 600},
         "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1050}

__all__ = ["FakeOpenAI", "apply_patch", "codex_env", "context_window_exceeded", "error", "find_codex", "hang", "http_error", "shell",
           "text", "usage_limit"]


def shell(command: str) -> Reply:
    """Codex's shell tool, `exec_command`: one command line, run by bash in the sandbox."""
    return tool("exec_command", {"cmd": command})


def apply_patch(patch: str) -> Reply:
    """Codex's apply_patch, a free-form (custom) tool whose input is the patch text."""
    return tool("apply_patch", patch)


def http_error(status: int, message: str = "", code: str | None = None) -> Reply:
    kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
    return error(status, {"error": {"message": message or f"status {status}", "type": kind, "code": code}})


def context_window_exceeded() -> Reply:
    """The Responses API's answer to an input longer than the model's window (a 400, code
    context_length_exceeded); codex says "Codex ran out of room in the model's context window"."""
    return error(400, {"error": {"message": "Your input exceeds the context window of this model. Please adjust "
                                            "your input and try again.", "type": "invalid_request_error",
                                 "param": "input", "code": "context_length_exceeded"}})


def usage_limit(resets_in: float) -> Reply:
    """A ChatGPT plan's usage limit, reset `resets_in` seconds after the request."""
    return error(429, lambda: {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                                         "plan_type": "plus", "resets_at": int(time.time() + resets_in)}})


class FakeOpenAI(LoopbackAPI):
    def is_turn(self, method: str, path: str, body: Any) -> bool:
        return method == "POST" and path == "/v1/responses"

    def user_text(self, body: Any) -> str:
        items = body.get("input") if isinstance(body, dict) else None
        return " ".join(part.get("text", "") for item in items or [] if item.get("role") == "user"
                        for part in item.get("content") or [] if isinstance(part, dict))

    def answer(self, handler: Handler, request: Request, reply: Reply | None) -> None:
        if reply is None:
            handler.send_json(404, {"error": {"message": f"{request.path} not found"}})
        elif reply.kind == "error":
            handler.send_json(reply.status, body_of(reply), reply.headers)
        else:
            self._stream(handler, reply, request.body)

    def _stream(self, handler: Handler, reply: Reply, body: dict) -> None:
        response_id = "resp_" + uuid.uuid4().hex[:16]
        model = body.get("model") or MODEL
        handler.start_stream()
        handler.send_event({"type": "response.created", "response": {"id": response_id, "model": model}},
                           "response.created")
        if reply.kind == "hang":
            self.sleep(reply.seconds)
            return
        items = []
        if reply.text:
            items.append({"type": "message", "role": "assistant", "id": "msg_" + uuid.uuid4().hex[:12],
                          "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})
        if reply.kind == "tool":
            call_id = "call_" + uuid.uuid4().hex[:12]
            if isinstance(reply.arguments, str):
                items.append({"type": "custom_tool_call", "name": reply.tool, "input": reply.arguments,
                              "call_id": call_id, "id": "ctc_" + call_id})
            else:
                # "multi_agent_v1.spawn_agent": a tool of a namespace.
                namespace, _, name = reply.tool.rpartition(".")
                call = {"type": "function_call", "name": name, "call_id": call_id,
                        "arguments": json.dumps(reply.arguments), "id": "fc_" + call_id}
                items.append({**call, "namespace": namespace} if namespace else call)
        for index, item in enumerate(items):
            handler.send_event({"type": "response.output_item.added", "output_index": index, "item": item},
                               "response.output_item.added")
            handler.send_event({"type": "response.output_item.done", "output_index": index, "item": item},
                               "response.output_item.done")
        handler.send_event({"type": "response.completed",
                            "response": {"id": response_id, "model": model, "output": items, "usage": USAGE}},
                           "response.completed")


# --- running the CLI against the fake ------------------------------------------

CI_CODEX = Path(__file__).resolve().parents[1] / ".ci/node/node_modules/.bin/codex"
API_KEY_VARIABLE = "FAKE_OPENAI_KEY"


def find_codex() -> str | None:
    """The codex CLI on PATH, else the repo-local npm install of .ci/run, else None."""
    found = shutil.which("codex")
    return found or (str(CI_CODEX) if os.access(CI_CODEX, os.X_OK) else None)


def codex_env(api: FakeOpenAI, home: Path, codex: str, *, idle_ms: int = 60_000) -> dict:
    """An isolated environment that points codex at the fake: its own CODEX_HOME whose
    config.toml names the fake as the provider, with codex's own retries off."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model_provider = "fake"\n'
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "http://127.0.0.1:{api.port}/v1"\n'
        f'env_key = "{API_KEY_VARIABLE}"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        f"stream_idle_timeout_ms = {idle_ms}\n"
    )
    # Codex will not put its sandbox helper (run through bubblewrap, where that is installed)
    # under the temporary folder, which the test's home is in: give it another temporary folder.
    temporary = home / "tmp"
    temporary.mkdir(exist_ok=True)
    return {
        "PATH": os.pathsep.join([str(Path(codex).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "TMPDIR": str(temporary),
        API_KEY_VARIABLE: "sk-fake-openai-key",
        "NO_PROXY": "127.0.0.1",
    }
