"""A scripted fake of the Gemini API, as gemini-cli 0.61.0 calls it, on loopback.

    with FakeGemini(by_prompt={"Module: auth": [write_file("a.md", "# a"), text("ok")]}) as api:
        subprocess.run(["gemini", "--output-format", "stream-json"], env=gemini_env(api, home), ...)

What gemini-cli 0.61.0 was seen to send (run against this server):

* Each turn of the conversation: ``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse``,
  the whole conversation in ``contents``, answered as server-sent events of
  GenerateContentResponse chunks.
* With no model set it first asks a flash-lite model, with ``generateContent`` (not
  streamed) and a JSON response schema, for a ``complexity_score`` to choose the model.
  Such requests are side requests here: answered, never taking a scripted reply.
* It reads GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY, but headless it exits 41
  ("Invalid auth method selected.") unless ``$GEMINI_CLI_HOME/.gemini/settings.json``
  selects the API key (``security.auth.selectedType: gemini-api-key``).
* It retries 429 and 5xx itself, ``general.maxAttempts`` times (10 at most and by
  default, backing off from 5 s to 30 s): the tests set 1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from loopback_api import Handler, LoopbackAPI, Reply, Request, body_of, error, hang, text, tool

MODEL = "gemini-2.5-flash"
# What each turn reports: 1000 prompt tokens (600 from the cache), 50 out.
USAGE = {"promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 50,
         "totalTokenCount": 1050}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
          500: "INTERNAL", 503: "UNAVAILABLE"}

__all__ = ["FakeGemini", "api_error", "error", "find_gemini", "gemini_env", "hang", "shell", "text", "token_limit",
           "write_file"]


def write_file(file_path: str, content: str) -> Reply:
    return tool("write_file", {"file_path": file_path, "content": content})


def shell(command: str) -> Reply:
    return tool("run_shell_command", {"command": command})


def api_error(status: int, message: str, *, retry_delay: str | None = None) -> Reply:
    """An error as Google's APIs word it; `retry_delay` ("1.5s") adds a RetryInfo."""
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}] if retry_delay else []
    return error(status, {"error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN"),
                                    "details": details}})


def token_limit(count: int = 1200293, limit: int = 1048576) -> Reply:
    """The API's answer to a conversation longer than the model's window: a 400 INVALID_ARGUMENT
    "The input token count (N) exceeds the maximum number of tokens allowed (M)."."""
    message = f"The input token count ({count}) exceeds the maximum number of tokens allowed ({limit})."
    return error(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT",
                                 "errors": [{"message": message, "domain": "global", "reason": "badRequest"}]}})


class FakeGemini(LoopbackAPI):
    def is_turn(self, method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith(":streamGenerateContent")

    def user_text(self, body: Any) -> str:
        contents = body.get("contents") if isinstance(body, dict) else None
        return " ".join(part.get("text", "") for content in contents or [] if content.get("role") == "user"
                        for part in content.get("parts") or [] if isinstance(part, dict))

    def model_of(self, request: Request) -> str:
        return request.path.split("/models/", 1)[-1].split(":", 1)[0]

    def answer(self, handler: Handler, request: Request, reply: Reply | None) -> None:
        path = request.path.split("?", 1)[0]
        if reply is None and path.endswith(":generateContent"):
            # The model router's question: a JSON answer, the simplest task.
            answer = json.dumps({"complexity_reasoning": "a simple task", "complexity_score": 1})
            handler.send_json(200, self._chunk(self.model_of(request), [{"text": answer}], "STOP"))
        elif reply is None and path.endswith(":countTokens"):
            handler.send_json(200, {"totalTokens": len(json.dumps(request.body)) // 4})
        elif reply is None:
            handler.send_json(404, {"error": {"code": 404, "message": f"{path} not found", "status": "NOT_FOUND"}})
        elif reply.kind == "error":
            handler.send_json(reply.status, body_of(reply), reply.headers)
        else:
            self._stream(handler, reply, self.model_of(request))

    def _chunk(self, model: str, parts: list[dict], finish: str | None) -> dict:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": USAGE, "modelVersion": model}

    def _stream(self, handler: Handler, reply: Reply, model: str) -> None:
        handler.start_stream()
        if reply.kind == "hang":
            handler.send_event(self._chunk(model, [{"text": "Let me think"}], None))
            self.sleep(reply.seconds)
            return
        parts = [{"text": reply.text}] if reply.text else []
        if reply.kind == "tool":
            parts.append({"functionCall": {"name": reply.tool, "args": reply.arguments}})
        handler.send_event(self._chunk(model, parts, "STOP"))


# --- running the CLI against the fake ------------------------------------------

CI_GEMINI = Path(__file__).resolve().parents[1] / ".ci/node/node_modules/.bin/gemini"


def find_gemini() -> str | None:
    """The gemini CLI on PATH, else the repo-local npm install of .ci/run, else None."""
    found = shutil.which("gemini")
    return found or (str(CI_GEMINI) if os.access(CI_GEMINI, os.X_OK) else None)


def gemini_env(api: FakeGemini, home: Path, gemini: str) -> dict:
    """An isolated environment that points gemini at the fake, with the API key selected
    and gemini's own retries down to one attempt."""
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"maxAttempts": 1},
        "privacy": {"usageStatisticsEnabled": False},
    }))
    return {
        "PATH": os.pathsep.join([str(Path(gemini).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(home),
        "GEMINI_CLI_HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{api.port}",
        "GEMINI_API_KEY": "fake-gemini-key",
        "NO_PROXY": "127.0.0.1",
    }
