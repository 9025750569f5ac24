"""List a module's public functions and its global state into notes/<module>.md."""

import ast
import sys
from pathlib import Path

module = sys.argv[1]
tree = ast.parse(Path(f"src/{module}.py").read_text())
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
