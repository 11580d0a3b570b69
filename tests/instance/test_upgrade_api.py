"""The upgrade endpoints through the HTTPS queue: the wheels served with their SHA-256 (only those of
the accepted major version), a download checked against it, an admin asking a MID (or every MID) to
upgrade to a served version, the MID reporting its attempt, and the history in the Table API."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.mid_tables import upgrade_rows
from midprobe.runner.instance.wheels import WheelShelf
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.lifecycle import SETTING_MID_VERSION
from tests.instance.conftest import ADMIN, MID, AsgiBridge, bridged_client


@pytest.fixture
def shelf(tmp_path: Path) -> WheelShelf:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in (
        "midprobe-0.1.2-py3-none-any.whl",
        "midprobe-0.1.10-py3-none-any.whl",
        "midprobe-1.0.0-py3-none-any.whl",  # another major version: not accepted, not served
        "othertool-0.1.2-py3-none-any.whl",
        "midprobe-notes.txt",
    ):
        (folder / name).write_bytes(f"contents of {name}".encode())
    return WheelShelf(folder)


@pytest.fixture
def bridge(queue: EccQueue, users: UserStore, shelf: WheelShelf) -> AsgiBridge:
    return AsgiBridge(create_app(queue, users, wheels=shelf))


def test_the_instance_serves_the_accepted_wheels_and_a_download_is_checked(
    bridge: AsgiBridge, tmp_path: Path
) -> None:
    mid = bridged_client(bridge, MID)
    served = mid.list_wheels()
    assert [wheel.version for wheel in served] == ["0.1.2", "0.1.10"]  # 0.1.10 after 0.1.2
    wheel = served[0]
    assert wheel.sha256 == hashlib.sha256(b"contents of midprobe-0.1.2-py3-none-any.whl").hexdigest()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    got = mid.download_wheel(wheel, downloads)
    assert got.read_bytes() == b"contents of midprobe-0.1.2-py3-none-any.whl"

    tampered = dataclasses.replace(wheel, sha256="0" * 64)
    with pytest.raises(ConfigError, match="checksum mismatch"):
        mid.download_wheel(tampered, downloads / "..")
    assert not list(tmp_path.glob("midprobe-*"))  # nothing of a bad download is left
    unserved = dataclasses.replace(wheel, filename="midprobe-1.0.0-py3-none-any.whl")
    with pytest.raises(ConfigError, match=r"no wheel midprobe-1\.0\.0-py3-none-any\.whl is served"):
        mid.download_wheel(unserved, downloads)


def test_an_admin_asks_for_an_upgrade_the_mid_reports_it_and_the_history_keeps_it(
    bridge: AsgiBridge, queue: EccQueue
) -> None:
    mid, admin = bridged_client(bridge, MID), bridged_client(bridge, ADMIN)
    mid.register_agent(AgentRegistration("mid1", version="0.1.1"))
    with pytest.raises(QueueError, match="may not do this"):
        mid.request_newest_upgrade("mid1", None)  # a MID does not upgrade MIDs
    with pytest.raises(
        ConfigError, match=r"no wheel of version 9\.9\.9 is served \(served: 0\.1\.2, 0\.1\.10\)"
    ):
        admin.request_newest_upgrade("mid1", "9.9.9")
    with pytest.raises(ConfigError, match="No Record found"):
        admin.request_newest_upgrade("nobody", None)

    asked = admin.request_newest_upgrade("mid1", None)  # the newest served
    assert (asked.from_version, asked.to_version, asked.state) == ("0.1.1", "0.1.10", "Requested")
    assert mid.pending_upgrade("mid1") == asked
    started = mid.start_upgrade("mid1", "0.1.1", "0.1.10", sys_id=asked.sys_id)
    assert started.state == "Upgrading"
    ended = mid.end_upgrade(started.sys_id, succeeded=False, reason="the self-test failed: boom")
    assert (ended.state, ended.reason) == ("Failed", "the self-test failed: boom")
    assert [row.state for row in admin.list_upgrades("mid1")] == ["Failed"]
    (row,) = upgrade_rows(queue)
    assert (row["agent_name"], row["from_version"], row["to_version"], row["state"]) == (
        "mid1",
        "0.1.1",
        "0.1.10",
        "Failed",
    )

    assert admin.upgrade_all("0.1.2") == "0.1.2"
    assert queue.get_setting(SETTING_MID_VERSION) == "0.1.2"
    admin.update_agent("mid1", pinned_version="0.1.1")
    with pytest.raises(ConfigError, match=r"pinned to 0\.1\.1: a pinned MID never upgrades"):
        admin.request_newest_upgrade("mid1", "0.1.2")


def test_without_wheels_the_instance_refuses_an_upgrade_in_one_line(
    queue: EccQueue, users: UserStore
) -> None:
    admin = bridged_client(AsgiBridge(create_app(queue, users)), ADMIN)
    queue.register_agent(AgentRegistration("mid1"))
    assert admin.list_wheels() == []
    with pytest.raises(
        ConfigError, match=r"serves no midprobe wheel it accepts \(instance serve --wheels DIR\)"
    ):
        admin.upgrade_all(None)


def test_a_wheels_folder_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        WheelShelf(tmp_path / "missing")
