"""The app in a real browser: ``streamlit run`` as a subprocess on a free 127.0.0.1 port, driven by the
OS's headless Chromium through Selenium and its chromedriver.

It picks a user, checks their recommendations, picks a liked track, moves the diversity slider
and checks that the list changes, then visits the other pages; a screenshot of each page goes to
``$MUSICREC_APP_SCREENSHOTS`` (README: ``reports/screenshots``), else to the test's temporary folder.
By default it serves a tiny workspace trained in the test; ``MUSICREC_APP_WORKSPACE=.`` serves the
repository's own ``data/`` (after ``make repro`` or ``dvc pull``), as for README's screenshots:

    MUSICREC_APP_WORKSPACE=. MUSICREC_APP_SCREENSHOTS=reports/screenshots \\
      python -m pytest tests/integration/test_app_browser.py -p no:cacheprovider

Skipped, saying why, when Chromium / chromedriver (Debian: ``apt-get install chromium chromium-driver``)
or Selenium is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicrec.devservices.process import free_ports, http_ok
from tests.support.app_data import tiny_workspace

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "src/musicrec/serving/app/streamlit_app.py"
CHROMIUM = os.environ.get("MUSICREC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MUSICREC_CHROMEDRIVER", "/usr/bin/chromedriver")
START_TIMEOUT_S = 120  # a safety net for a broken start, not a performance threshold
WAIT_S = 60

pytestmark = pytest.mark.integration


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    if missing:
        pytest.skip(f"no headless Chromium: {', '.join(missing)} not installed (Debian/Ubuntu: "
                    "apt-get install chromium chromium-driver; or set MUSICREC_CHROMIUM / MUSICREC_CHROMEDRIVER)")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -r requirements-dev.txt)")
    pytest.importorskip("streamlit", reason="streamlit is not installed")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    _require_browser()
    chosen = os.environ.get("MUSICREC_APP_WORKSPACE", "").strip()
    if chosen:
        root = Path(chosen).resolve()
        if not (root / "data/models").is_dir():
            pytest.fail(f"MUSICREC_APP_WORKSPACE={chosen}: no data/models there (make repro or dvc pull first)")
        return root
    return tiny_workspace(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def app_url(workspace, tmp_path_factory):
    port = free_ports(1)[0]
    log = tmp_path_factory.mktemp("app-log") / "streamlit.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer", "--",
           "--models", "data/models", "--matrices", "data/processed/matrices",
           "--items", "data/processed/items.parquet", "--reports", "reports"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workspace, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not http_ok(f"{url}/_stcore/health"):  # a real request: the server answers when it is up
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()  # our own child, by its PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(app_url):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1700", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = os.environ.get("MUSICREC_APP_SCREENSHOTS", "").strip()
    out = Path(d) if d else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _wait(driver, cond, what: str):
    """``cond(driver)`` once truthy; elements re-rendered by a rerun while being read are retried."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.2,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(cond)
    except TimeoutException:
        raise AssertionError(f"the page never showed {what}; page text:\n{_text(driver)[-3000:]}") from None


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _idle(driver):
    """The app has finished its script run (no running indicator) and shows no exception."""
    from selenium.webdriver.common.by import By

    def done(d):
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        return not any(e.is_displayed() and "Running" in e.text for e in running)

    _wait(driver, done, "the end of the script run")
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), _text(driver)[-3000:]


def _tables(driver) -> list[str]:
    """The text of each table on the page (read again when a rerun replaces a table while it is read)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(20):
        try:
            return [t.text for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"]')]
        except StaleElementReferenceException:
            continue
    raise AssertionError("the tables kept being replaced while read")


def _input(driver, label: str):
    from selenium.webdriver.common.by import By

    return _wait(driver, lambda d: (d.find_elements(By.CSS_SELECTOR, f'input[aria-label="{label}"]') or [None])[0],
                 f"the input {label!r}")


def _charts(driver, n: int) -> None:
    """Wait until ``n`` Vega-Lite charts have drawn (they render after the script run ends)."""
    from selenium.webdriver.common.by import By

    sel = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, sel)) >= n, f"{n} drawn charts")


def test_the_app_in_chromium_picks_a_user_and_the_diversity_slider_changes_the_list(browser, app_url, workspace, shots):
    import pandas as pd
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    users = sorted(pd.read_parquet(workspace / "data/models/users.parquet")["user_id"].astype(str))

    # ---- for a listener: a user by id prefix, their most played and recommendations
    d.get(app_url)
    box = _input(d, "User id (or its first characters)")
    box.send_keys(users[0][:4], Keys.ENTER)
    _wait(d, lambda d: len(_tables(d)) == 2, "the most-played and recommendation tables")
    _idle(d)
    recs = _tables(d)[1]
    assert len([line for line in recs.splitlines() if line.strip()]) >= 10, recs
    assert "like " in recs or "popular" in recs or "tags: " in recs, recs
    d.save_screenshot(str(shots / "app-listener.png"))

    # ---- start from songs: pick a liked track, then move the diversity slider
    d.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/start_from_songs"]').click()
    _wait(d, lambda d: "Pick at least one liked track" in _text(d), "the empty-selection hint")
    pick = d.find_element(By.CSS_SELECTOR, '[data-testid="stMultiSelect"] input')
    pick.click()
    pick.send_keys(Keys.ENTER)  # the first option: the most listened track
    _wait(d, lambda d: len(_tables(d)) == 1, "the cold-start recommendations")
    _idle(d)
    before = _tables(d)[0]
    def diversity(d) -> float:  # found afresh each time: a rerun may re-render the widget
        return float(d.find_element(By.CSS_SELECTOR, 'input[type="range"][aria-label^="Diversity"]')
                     .get_attribute("value"))

    start = diversity(d)
    thumb = d.find_element(By.CSS_SELECTOR, 'input[type="range"][aria-label^="Diversity"]')
    d.execute_script("arguments[0].focus()", thumb)  # the range input is visually hidden: focus it, then keys
    ActionChains(d).send_keys(Keys.ARROW_LEFT * 14).perform()  # 1.0 -> 0.3 in steps of 0.05
    _wait(d, lambda d: diversity(d) < start, "the slider moving")
    _wait(d, lambda d: _tables(d) and _tables(d)[0] != before, "a re-ranked list after the diversity slider moved")
    _idle(d)
    _wait(d, lambda d: _tables(d), "the re-ranked list")
    after = _tables(d)[0]
    assert after != before and diversity(d) < start
    _charts(d, 2)  # the balance and popularity charts
    d.execute_script("window.scrollTo(0, 0)")
    d.save_screenshot(str(shots / "app-start-from-songs.png"))

    # ---- more like this and explore render (screenshots for README)
    d.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/more_like_this"]').click()
    _wait(d, lambda d: len(_tables(d)) == 3, "three lists of similar tracks")
    _idle(d)
    d.save_screenshot(str(shots / "app-more-like-this.png"))
    d.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/explore"]').click()
    _wait(d, lambda d: "Provenance" in _text(d), "the explore page")
    _idle(d)
    _charts(d, 3)  # long tail, listener activity, tags
    d.save_screenshot(str(shots / "app-explore.png"))
    assert {p.name for p in shots.glob("app-*.png")} >= {"app-listener.png", "app-start-from-songs.png",
                                                          "app-more-like-this.png", "app-explore.png"}
