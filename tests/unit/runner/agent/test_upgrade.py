"""What a MID decides about upgrading (pure): a request first, then the instance-wide version; never
when pinned; a version given up once is not tried at every check. And the names and versions read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.agent.config import load_agent_config
from midprobe.runner.agent.upgrade import UpgradePlan, failed_upgrade, plan_upgrade, site_folders
from midprobe.runner.instance.wheels import choose_version
from midprobe.runner.queue.lifecycle import AgentUpgrade, check_version, wheel_version
from midprobe.runner.queue.wire import ServedWheel

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _request(version: str) -> AgentUpgrade:
    return AgentUpgrade("a" * 32, "mid.server.m1", "0.1.1", version, "Requested", "", NOW, None)


def test_a_request_of_this_mid_comes_before_the_instance_wide_version() -> None:
    request = _request("0.1.3")
    assert plan_upgrade("0.1.1", "", request, "0.1.2", frozenset()) == (UpgradePlan("0.1.3", request), None)
    assert plan_upgrade("0.1.1", "", None, "0.1.2", frozenset()) == (UpgradePlan("0.1.2"), None)
    assert plan_upgrade("0.1.1", "", None, "", frozenset()) == (None, None)


def test_a_pinned_mid_never_upgrades_and_its_request_is_refused() -> None:
    assert plan_upgrade("0.1.1", "0.1.1", None, "0.1.2", frozenset()) == (None, None)
    plan, refusal = plan_upgrade("0.1.1", "0.1.1", _request("0.1.2"), "", frozenset())
    assert plan is None
    assert refusal == "pinned to 0.1.1: a pinned MID never upgrades"


def test_nothing_to_do_on_the_wanted_version_and_a_failed_one_is_not_retried_every_check() -> None:
    assert plan_upgrade("0.1.2", "", None, "0.1.2", frozenset()) == (None, None)
    assert plan_upgrade("0.1.2", "", _request("0.1.2"), "", frozenset()) == (None, "runs 0.1.2 already")
    assert plan_upgrade("0.1.1", "", None, "0.1.3", frozenset({"0.1.3"})) == (None, None)
    request = _request("0.1.3")  # asked by name again: tried again
    assert plan_upgrade("0.1.1", "", request, "", frozenset({"0.1.3"})) == (
        UpgradePlan("0.1.3", request),
        None,
    )


def test_wheel_names_and_versions() -> None:
    assert wheel_version("midprobe-0.1.2-py3-none-any.whl") == "0.1.2"
    assert wheel_version("midprobe-0.2.0+lab1-py3-none-any.whl") == "0.2.0+lab1"
    assert wheel_version("midprobe-0.1.2-1-py3-none-any.whl") == "0.1.2"  # with a build tag
    for other in ("othertool-0.1.2-py3-none-any.whl", "midprobe-0.1.2.tar.gz", "midprobe-x-py3-none-any.whl"):
        assert wheel_version(other) is None
    with pytest.raises(ConfigError, match="not a version"):
        check_version("latest")
    with pytest.raises(ConfigError, match="not a version"):
        check_version("0.1.2; rm -rf /")


def test_the_version_chosen_is_the_asked_one_if_served_else_the_newest() -> None:
    served = [ServedWheel(f"midprobe-{v}-py3-none-any.whl", v, "0" * 64, 1) for v in ("0.1.9", "0.1.10")]
    assert choose_version(served, None) == "0.1.10"
    assert choose_version(served, "0.1.9") == "0.1.9"
    with pytest.raises(
        ConfigError, match=r"no wheel of version 0\.2\.0 is served \(served: 0\.1\.9, 0\.1\.10\)"
    ):
        choose_version(served, "0.2.0")
    with pytest.raises(ConfigError, match="serves no midprobe wheel"):
        choose_version([], None)


def test_the_new_environment_sees_the_running_ones_package_folders(tmp_path: Path) -> None:
    site, dist, other = tmp_path / "site-packages", tmp_path / "dist-packages", tmp_path / "lib"
    for folder in (site, dist, other):
        folder.mkdir()
    path = ["", str(other), str(site), str(tmp_path / "gone" / "site-packages"), str(dist), str(site)]
    assert site_folders(path) == [str(site), str(dist)]


def test_the_upgrade_check_interval_is_range_checked() -> None:
    assert load_agent_config(environ={}).upgrade_check_seconds == 3600.0
    with pytest.raises(ConfigError, match="upgrade_check_seconds"):
        load_agent_config(environ={"MIDPROBE_UPGRADE_CHECK_SECONDS": "0"})


def test_what_a_version_that_went_back_is_told_is_read_back() -> None:
    assert failed_upgrade("a" * 32 + "\t0.1.3\tthe new version did not start: boom\tagain") == (
        "a" * 32,
        "0.1.3",
        "the new version did not start: boom\tagain",
    )
    assert failed_upgrade(None) is None
    assert failed_upgrade("garbage") is None
