"""The Prefect UI in a real headless Chromium (Debian's, driven by Selenium and Debian's
chromedriver), served on a non-default port: a finished debug run shows its four subflows
and every artifact, the loss curve renders, and a failed run names its stage and reason.
Screenshots go to $CRUCIBLE_SCREENSHOTS (default: the test's temporary folder)."""

from __future__ import annotations

import time

import pytest

from tests.flows.e2e_env import crucible, prefect_client

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _text(driver) -> str:
    return driver.find_element("tag name", "body").text


def _wait_text(driver, *needles: str, timeout: float = 45) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _text(driver)
        if all(n in text for n in needles) or time.monotonic() > deadline:
            missing = [n for n in needles if n not in text]
            assert not missing, f"not shown: {missing}\n{text[:3000]}"
            return text
        time.sleep(0.5)


def _tab(driver, name: str) -> None:
    driver.find_element(
        "xpath", f"//button[normalize-space()='{name}'] | //*[@role='tab' and normalize-space()='{name}']"
    ).click()


def _open_run(driver, ui: str, flow_run_id, tab: str, *needles: str) -> str:
    driver.get(f"{ui}/v2/runs/flow-run/{flow_run_id}")
    _wait_text(driver, tab)
    assert "Unable to connect" not in _text(driver)  # the UI found its API on this port
    _tab(driver, tab)
    return _wait_text(driver, *needles)


def _subflows(ui: str, flow_run_id) -> dict:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client(f"{ui}/api") as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
            sort=FlowRunSort.START_TIME_ASC,
            limit=50,
        )
        return {client.read_flow(r.flow_id).name: r.id for r in runs}


def test_a_finished_run_shows_its_subflows_and_artifacts(browser, pipeline_run, e2e, shots):
    flow_run_id = pipeline_run.flow_run_id
    _open_run(browser, e2e.ui, flow_run_id, "Subflow Runs", "4 Subflow runs", "curate", "tokenize", "train", "evaluate")
    browser.save_screenshot(str(shots / "ui-pipeline-subflows.png"))
    _open_run(browser, e2e.ui, flow_run_id, "Artifacts", "run-directory")
    expected = {
        "curate": ["curation-stats"],
        "tokenize": ["tokenization-stats", "data-mixture"],
        "train": ["training-progress", "training-metrics", "loss-curve"],
        "evaluate": ["evaluation-results"],
    }
    subflows = _subflows(e2e.ui, flow_run_id)
    for stage, keys in expected.items():
        _open_run(browser, e2e.ui, subflows[stage], "Artifacts", *keys)
        browser.save_screenshot(str(shots / f"ui-{stage}-artifacts.png"))
    # The loss curve is an image inside its markdown artifact: it must decode, not show broken.
    _open_run(browser, e2e.ui, subflows["train"], "Artifacts", "loss-curve")
    browser.find_element("xpath", "//*[normalize-space(text())='loss-curve']").click()  # its history
    deadline = time.monotonic() + 30
    while not browser.find_elements("xpath", "//a[contains(@href, '/artifacts/artifact/')]"):
        assert time.monotonic() < deadline, _text(browser)[-1500:]
        time.sleep(0.5)
    browser.find_element("xpath", "//a[contains(@href, '/artifacts/artifact/')]").click()  # its latest version
    deadline = time.monotonic() + 30
    while True:
        widths = browser.execute_script(
            "return Array.from(document.images).filter(i => i.src.startsWith('data:image/png'))"
            ".map(i => i.naturalWidth)"
        )
        if widths or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    browser.save_screenshot(str(shots / "ui-loss-curve.png"))
    assert widths and min(widths) > 100, (
        browser.current_url,
        browser.execute_script("return Array.from(document.images).map(i => i.src.slice(0, 40))"),
        _text(browser)[-1500:],
    )


def test_a_failed_run_names_its_stage_and_reason(browser, e2e, tmp_path, shots):
    bad = tmp_path / "input"
    bad.mkdir()
    (bad / "part-0.jsonl").write_text('{"id": "a", "text": 5}\n{broken\n')  # nothing survives curation
    result = crucible(
        "run", "-c", "debug", "--run-id", "bad", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(),
        "--set", f"curation.input_path={bad}", "--set", "curation.noise=null",
        "--set", "curation.quality_classifier.enabled=false", timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "crucible resume bad" in result.stderr
    flow_run_id = result.stdout.split("/v2/runs/flow-run/")[1].split()[0]
    text = _open_run(browser, e2e.ui, flow_run_id, "Details", "Failed", "State Message", "stage tokenize failed")
    assert "the train split has no tokens" in text
    browser.save_screenshot(str(shots / "ui-failed-run.png"))
