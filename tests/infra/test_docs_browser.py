"""The documentation site in a real headless Chromium (Debian's, driven by Selenium and Debian's
chromedriver, as in tests/flows/test_ui_browser.py): built with --strict into a temporary
folder and served on a free local port, the home page shows its heading and the nav, a stage
page its heading and a table, and the generated configuration reference its keys with their
descriptions. Screenshots go to $CRUCIBLE_SCREENSHOTS (default: the test's temporary folder)."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[str]:
    """The site, built into a temporary folder and served on 127.0.0.1; its base URL."""
    out = tmp_path_factory.mktemp("docs") / "site"
    mkdocs = Path(sys.executable).with_name("mkdocs")
    built = subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", "infra/mkdocs.yml", "-d", str(out)],  # -q would void --strict
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _open(driver, url: str) -> str:
    """Load a page; its visible text once the theme has laid it out."""
    driver.get(url)
    deadline = time.monotonic() + 30
    while not driver.execute_script("return document.readyState === 'complete'"):
        assert time.monotonic() < deadline, url
        time.sleep(0.2)
    # The theme's stylesheet and script loaded from the site itself (nothing is fetched elsewhere):
    # the header is laid out as Material's bar and the nav drawer is hidden behind its toggle.
    header = driver.find_element("css selector", "header.md-header")
    assert header.is_displayed() and header.value_of_css_property("position") in ("sticky", "fixed"), url
    return driver.find_element("tag name", "body").text


def _heading(driver) -> str:
    return driver.find_element("css selector", "article h1").text.strip()


def test_the_home_page_shows_its_heading_and_the_nav(browser, site, shots):
    text = _open(browser, f"{site}/")
    assert "Crucible" in browser.title
    heading = _heading(browser)
    assert heading and heading.split()[0] in (ROOT / "docs" / "index.md").read_text(), heading
    for section in ("Getting started", "Concepts", "Stages", "Operations", "Troubleshooting", "Reference"):
        assert section in text, f"nav section {section!r} not shown:\n{text[:2000]}"
    browser.save_screenshot(str(shots / "docs-home.png"))


def test_a_stage_page_shows_its_heading_and_a_table(browser, site, shots):
    _open(browser, f"{site}/stages/curation/")
    assert "curation" in _heading(browser).lower()
    tables = [t for t in browser.find_elements("css selector", "article table") if t.is_displayed()]
    assert tables, "no table shown on stages/curation"
    assert len(tables[0].find_elements("tag name", "tr")) > 1
    browser.save_screenshot(str(shots / "docs-stage-curation.png"))


def test_the_configuration_reference_shows_keys_and_descriptions(browser, site, shots):
    from tasks.training.config import TrainingConfig

    text = _open(browser, f"{site}/reference/configuration/")
    assert _heading(browser).startswith("Configuration reference")
    row = browser.find_element("xpath", "//tr[td[1]/code[normalize-space()='training.max_steps']]")
    cells = [c.text for c in row.find_elements("tag name", "td")]
    description = TrainingConfig.model_fields["max_steps"].description
    assert cells == ["training.max_steps", "int", "300", description], cells
    for key in ("curation.minhash.bands", "evaluation.judges[].kind", "model.n_layer"):
        assert key in text, key
    # Bring the row into view (under the sticky header) for the screenshot.
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    time.sleep(0.3)
    browser.save_screenshot(str(shots / "docs-configuration.png"))
