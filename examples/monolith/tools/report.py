"""Gather every module's notes and protocol into REPORT.md."""

from pathlib import Path

parts = ["# Monolith split: report", ""]
for notes in sorted(Path("notes").glob("*.md")):
    protocol = Path("interfaces") / f"{notes.stem}_protocol.py"
    parts += [notes.read_text(), f"Protocol: `{protocol}` ({'present' if protocol.exists() else 'missing'})", ""]
Path("REPORT.md").write_text("\n".join(parts))
print(f"REPORT.md: {len(list(Path('notes').glob('*.md')))} modules")
