"""A real browser for the desk's tests: Debian's headless chromium driven through
chromium-driver by python3-selenium (all from apt, installed by deploy/deps.sh).

    from browser import browser  # noqa: F401 (the fixture)

    def test_x(browser):
        b = browser()                 # started; quit at the end of the test whatever happens
        b.open(url)
        b.wait(lambda d: d.find_element(...), what="the sign-in form")
        b.screenshot("agent-view")    # build/test-artifacts/<test>-agent-view.png

Why selenium rather than playwright-core from npm: the three pieces are Debian packages of the
same release (chromium and chromium-driver always match), nothing is downloaded at run time,
and the tests stay in the project's one test language (pytest on /usr/bin/python3).

The browser keeps its console log (`console_errors()`): a CSP violation or a script error in
the page is a failure the tests can see.
"""

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "test-artifacts"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
# Fixed, so screenshots compare across runs and the layout is the desktop one.
WINDOW = (1280, 900)
# Long enough for a cold chromium on a loaded 2-core machine; a wait ends as soon as it holds.
WAIT_S = 20


class Browser:
    """One headless chromium. Attributes: .driver (selenium WebDriver), .name (the test's)."""

    def __init__(self, name):
        for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
            if not Path(path).exists():
                pytest.fail(f"{path} missing: install {pkg} (deploy/deps.sh)", pytrace=False)
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        # Its own profile per browser, removed at quit: no state between tests.
        self._profile = tempfile.mkdtemp(prefix="wasl-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--user-data-dir={self._profile}"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(WAIT_S)
        self._log = []

    def open(self, url):
        self.driver.get(url)
        return self

    def js(self, script, *args):
        """Runs script in the page (`return …` for a value)."""
        return self.driver.execute_script(script, *args)

    def wait(self, predicate, timeout=WAIT_S, what="condition"):
        """Polls predicate(driver) until it returns something truthy (returned). On timeout:
        saves a screenshot and fails naming `what`."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(predicate)
        except TimeoutException:
            shot = self.screenshot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:40]}")
            raise AssertionError(f"browser: no {what} after {timeout}s (screenshot {shot}); "
                                 f"console: {self.console()}") from None

    def screenshot(self, label):
        """Saves the viewport as build/test-artifacts/<test>-<label>.png; returns the path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self.driver.save_screenshot(str(path))
        return path

    def console(self):
        """Every console entry so far ({level, message, …}), kept across calls."""
        try:
            self._log.extend(self.driver.get_log("browser"))
        except WebDriverException:
            pass
        return list(self._log)

    def console_errors(self):
        """Console entries at SEVERE level (script errors, CSP violations, failed loads)."""
        return [e for e in self.console() if e.get("level") == "SEVERE"]

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)


@pytest.fixture
def browser(request):
    """Factory: browser() -> Browser, started headless; every one is quit at the end of the
    test, passed or failed, after an `-end` screenshot (what the page showed last)."""
    started = []

    def start():
        b = Browser(request.node.name if not started else f"{request.node.name}-{len(started)}")
        started.append(b)
        return b

    yield start
    for b in started:
        try:
            b.screenshot("end")
        except WebDriverException:
            pass
        finally:
            b.quit()
