"""Headless Chromium for tests, with the network cut: opens a file and says what it did.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them), driven by
selenium (the ``test`` extra). Nothing may leave the machine: DNS resolves nothing, every
HTTP(S) request goes to a proxy that is not there, and DevTools puts the page offline.
The performance log (DevTools' network events) records each request the page tried,
so a test can check that the only one was the file itself.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = os.environ.get("LITEPROF_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LITEPROF_CHROMEDRIVER", "/usr/bin/chromedriver")

FLAGS = (
    # What this machine's Chromium needs as root, without background connections that a
    # closed network refuses by the dozen.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    # The network cut: no name resolves, and any request would go to a proxy on a port
    # nothing listens on (loopback included: <-loopback> removes the implicit bypass).
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


@dataclass
class Opened:
    """What opening a page did."""

    url: str
    requests: list[str] = field(default_factory=list)
    """Every URL the page requested (DevTools' ``Network.requestWillBeSent``), itself
    first; ``data:`` URLs are made in the page, not fetched."""
    console: list[dict[str, Any]] = field(default_factory=list)
    """Browser log entries: console messages, uncaught errors, CSP violations."""
    load_ms: float | None = None
    """``loadEventEnd - navigationStart``."""
    drawn_ms: float | None = None
    """When the page's script had drawn every chart (ms from navigation start)."""


def require() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        raise AssertionError(
            f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver "
            "(.ci/run does this)"
        )


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A selenium driver for headless Chromium with the network cut; quit afterwards."""
    require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="liteprof-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver: selenium's own manager would try to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _drain(driver: Any) -> None:
    driver.get_log("performance")
    driver.get_log("browser")


def open_page(driver: Any, path: str, timeout: float = 60.0) -> Opened:
    """Open ``path`` and wait until its charts are drawn (``<html data-drawn>``)."""
    _drain(driver)
    url = "file://" + os.path.abspath(path)
    driver.get(url)
    deadline = time.monotonic() + timeout
    drawn = None
    while time.monotonic() < deadline:
        drawn = driver.execute_script("return document.documentElement.getAttribute('data-drawn')")
        if drawn is not None:
            break
        time.sleep(0.05)
    opened = Opened(url=url)
    timing = driver.execute_script(
        "var t = performance.timing; return [t.loadEventEnd - t.navigationStart,"
        " window.liteprofDrawn === undefined ? null : window.liteprofDrawn];"
    )
    opened.load_ms, opened.drawn_ms = timing[0], timing[1]
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            params = message["params"]
            # The page's requests, not the browser's own (its start page, chrome://...).
            if params.get("documentURL") == url or params["request"]["url"] == url:
                opened.requests.append(params["request"]["url"])
    opened.console = driver.get_log("browser")
    if drawn is None:
        raise AssertionError(f"the page's charts were not drawn in {timeout} s: {opened.console}")
    return opened


def screenshot(driver: Any, path: str) -> None:
    """The whole page (the window grown to its height) as a PNG."""
    for _ in range(3):  # a new size can reflow the page (plotly's charts are responsive)
        height, inner, width = driver.execute_script(
            "var d = document.documentElement;"
            "return [d.scrollHeight, window.innerHeight, Math.max(d.scrollWidth, 1200)];"
        )
        if height <= inner:
            break
        # The window's size includes its frame: add what the frame takes.
        frame = driver.get_window_size()["height"] - inner
        driver.set_window_size(int(width), min(int(height) + frame, 8000))
        time.sleep(0.3)
    driver.save_screenshot(path)
