"""Render a pytest-html report in headless Chromium and save a PNG, to look at it as a person would.

Usage: python scripts/screenshot_report.py report.html report.png [--height 2400]
Needs Debian's `chromium` (apt-get install chromium). Nothing leaves the machine: the report is a
local file and network access is disabled.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def screenshot(report: Path, png: Path, width: int = 1400, height: int = 2400) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found: apt-get install chromium")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",  # let the report's JavaScript render the table
            f"--screenshot={png.resolve()}",
            report.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"screenshot: {png} ({png.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    screenshot(args.report, args.png, args.width, args.height)


if __name__ == "__main__":
    main()
