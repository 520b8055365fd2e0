"""End to end in headless Chromium: the dashboard's table, filter and SVG charts really render.

Needs Debian's `chromium` and `chromium-driver` (selenium drives it); skipped when absent.
EDGEQ_SCREENSHOT=1 also saves docs/dashboard.png.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
By = pytest.importorskip("selenium.webdriver.common.by").By

from edgeq.dashboard.server import create_server  # noqa: E402
from edgeq.store.runs import RunStore  # noqa: E402
from tests.test_dashboard_server import FASTER, GATE_FAILED, RUNS, SLOWER, record_fixtures  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
SCREENSHOT = Path(__file__).parent.parent / "docs" / "dashboard.png"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium/chromedriver binary found (apt-get install -y chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("runs")
    store = RunStore(folder / "runs.sqlite")
    record_fixtures(store, folder)
    server = create_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,2400",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def visible_rows(browser: webdriver.Chrome) -> int:
    return sum(row.is_displayed() for row in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr"))


def test_dashboard_renders_runs_and_charts(browser: webdriver.Chrome, base_url: str) -> None:
    browser.get(base_url + "/")
    assert browser.title == "edgeq runs"
    assert visible_rows(browser) == RUNS
    page_width = browser.execute_script("return document.documentElement.scrollWidth")
    assert page_width <= 1280  # full width, no overflow: the runs table fits its section too
    section = browser.find_element(By.ID, "runs-section")
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", section)
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 2 + 3  # latency history per series of two runs or more, a Pareto front per model
    assert all(chart.size["width"] > 300 and chart.size["height"] > 150 for chart in charts)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#history polyline")) >= 2
    assert (
        len(browser.find_elements(By.CSS_SELECTOR, "#tradeoff circle.run-point")) == RUNS - 1
    )  # TensorRT: untimed
    assert browser.find_elements(By.CSS_SELECTOR, "#tradeoff polyline.pareto-front")
    if os.environ.get("EDGEQ_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.set_window_size(
            1400, browser.execute_script("return document.documentElement.scrollHeight") + 40
        )
        browser.save_screenshot(str(SCREENSHOT))
        browser.set_window_size(1280, 2400)


def status_of(browser: webdriver.Chrome, run_id: str) -> str:
    row = browser.find_element(By.XPATH, f"//table[@id='runs']//tr[.//a[@title='{run_id}']]")
    return row.find_elements(By.TAG_NAME, "td")[-1].text


def test_a_failed_gate_is_flagged_and_a_recipe_change_is_not(
    browser: webdriver.Chrome, base_url: str
) -> None:
    browser.get(base_url + "/")
    assert status_of(browser, GATE_FAILED.run_id) == "gate failed"
    assert status_of(browser, SLOWER) == "ok"  # int4 after int8: slower, but another recipe
    assert status_of(browser, FASTER.run_id) == "regression"  # same recipe, less faithful
    flagged = browser.find_elements(By.CSS_SELECTOR, "#runs tr.regressed a[href^='/runs/']")
    assert sorted(link.get_attribute("title") for link in flagged) == sorted(
        [GATE_FAILED.run_id, FASTER.run_id]
    )


def test_any_column_sorts_and_filters(browser: webdriver.Chrome, base_url: str) -> None:
    browser.get(base_url + "/")
    header = browser.find_element(By.XPATH, "//table[@id='runs']//th[button[text()='speedup b1']]")
    index = browser.find_elements(By.CSS_SELECTOR, "#runs thead th").index(header)

    def column() -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
        return [row.find_elements(By.TAG_NAME, "td")[index].get_attribute("data-sort") for row in rows]

    header.find_element(By.TAG_NAME, "button").click()
    ascending = column()
    measured = [float(v) for v in ascending if v]
    assert measured == sorted(measured) and ascending[-1] == ""  # unmeasured (TensorRT) last
    header.find_element(By.TAG_NAME, "button").click()
    descending = column()
    assert [float(v) for v in descending if v] == sorted(measured, reverse=True) and descending[-1] == ""
    Select = pytest.importorskip("selenium.webdriver.support.ui").Select
    Select(browser.find_element(By.ID, "filter-column")).select_by_visible_text("status")
    browser.find_element(By.ID, "quick-filter").send_keys("gate")
    assert visible_rows(browser) == 1


def test_quick_filter_hides_rows(browser: webdriver.Chrome, base_url: str) -> None:
    browser.get(base_url + "/")
    browser.find_element(By.ID, "quick-filter").send_keys("tensorrt")
    assert visible_rows(browser) == 1


def test_run_link_opens_its_report(browser: webdriver.Chrome, base_url: str) -> None:
    browser.get(base_url + "/?model=binary_ae%2Fmodel")
    browser.find_element(By.CSS_SELECTOR, "#runs tbody a[href^='/runs/']").click()  # newest first: gated
    assert browser.find_element(By.TAG_NAME, "h1").text == "binary_ae/model → cpu-x86-avx2"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#latency svg.chart")) == 2
    assert not browser.find_elements(By.ID, "pruning")


@pytest.fixture(scope="module")
def guarded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dashboard that needs a token, as `edgeq dashboard --token` (or a non-loopback bind) serves it."""
    folder = tmp_path_factory.mktemp("guarded")
    store = RunStore(folder / "runs.sqlite")
    record_fixtures(store, folder)
    server = create_server(store, port=0, token=TOKEN)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


TOKEN = "browser-token-0123456789"


def test_the_printed_token_url_logs_the_browser_in_by_cookie(
    browser: webdriver.Chrome, guarded_url: str
) -> None:
    browser.get(guarded_url + "/")
    assert "token required" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{guarded_url}/?token={TOKEN}")
    assert browser.current_url == guarded_url + "/" and visible_rows(browser) == RUNS
    browser.find_element(By.CSS_SELECTOR, "#runs tbody a[href^='/runs/']").click()  # the cookie, no token
    assert "→" in browser.find_element(By.TAG_NAME, "h1").text
