"""One synthetic item of bench/pipeline.py: sleep its duration, write its output, log when it ran.

    python -S bench/sleeper.py MODULE GROUP

Runs in a work folder holding durations.json ({"GROUP:MODULE": seconds}) and out/.
Writes out/GROUP-MODULE (make's target) and appends "GROUP MODULE START END"
(time.time() of its first and last moments) to times.log.
"""

import json
import os
import sys
import time


def main() -> None:
    started = time.time()
    module, group = sys.argv[1], sys.argv[2]
    with open("durations.json") as stream:
        seconds = json.load(stream)[f"{group}:{module}"]
    time.sleep(seconds)
    with open(f"out/{group}-{module}", "w") as stream:
        stream.write(f"{seconds}\n")
    finished = time.time()
    # One write() to a file opened O_APPEND: lines of concurrent sleepers never interleave.
    log = os.open("times.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(log, f"{group} {module} {started!r} {finished!r}\n".encode())
    finally:
        os.close(log)


if __name__ == "__main__":
    main()
