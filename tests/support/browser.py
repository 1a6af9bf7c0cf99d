"""A real headless Chromium (Debian's `chromium` + `chromium-driver`), driven by Selenium.

Selenium is pointed at the system binaries explicitly, so Selenium Manager never tries to download
a browser or a driver (there is no network to do it with). Every session gets a fresh profile and
the flags that keep Chromium from reaching out (no component updates, sync or background fetches).
Used by the viewer's browser tests, by the screenshots in docs/img/ and by benchmarks/bench_view.py.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1400,1000",
)
INSTALL = "apt-get install chromium chromium-driver"


def missing() -> str | None:
    """Why no browser test can run here, in one line; None when everything is present."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[dev]')"
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.is_file():
            return f"needs {binary} ({INSTALL})"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A WebDriver on a fresh headless Chromium profile, quit (and its profile removed) afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="agentloop-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: Any, path: Path) -> float:
    """Load a file:// page and wait (bounded) until its script marked it ready; the load time in seconds.

    Measured by the page itself: from navigation start to the end of the viewer's first render.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 120).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    return float(driver.execute_script("return document.body.dataset.readyMs")) / 1000
