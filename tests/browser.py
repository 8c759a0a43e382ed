"""Headless Chromium for the browser tests (Debian's chromium, driven by Selenium through
Debian's chromedriver), and the folder their screenshots go to: $CRUCIBLE_SCREENSHOTS, or the
test's temporary folder."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.system_packages import ensure

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--no-first-run",
    "--disable-background-networking",  # nothing but the page under test is fetched
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver, quit at the end."""
    ensure(["chromium", "chromium-driver"], ["/usr/bin/chromium", "/usr/bin/chromedriver"])
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_folder(tmp_path: Path) -> Path:
    out = Path(os.environ.get("CRUCIBLE_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out
