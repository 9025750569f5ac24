"""Write a typing.Protocol for a module's public functions into interfaces/, and check it imports."""

import ast
import importlib.util
import sys
import time
from pathlib import Path

PACE = 0.8  # seconds
module = sys.argv[1]
print(f"reading notes/{module}.md and src/{module}.py", flush=True)
time.sleep(PACE)  # as an agent would take its time: long enough to watch the panel
tree = ast.parse(Path(f"src/{module}.py").read_text())
methods = [
    f"    def {node.name}(self, {', '.join(a.arg for a in node.args.args)}): ..."
    for node in tree.body
    if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
]
name = module.capitalize() + "Service"
source = "\n".join(["from typing import Protocol", "", "", f"class {name}(Protocol):", *methods]) + "\n"
target = Path("interfaces") / f"{module}_protocol.py"
target.parent.mkdir(exist_ok=True)
target.write_text(source.replace("(self, )", "(self)"))
spec = importlib.util.spec_from_file_location(target.stem, target)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(f"wrote {target}: class {name} with {len(methods)} methods")
