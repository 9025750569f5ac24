"""A stand-in `check`: fails the first time for each module named in $CHECK_FAILS_ONCE
(remembering that in $CHECK_STATE, outside the repository), passes otherwise; the first
time for each module in $CHECK_HANGS_ONCE it first hangs (for a test to kill the runner)."""

import os
import sys
import time

module = sys.argv[1]
hung = os.path.join(os.environ["CHECK_STATE"], f"{module}.hung")
if module in os.environ.get("CHECK_HANGS_ONCE", "").split(",") and not os.path.exists(hung):
    open(hung, "w").close()
    time.sleep(60)
state = os.path.join(os.environ["CHECK_STATE"], module)
if module in os.environ.get("CHECK_FAILS_ONCE", "").split(",") and not os.path.exists(state):
    open(state, "w").close()
    print(f"FAILED tests/{module}: expected a docstring")
    sys.exit(1)
print("ok")
