"""Debian's headless chromium, driven by selenium through /usr/bin/chromedriver, inside a lab namespace.

Every selenium call runs on the lab's namespace thread: chromedriver and chromium are started from
it (so they live in the scanner namespace and can reach only the lab and its loopback), and the
WebDriver's own HTTP connections to chromedriver's 127.0.0.1 port are made from it too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from midprobe.runner.lab import NamespaceThread

if TYPE_CHECKING:  # selenium is imported when a browser starts
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Flags that keep chromium from reaching anything but the page it is given (the network is closed).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)
T = TypeVar("T")


class Browser:
    """A WebDriver whose every call runs on the namespace thread."""

    def __init__(self, thread: NamespaceThread, driver: WebDriver) -> None:
        self._thread = thread
        self.driver = driver

    def do(self, action: Callable[[WebDriver], T], timeout: float = 60.0) -> T:
        return self._thread.submit(lambda: action(self.driver)).result(timeout=timeout)


@contextmanager
def browser(thread: NamespaceThread) -> Iterator[Browser]:
    """A headless chromium with a fresh profile; the test fails when Debian's chromium or its driver is missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed: run `make system-deps`", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="midprobe-chromium-"))

    def start() -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.accept_insecure_certs = True  # the instance's own CA signed its certificate
        return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)

    driver = thread.submit(start).result(timeout=120)
    try:
        yield Browser(thread, driver)
    finally:
        thread.submit(lambda: driver.quit()).result(timeout=60)
        shutil.rmtree(profile, ignore_errors=True)
