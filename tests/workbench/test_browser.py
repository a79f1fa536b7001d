"""The workbench in a real browser: Debian's chromium driven by Selenium through the system chromedriver.

The app runs as ``filinglens app`` would start it (``streamlit run``, loopback,
headless, no telemetry) on a free port, with a data home holding real
(shortened) 10-Ks rated by ``fake:analyst`` (imported into the app through
``FILINGLENS_WORKBENCH_PLUGINS``). The test loads the Ratings page, opens a
cell's evidence, runs a comparison of three companies, and saves a screenshot
of each page; it checks the pages rendered and the cell's quote is visible.

Nothing downloads a browser: chromium and chromedriver come from the system
(``.ci/run`` installs the packages when they are missing); without them the
test fails. Screenshots go to a temporary folder; with
``FILINGLENS_UPDATE_SCREENSHOTS=1`` they are also copied, downscaled, to
``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from filinglens.store import Store
from filinglens.workbench.launch import streamlit_command, streamlit_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO / "tests"  # holds fake_analyst.py, imported by the app
SCREENSHOTS = REPO / "docs" / "screenshots"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(wb_home, tmp_path):
    """``filinglens app``'s command on a free loopback port; yields the base URL."""
    port = free_port()
    env = streamlit_env({
        "FILINGLENS_HOME": str(wb_home),
        "FILINGLENS_WORKBENCH_PLUGINS": "fake_analyst",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
    })
    env.pop("SEC_USER_AGENT", None)
    log = open(tmp_path / "streamlit.log", "wb")
    process = subprocess.Popen(streamlit_command(port=port), env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise AssertionError("the app did not start:\n" + (tmp_path / "streamlit.log").read_text()[-3000:])
        time.sleep(0.3)
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def browser(tmp_path):
    """Headless chromium through the system chromedriver (never a downloaded one), fresh profile."""
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), (
        "chromium and chromedriver are needed (apt-get install chromium chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 60, what: str = "condition"):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.3).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; page text:\n"
                             + driver.find_element("tag name", "body").text[:2000]) from None


def idle(driver, timeout: float = 60) -> None:
    """Wait until Streamlit has finished running the page script."""
    time.sleep(0.5)
    wait_for(driver, lambda d: not d.find_elements("css selector", '[data-testid="stStatusWidget"]'), timeout,
             "the page script to finish")


def shoot(driver, folder: Path, name: str) -> Path:
    """Save a screenshot and check it shows a rendered page (not blank: many colours)."""
    from PIL import Image

    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert image.width >= 1000 and colours is not None and len(colours) > 50, f"{name}: blank screenshot"
    return path


def publish(paths: list[Path]) -> None:
    """Copy the screenshots, downscaled, to docs/screenshots/ (when FILINGLENS_UPDATE_SCREENSHOTS=1)."""
    if os.environ.get("FILINGLENS_UPDATE_SCREENSHOTS") != "1":
        return
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((1000, 1000))
            image.quantize(colors=128).save(SCREENSHOTS / path.name, optimize=True)


def test_workbench_in_chromium_ratings_evidence_and_a_comparison(server, browser, wb_home, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = tmp_path / "screenshots"
    shots.mkdir()
    row = next(r for r in Store().ratings() if r["prompt_version"] == "v1" and r["ticker"] == "AAPL"
               and r["category"] == "innovation" and r["fiscal_year"] == 2022)
    quote = row["quotes"][0]["text"]

    browser.get(server)
    wait_for(browser, lambda d: "Filings" in d.find_element(By.TAG_NAME, "h1").text, what="the Filings page")
    idle(browser)

    # Ratings: the panel of both raters, every number a link to its evidence
    browser.find_element(By.CSS_SELECTOR, 'a[href$="/ratings"]').click()
    cell = wait_for(browser, lambda d: d.find_elements(By.ID, f"cell-{row['id']}"), what="the ratings panel")[0]
    idle(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "fake:analyst@v1" in body and "fake:analyst@v2" in body and "MMM FY2022" in body
    assert len(browser.find_elements(By.CSS_SELECTOR, "a.cell")) == 20
    published = [shoot(browser, shots, "ratings")]

    # Evidence: the cell opens its rationale, rubric level and the quote highlighted in Item 1
    cell.click()
    mark = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "div.quote-context mark"),
                    what="the highlighted quote")[0]
    idle(browser)
    assert "rating=" in browser.current_url
    assert " ".join(mark.text.split()).replace("’", "'") == " ".join(quote.split()).replace("’", "'")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", mark)
    time.sleep(0.5)
    assert mark.is_displayed() and browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight;", mark)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "AAPL 10-K FY2022, Item 1" in body and "Rubric level 2" in body
    published.append(shoot(browser, shots, "evidence"))

    # Compare: AAPL, MMM and MSFT on innovation in FY2022, judged by the fake model in both orders
    browser.find_element(By.CSS_SELECTOR, 'a[href$="/compare"]').click()
    other = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'input[aria-label="…or another model id"]'),
                     what="the comparison form")[0]
    idle(browser)
    other.send_keys("fake:analyst", Keys.TAB)
    browser.find_element(By.XPATH, '//button[.//p[normalize-space()="Compare"]]').click()
    wait_for(browser, lambda d: "Ranking (Bradley–Terry" in d.find_element(By.TAG_NAME, "body").text, timeout=180,
             what="the comparison result")
    idle(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "verdicts flipped by order" in body and "Win matrix" in body
    runs = [r for r in Store().runs("compare") if r["status"] == "finished"]
    assert len(runs) == 1
    heading = browser.find_element(By.XPATH, '//*[normalize-space()="Results"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", heading)
    time.sleep(0.5)
    published.append(shoot(browser, shots, "compare"))
    publish(published)
