"""The README's picture of a report: runs the example batch (`doit example`), then
opens its report (build/example/report.html) in headless Chromium and saves the top of
the page as docs/report.png.

    python examples/report_screenshot.py [--height 1150]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chromium import Chromium, executable  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1150, help="pixels of the page to keep, from its top")
    options = parser.parse_args()
    if executable() is None:
        raise SystemExit("needs chromium on PATH (apt-get install chromium)")
    subprocess.run([sys.executable, "-m", "doit", "example"], cwd=ROOT, check=True, capture_output=True)
    with Chromium(width=1300, height=options.height) as browser:
        browser.open(ROOT / "build" / "example" / "report.html")
        if browser.errors():
            raise SystemExit(f"the report has errors: {browser.errors()}")
        browser.screenshot(ROOT / "docs" / "report.png", height=options.height)
    print(f"wrote {ROOT / 'docs' / 'report.png'}")


if __name__ == "__main__":
    main()
