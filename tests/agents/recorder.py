"""A stand-in agent that records what it was given: one JSON line per run, appended to the
file named by its first argument, with its item, its working folder (and the names in it) and its whole prompt.
It changes nothing else, and succeeds."""

import json
import os
import sys

prompt = sys.stdin.read()
with open(sys.argv[1], "a", encoding="utf-8") as stream:
    stream.write(json.dumps({"item": os.environ["BATCH_ITEM"], "cwd": os.getcwd(), "files": sorted(os.listdir()),
                             "prompt": prompt}) + "\n")
print(f"recorded {os.environ['BATCH_ITEM']}")
