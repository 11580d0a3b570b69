"""The console in a real browser: headless chromium in the lab's scanner namespace, the instance on 198.18.0.1.

An operator logs in, sees the lab's new MID waiting for validation, validates it with its page's
button, starts a discovery of the lab (from the console's form, schedule and credentials) that the
MID then does, watches it finish there, and opens a discovered CI with its interfaces.
With ``MIDPROBE_SCREENSHOTS=DIR`` the test leaves a PNG of each page it checked in DIR
(docs/console.md's pictures are made so).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.browser_support import Browser, browser
from tests.lab.instance_support import serve_instance
from tests.lab.test_discovery_lab import _credentials

if TYPE_CHECKING:  # selenium is imported when the test runs
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.lab

OPERATOR = ("operator", "console-operator-password-7d2a")
AGENT = "lab-mid"
WAIT = 240.0


def _in_lab(lab: Lab, *args: str) -> list[str]:
    return ["ip", "netns", "exec", lab.scanner_namespace, sys.executable, "-m", "midprobe.runner", *args]


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)


@pytest.fixture
def instance(lab: Lab, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The instance serving the console, and a new agent registered on its queue (not validated): (console URL, queue URL)."""
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        users.add(*OPERATOR, roles=("admin",))
    _credentials(lab, tmp_path / "creds.toml")
    server, base, _ = serve_instance(lab, url, "198.18.0.1:0")
    argv = _in_lab(lab, "agent", "--name", AGENT, "--queue", url, "--lab")
    argv += ["--credentials", str(tmp_path / "creds.toml"), "--poll-idle", "0.5", "--poll-busy", "0.5"]
    argv += ["--state", str(tmp_path / "state")]
    agent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with open_queue(url) as queue:
            for _ in range(400):
                if queue.get_agent(AGENT) is not None or agent.poll() is not None:
                    break
                queue.wait_for_work("mid.server.nobody", 0.1)
            found = queue.get_agent(AGENT)
            assert found is not None, agent.communicate(timeout=10)[1][-1000:]
            assert not found.validated  # the operator validates it in the console
        yield f"{base}/console", url
    finally:
        _stop(agent)
        _stop(server)


@pytest.fixture
def chromium(lab: Lab) -> Iterator[Browser]:
    with lab.namespace_thread() as thread, browser(thread) as opened:
        yield opened


def _secrets(credentials: str) -> list[str]:
    """The secret values in a credentials file (passwords, keys), to look for where they must not be."""
    found: list[str] = []

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, name)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, key)
        elif (
            isinstance(value, str)
            and any(word in key for word in ("pass", "key", "secret"))
            and len(value) >= 6
        ):
            found.append(value)

    walk(tomllib.loads(credentials))
    assert found, "the lab's credentials hold no secret to look for"
    return found


def _page_says(element_id: str, text: str) -> Callable[[WebDriver], bool]:
    """A wait condition for a page that reloads itself: is `text` in the element's text right now?

    A page caught between two loads (the element's node gone with the old document, or no document
    yet to run a script in) is "not yet", never an error.
    """
    from selenium.common.exceptions import WebDriverException

    script = "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;"

    def condition(driver: WebDriver) -> bool:
        try:
            now = driver.execute_script(script, element_id)
        except WebDriverException:
            return False
        return isinstance(now, str) and text in now

    return condition


def _screenshot(chromium: Browser, name: str) -> None:
    folder = os.environ.get("MIDPROBE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        chromium.do(lambda driver: driver.save_screenshot(str(Path(folder) / f"{name}.png")))


def test_log_in_validate_the_new_mid_watch_it_discover_the_lab_and_open_a_ci(
    lab: Lab, instance: tuple[str, str], chromium: Browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    console, url = instance

    def wait(driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 30.0) -> object:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)

    def log_in(driver: WebDriver) -> str:
        driver.get(f"{console}/mids")
        wait(driver, seen.presence_of_element_located((By.ID, "login")))
        driver.find_element(By.ID, "name").send_keys(OPERATOR[0])
        driver.find_element(By.ID, "password").send_keys(OPERATOR[1])
        driver.find_element(By.ID, "login").click()
        wait(driver, seen.presence_of_element_located((By.ID, "mids")))
        return str(driver.find_element(By.ID, "mids").text)

    mids = chromium.do(log_in)
    (row,) = [line for line in mids.splitlines() if line.startswith(AGENT)]
    assert row.split()[1:3] == ["Up", "no"]  # up, not validated
    _screenshot(chromium, "console-mids")

    def open_mid(driver: WebDriver) -> str:
        driver.find_element(By.LINK_TEXT, AGENT).click()
        wait(driver, seen.presence_of_element_located((By.ID, "validate")))
        return str(driver.find_element(By.TAG_NAME, "main").text)

    def validate(driver: WebDriver) -> str:
        driver.find_element(By.ID, "validate").click()
        wait(driver, seen.presence_of_element_located((By.ID, "invalidate")))
        return str(driver.find_element(By.ID, "mid").text)

    assert "Not validated: this MID gets no work" in chromium.do(open_mid)
    _screenshot(chromium, "console-mid")
    assert "Validated yes" in chromium.do(validate)
    with open_queue(url) as queue:
        registered = queue.get_agent(AGENT)
        assert registered is not None
        assert registered.validated

    # The whole lab, but only the ports and protocols the checks need: nmap's OS guesses of the
    # hosts SSH and SNMP leave unclassified took most of the test's time.
    schedule = (
        f'name = "console lab"\nranges = ["{lab.network}"]\nports = "22,161"\nbehaviour = ["ssh", "snmp"]\n'
    )
    credentials = lab_credentials_toml(lab, inline_key=True)  # the instance reads no key file of its own

    def start_and_watch(driver: WebDriver) -> tuple[str, str]:
        driver.get(f"{console}/discoveries")
        driver.find_element(By.ID, "start").click()
        wait(driver, seen.presence_of_element_located((By.ID, "schedule")))
        driver.find_element(By.ID, "schedule").send_keys(schedule)
        driver.find_element(By.ID, "credentials").send_keys(credentials)
        driver.find_element(By.ID, "start-discovery").click()
        wait(driver, seen.presence_of_element_located((By.ID, "phases")))
        # The page reloads itself every few seconds while the discovery runs: wait for it to say it
        # ended, reading the state in one script call, so that no element handle outlives a reload.
        wait(driver, _page_says("state", "Completed"), WAIT)
        return str(driver.find_element(By.ID, "cis").text), str(driver.page_source)

    cis, page = chromium.do(start_and_watch, timeout=WAIT + 60)
    _screenshot(chromium, "console-discovery")
    with open_queue(url) as queue:
        everything = queue.list(limit=5000)
        records = " ".join(f"{record.as_dict()} {queue.read_payload(record)}" for record in everything)
    # The MID validated in the console did the discovery's work.
    assert {record.agent for record in everything if record.is_output} == {f"mid.server.{AGENT}"}
    for secret in _secrets(credentials):
        assert secret not in page  # the console never shows them back
        assert secret not in records  # nor does the queue hold them
    linux1 = lab.host("linux1")
    assert linux1.address in cis

    def open_ci(driver: WebDriver) -> tuple[str, str]:
        row = driver.find_element(By.XPATH, f"//table[@id='cis']//tr[td[3]='{linux1.address}']")
        row.find_element(By.TAG_NAME, "a").click()
        wait(driver, seen.presence_of_element_located((By.ID, "ci")))
        interfaces = driver.find_element(By.ID, "interfaces").text
        addresses = driver.find_element(By.ID, "addresses").text
        return str(interfaces), str(addresses)

    interfaces, addresses = chromium.do(open_ci)
    assert linux1.address in interfaces
    assert linux1.address in addresses
    _screenshot(chromium, "console-ci")
