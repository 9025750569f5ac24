"""List a module's public functions and its global state into notes/<module>.md."""

import ast
import sys
import time
from pathlib import Path

PACE = 0.8  # seconds
module = sys.argv[1]
source = Path(f"src/{module}.py")
if not source.exists():
    sys.exit(f"inventory: there is no {source} to read")
print(f"reading {source}", flush=True)
time.sleep(PACE)  # as an agent would take its time: long enough to watch the panel
tree = ast.parse(source.read_text())
functions = [
    f"{node.name}({', '.join(a.arg for a in node.args.args)})"
    for node in tree.body
    if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
]
state = [target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets]
notes = Path("notes")
notes.mkdir(exist_ok=True)
lines = [f"# {module}", "", "Public functions:", *[f"- {f}" for f in functions]]
lines += ["", "Global state:", *([f"- {name}" for name in state] or ["- none"])]
(notes / f"{module}.md").write_text("\n".join(lines) + "\n")
print(f"{module}: {len(functions)} public functions ({', '.join(functions)}); global state: {', '.join(state) or 'none'}")
