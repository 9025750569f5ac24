"""The package as people install it: its licence, said everywhere a user looks, and its
metadata, read from pyproject.toml as it is."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_licence_is_said_everywhere_a_user_looks():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert PROJECT["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]
    assert any(c.startswith("Programming Language :: Python :: 3") for c in PROJECT["classifiers"])
    assert "\n## Licence\n\nMIT: see [LICENSE](LICENSE).\n" in (ROOT / "README.md").read_text(encoding="utf-8")
