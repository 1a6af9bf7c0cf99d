"""`agentloop view` in a real browser: headless Chromium (Debian's) clicks through what a person would.

Each test opens the page from file:// (no server), clicks the matrix into an attempt and asserts the
text and highlighting a reader sees. With AGENTLOOP_SCREENSHOTS=docs/img the same steps save the
screenshots the docs show (`AGENTLOOP_SCREENSHOTS=docs/img python -m pytest tests/test_view_browser.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.cli import main
from tests._view_runs import REPEAT, TwoRuns, two_runs
from tests.support.browser import chromium, missing, open_page

WHY = missing()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"browser tests: {WHY}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    return two_runs(tmp_path_factory.mktemp("view-browser"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def view(runs: TwoRuns, *sources: str) -> Path:
    out = runs.root / f"view-{len(list(runs.root.glob('view-*.html')))}.html"
    assert main(["view", *sources, "-o", str(out)]) == 0
    return out


def shot(driver: Any, name: str) -> None:
    """Save a screenshot for the docs when asked to (AGENTLOOP_SCREENSHOTS=DIR)."""
    folder = os.environ.get("AGENTLOOP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def click_cell(driver: Any, canary: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'.matrix td.rate[data-canary="{canary}"]').click()


def rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#attempts-table tbody tr")


def test_the_page_opens_on_the_decision_and_the_matrix(runs: TwoRuns, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, view(runs, str(runs.solved)))
    decision = browser.find_element(By.ID, "decision")
    assert decision.text.startswith("Decision") and "openai:scripted" in decision.text
    assert decision.location["y"] < browser.find_element(By.ID, "matrix").location["y"]
    cells = {
        c.get_attribute("data-canary"): c.text
        for c in browser.find_elements(By.CSS_SELECTOR, ".matrix td.rate")
    }
    assert cells == {"tiny": "4/4\n51%–100%", "tiny2": "4/4\n51%–100%"}
    shot(browser, "view-matrix.png")


def test_clicking_into_a_solved_attempt_shows_its_turns_diff_and_checks(runs: TwoRuns, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, view(runs, str(runs.solved)))
    click_cell(browser, "tiny2")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows(browser)] == ["tiny2"] * REPEAT
    rows(browser)[0].click()
    shown = browser.find_element(By.ID, "transcript-view")
    assert "Transcript: tiny2 · openai:scripted · baseline · repetition 1" in shown.text
    assert "calc.py defines add(a, b)" in shown.find_element(By.CSS_SELECTOR, "pre.spec").text
    assert shown.find_element(By.CSS_SELECTOR, "details summary").text.endswith("characters")  # system prompt
    calls = [c.text for c in shown.find_elements(By.CSS_SELECTOR, ".call-name")]
    assert calls == ["→ write_file", "→ run_tests", "→ commit", "→ push", "→ finish"]
    args = shown.find_elements(By.CSS_SELECTOR, "pre.args")[0].text
    assert '"path": "calc.py"' in args
    added = [s.text for s in shown.find_elements(By.CSS_SELECTOR, ".diff-add")]
    assert "+    return a + b" in added
    assert "passed" in shown.find_element(By.CSS_SELECTOR, "pre.checks").text
    shot(browser, "view-transcript.png")


def test_malformed_calls_are_highlighted_and_filters_narrow_the_list(runs: TwoRuns, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, view(runs, str(runs.broken)))
    Select(browser.find_element(By.ID, "filter-outcome")).select_by_value("no_tool_calls")
    Select(browser.find_element(By.ID, "filter-tier")).select_by_value("lite")
    assert browser.find_element(By.ID, "attempts-title").text == f"Attempts ({REPEAT})"
    assert {r.find_elements(By.TAG_NAME, "td")[4].text for r in rows(browser)} == {"no_tool_calls"}
    rows(browser)[1].click()
    malformed = browser.find_elements(By.CSS_SELECTOR, "#transcript-view .malformed")
    assert len(malformed) == 10  # one per turn, over the budget's ten turns
    assert malformed[0].text.startswith("✗ malformed call (bad_json)")
    assert malformed[0].value_of_css_property("background-color") == "rgba(253, 236, 234, 1)"
    assert "this error was fed back to the model" in malformed[0].text
    assert browser.find_element(By.CSS_SELECTOR, "#transcript-view pre.checks").text
    shot(browser, "view-malformed.png")


def test_history_marks_the_regression_and_puts_two_runs_side_by_side(runs: TwoRuns, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, view(runs, runs.store))
    browser.find_element(By.ID, "tabbtn-history").click()
    history = browser.find_element(By.ID, "history-table")
    first, second = history.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert "8/8" in first.text and "regression" not in first.text
    assert "0/8" in second.text and "▼ regression" in second.text
    changed = browser.find_elements(By.CSS_SELECTOR, "#sidebyside-table tr.changed")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in changed] == [
        "openai:scripted · baseline · tiny",
        "openai:scripted · baseline · tiny2",
    ]
    assert "4/4" in changed[0].text and "0/4" in changed[0].text
    shot(browser, "view-history.png")


def test_wasted_turns_and_cards_render_on_their_tabs(runs: TwoRuns, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, view(runs, str(runs.broken)))
    browser.find_element(By.ID, "tabbtn-waste").click()
    waste = browser.find_element(By.ID, "waste-table").text
    assert "openai:scripted" in waste and f"100% ({2 * REPEAT * 10})" in waste  # every turn malformed
    browser.find_element(By.ID, "tabbtn-cards").click()
    card = browser.find_element(By.CSS_SELECTOR, "#cards .card")
    assert card.find_element(By.TAG_NAME, "h2").text == "openai:scripted"
    assert "Decision:" in card.text and "Wasted turns" in card.text


def test_the_pytest_html_report_opens_on_the_decision_and_links_the_view(runs: TwoRuns, browser: Any) -> None:
    """The pytest-html page a run writes: its first thing is the decision, then the link to the view."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(runs.report.resolve().as_uri())
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results-table tbody"))
    verdict = browser.find_element(By.CSS_SELECTOR, ".agentloop")
    decision = verdict.find_element(By.CSS_SELECTOR, ".decision")
    assert decision.text.startswith("Decision") and "openai:scripted" in decision.text
    assert decision.location["y"] < verdict.find_element(By.TAG_NAME, "table").location["y"]
    line = decision.find_element(By.TAG_NAME, "pre")  # wrapped, not cut at the window's edge
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", line)
    link = verdict.find_element(By.PARTIAL_LINK_TEXT, "Explore this run in agentloop view")
    assert link.get_attribute("href").endswith("/broken.view.html")
    browser.set_window_size(1400, 2400)
    try:
        shot(browser, "report.png")
    finally:
        browser.set_window_size(1400, 1000)
