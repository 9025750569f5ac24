"""A stand-in for `claude -p --output-format stream-json`, for benchmarks: it replays
assistant events at a steady rate, each saying when it was written, then a result."""

import json
import sys
import time

RATE, SECONDS = float(sys.argv[sys.argv.index("--rate") + 1]), float(sys.argv[sys.argv.index("--seconds") + 1])
session = sys.argv[sys.argv.index("--session-id") + 1]
sys.stdin.read()


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


emit({"type": "system", "subtype": "init", "session_id": session, "model": "claude-sonnet-4-5"})
usage = {"input_tokens": 1200, "output_tokens": 40, "cache_read_input_tokens": 9000, "cache_creation_input_tokens": 2000}
deadline = time.time() + SECONDS
number = 0
if RATE == 0:  # a silent agent: it thinks, saying nothing, until the end
    time.sleep(SECONDS)
while RATE and time.time() < deadline:
    number += 1
    emit({"type": "assistant", "session_id": session,
          "message": {"id": f"msg_{number}", "content": [{"type": "text", "text": f"t={time.time():.6f}"}], "usage": usage}})
    time.sleep(1 / RATE)
emit({"type": "result", "subtype": "success", "is_error": False, "result": "done", "session_id": session,
      "total_cost_usd": 0.0174, "num_turns": number, "usage": usage})
