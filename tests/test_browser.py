"""The app in a real headless browser: pick a user, steer, compare, and keep a screenshot of the result.

Needs Debian's chromium and chromedriver (`apt-get install chromium chromium-driver`); skipped without them.
The screenshot is kept in the test's temporary folder; with STEERREC_UPDATE_SCREENSHOT=1 it also replaces
assets/screenshot.png, the picture the README shows (so an ordinary test run leaves the tree clean).
"""
import os
import shutil
import time
from pathlib import Path

import pytest

import app
from test_app import engine, served_app  # noqa: F401  (the same launched app, per module)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parent.parent / "assets" / "screenshot.png"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,1800"]

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_compare_in_the_browser(browser, served_app, engine, tmp_path, monkeypatch):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(served_app)

    user = wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#user input")))
    user.click()
    user.send_keys(Keys.CONTROL, "a")
    user.send_keys("405", Keys.ENTER)
    wait.until(seen.text_to_be_present_in_element((By.ID, "profile"), "user 405:"))
    browser.find_element(By.CSS_SELECTOR, "#want textarea").send_keys("something that makes me laugh")
    browser.find_element(By.CSS_SELECTOR, "#avoid textarea").send_keys("horror")
    browser.find_element(By.ID, "compare").click()

    for column in ("backbone", "dpr", "mixrec"):
        if engine.is_available("sasrec" if column == "backbone" else column, "sasrec"):
            rows = f"#{column}-table [role=row].virtual-row"  # the table renders only the rows in view
            wait.until(lambda driver, rows=rows: len(driver.find_elements(By.CSS_SELECTOR, rows)) >= 5)
        else:
            wait.until(seen.text_to_be_present_in_element((By.ID, f"{column}-header"), "Not available"))
    for plot in ("genre-plot", "overlap-plot", "gates-plot"):
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, f"#{plot} .js-plotly-plot")))

    if engine.is_available("dpr", "sasrec"):
        browser.find_element(By.CSS_SELECTOR, "#dpr-table [data-testid=cell-1-0]").click()  # row 2, its rank
        wait.until(seen.text_to_be_present_in_element((By.ID, "why"), "you watched"))
        below = [browser.find_element(By.ID, name).location["y"] for name in ("dpr-table", "why", "genre-plot")]
        assert below == sorted(below), below  # the explanation lands right under the lists, above the charts

    for _ in range(3):  # a taller window lets the page grow; stop once all of it fits
        height = browser.execute_script("return document.documentElement.scrollHeight")
        if height <= browser.execute_script("return window.innerHeight"):
            break
        browser.set_window_size(1400, height + 200)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(tmp_path / "screenshot.png"))
    if os.environ.get("STEERREC_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "screenshot.png", SCREENSHOT)

    # an example is a request of its own: its lists replace the old ones, and the old explanation goes
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if "Example prompts" in b.text).click()
    wait.until(seen.element_to_be_clickable(
        (By.XPATH, "//div[contains(@class, 'table') and text()='gunslingers in the Wild West']"))).click()
    if engine.is_available("dpr", "sasrec"):  # user 405's lists before held no western
        wait.until(seen.text_to_be_present_in_element((By.ID, "dpr-table"), "Western"))
        wait.until(seen.text_to_be_present_in_element((By.ID, "why"), "Why is it there?"))

    # another user picked while a comparison runs (made slow here, as a busy server is): that comparison's
    # lists never land under the new user
    compared_outputs = app.compared_outputs
    monkeypatch.setattr(app, "compared_outputs", lambda *request: time.sleep(2) or compared_outputs(*request))
    browser.find_element(By.ID, "compare").click()
    browser.find_element(By.ID, "random-user").click()
    wait.until_not(seen.text_to_be_present_in_element((By.ID, "profile"), "user 405:"))
    wait.until(seen.text_to_be_present_in_element((By.ID, "notice"), "Press Compare"))
    time.sleep(3)  # past the slow comparison's end
    monkeypatch.undo()
    assert "Press Compare" in browser.find_element(By.ID, "notice").text
    assert " ms" not in browser.find_element(By.ID, "backbone-header").text  # "10 items in 30.0 ms": a list

    # a made-up history: a title found and added; its table has no date or rating columns to leave empty
    browser.find_element(By.XPATH, "//*[@id='mode']//label[contains(., 'Build a history')]").click()
    search = wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#title-search :is(input, textarea)")))
    search.send_keys("star wars")
    wait.until(lambda driver: "1 match" in driver.find_element(By.ID, "title-results").text)
    browser.find_element(By.ID, "add-title").click()
    wait.until(seen.text_to_be_present_in_element((By.ID, "history"), "Star Wars"))
    headers = [cell.text.strip() for cell in browser.find_elements(By.CSS_SELECTOR, "#history th")]
    assert [text for text in headers if text] == ["title", "year", "genres"], headers

    # the About tab's charts are served, not broken links
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "About").click()
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if "Benchmarks" in b.text).click()
    charts = wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#benchmarks img"))
    wait.until(lambda driver: all(driver.execute_script("return arguments[0].naturalWidth", img) > 0
                                  for img in charts))


def test_the_page_on_a_phone(browser, served_app, engine):  # noqa: F811
    """At a phone's width the tables scroll sideways instead of breaking words, and what a person types into a
    message (here a user id that is a URL) stays text, not a link."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(390, 844)
    wait = WebDriverWait(browser, 60)
    browser.get(served_app)
    user = wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#user input")))
    for typed, shown in (("http://evil.example/x", "unknown user 'http://evil.example/x'"), ("405", "user 405:")):
        user.click()
        user.send_keys(Keys.CONTROL, "a")
        user.send_keys(typed, Keys.ENTER)
        wait.until(seen.text_to_be_present_in_element((By.ID, "profile"), shown))
        assert not browser.find_elements(By.CSS_SELECTOR, "#profile a")
    browser.find_element(By.ID, "compare").click()
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#backbone-table [role=row].virtual-row")) >= 5)
    for table in ("history", "backbone-table"):
        year = next(cell for cell in browser.find_elements(By.CSS_SELECTOR, f"#{table} th") if cell.text == "year")
        assert year.size["width"] >= 50, (table, year.size)  # room for "1997" on one line
