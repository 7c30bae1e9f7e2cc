"""Not a node source: the headless browser the incident pages are tested in (issue 18), installed by the
same step (`make node-sources`, from `make test`) because it too comes from Debian's packages.

Fed by: Debian's `chromium` and `chromium-driver` (and a font with metrics, so screenshots read well).
Feeds: `tests/test_report_browser.py` through `browser()`, a Selenium Chrome driver on the system's
chromedriver (Selenium Manager is never asked to download one: this machine reaches no browser site).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

PACKAGES = ("chromium", "chromium-driver", "fonts-liberation")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def unavailable() -> str:
    """Why the browser cannot run here, or "" when it can."""
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        return (f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver "
                f"(make node-sources does, as root)")
    return ""


def browser(width: int = 1400, height: int = 1800):  # type: ignore[no-untyped-def]
    """A headless Chromium driven by Selenium, logging the console and every network request."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                     *(("--no-sandbox",) if os.geteuid() == 0 else ())):  # Chromium's sandbox refuses root
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_drawn(driver: Any, rank: int) -> None:
    """Until the graph of the root cause ranked `rank` is drawn (its section opened: a toggle event)."""
    deadline = time.monotonic() + 20
    while not driver.execute_script(f"return !!(window.tapio && tapio.graphs[{rank}] && "
                                    f"tapio.graphs[{rank}].nodes().length)"):
        assert time.monotonic() < deadline, f"the graph of root cause {rank} was never drawn"
        time.sleep(0.1)
