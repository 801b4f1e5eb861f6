"""A real headless Chromium driving the admin served by a real gunicorn.

Chromium and chromedriver come from Debian's packages, installed when missing by
``scripts/browser.sh``. Selenium is given both paths, so Selenium Manager (which would try to
download a browser or a driver) never runs. Screenshots go to ``artifacts/browser/`` (ignored by
git); each test names its file on the terminal.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests import processes
from tests.conftest import ROOT
from tests.faults import free_port
from tests.processes import Gunicorn

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,1000",
]
SCREENSHOT_DIR = ROOT / "artifacts" / "browser"
SAVED: list[Path] = []


@pytest.fixture(scope="session")
def chromium_installed() -> None:
    """Install Chromium and chromedriver through the project's script (a check when present)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "browser.sh")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def browser(chromium_installed: None) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def admin_web(service_env: dict[str, str], broker_topology: None, tmp_path_factory) -> Iterator[Gunicorn]:
    """gunicorn serving the admin with its static files (collected into a temporary directory)."""
    env = {**service_env, "DJANGO_STATIC_ROOT": str(tmp_path_factory.mktemp("staticfiles"))}
    processes.collect_static(env)
    web = Gunicorn(env, log_dir=tmp_path_factory.mktemp("admin-web"), port=free_port(), workers=1)
    web.start()
    yield web
    web.stop()


@pytest.fixture
def screenshot(browser: webdriver.Chrome):
    """``screenshot(name)`` saves the browser's view to artifacts/browser/<name>.png."""

    def save(name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        assert browser.save_screenshot(str(path)), f"could not save {path}"
        SAVED.append(path)
        return path

    return save


def pytest_terminal_summary(terminalreporter) -> None:
    """Name the screenshots of the run at the end of pytest's report."""
    for path in SAVED:
        terminalreporter.write_line(f"browser screenshot: {path}")
