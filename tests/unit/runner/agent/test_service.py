"""What ``midprobe mid setup`` writes: an agent config the agent reads back, a unit systemd accepts, no password in either."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from midprobe.runner.agent.config import load_agent_config
from midprobe.runner.agent.service import MidService, agent_config, environment_file, exec_line, systemd_unit

PASSWORD = 'p "quoted" \\ back $HOME %n'


def _service(
    folder: Path, spool: Path | None = None, state: Path | None = None, *, raw_sockets: bool = False
) -> MidService:
    return MidService(
        name="mid1",
        url="https://198.18.0.1:8443",
        user="mid-user",
        ca_file=folder / "ca.pem",
        config_file=folder / "with space" / "agent.toml",
        environment_file=folder / "agent.env",
        spool_dir=spool or folder / "spool",
        state_dir=state or folder / "state",
        program=(sys.executable, "-m", "midprobe.runner"),
        lab_mode=True,
        raw_sockets=raw_sockets,
    )


def test_the_config_is_the_agents_own_format_and_holds_no_password(tmp_path: Path) -> None:
    service = _service(tmp_path)
    path = tmp_path / "agent.toml"
    path.write_text(agent_config(service), encoding="utf-8")
    config = load_agent_config(path, environ={})
    assert (config.name, config.queue_url, config.instance_user) == ("mid1", service.url, "mid-user")
    assert (config.instance_ca_file, config.spool_dir, config.state_dir, config.lab_mode) == (
        service.ca_file,
        service.spool_dir,
        service.state_dir,
        True,
    )
    assert PASSWORD not in agent_config(service) + systemd_unit(service)


def test_the_password_file_and_exec_line_quote_what_systemd_would_read_otherwise() -> None:
    assert environment_file(PASSWORD) == 'MIDPROBE_INSTANCE_PASSWORD="p \\"quoted\\" \\\\ back $HOME %n"\n'
    line = exec_line(["/usr/bin/python3", "-m", "midprobe.runner", "--config", "/etc/a b/100%.toml"])
    assert line == '/usr/bin/python3 -m midprobe.runner --config "/etc/a b/100%%.toml"'


def test_the_state_folder_is_the_units_state_directory_when_it_lives_under_var_lib(tmp_path: Path) -> None:
    # The agent writes its key pair and upgrades there: systemd must leave it writable
    # (ProtectSystem=strict makes everything else read-only).
    state = Path("/var/lib/midprobe/mid1")
    unit = systemd_unit(_service(tmp_path, state / "spool", state)).splitlines()
    assert "StateDirectory=midprobe/mid1" in unit
    assert not [line for line in unit if line.startswith("ReadWritePaths=")]  # the spool is inside it
    elsewhere = systemd_unit(_service(tmp_path)).splitlines()
    assert f"ReadWritePaths={tmp_path / 'state'}" in elsewhere
    assert f"ReadWritePaths={tmp_path / 'spool'}" in elsewhere


def test_the_agent_gets_no_capability_unless_raw_sockets_are_asked_for(tmp_path: Path) -> None:
    plain = systemd_unit(_service(tmp_path)).splitlines()
    assert "CapabilityBoundingSet=" in plain  # none: a SYN scan falls back to TCP connect
    assert not [line for line in plain if line.startswith("AmbientCapabilities=")]
    raw = systemd_unit(_service(tmp_path, raw_sockets=True)).splitlines()
    assert "AmbientCapabilities=CAP_NET_RAW" in raw
    assert "CapabilityBoundingSet=CAP_NET_RAW" in raw  # that one and nothing else
    assert "Environment=NMAP_PRIVILEGED=1" in raw  # nmap takes only root for privileged otherwise
    assert "NoNewPrivileges=yes" in raw


@pytest.mark.parametrize("raw_sockets", [False, True])
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, raw_sockets: bool) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd): the unit cannot be verified")
    service = _service(tmp_path, raw_sockets=raw_sockets)
    unit = tmp_path / service.unit_name
    unit.write_text(systemd_unit(service), encoding="utf-8")
    execs = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert [shlex.split(line.removeprefix("ExecStart=")) for line in execs] == [list(service.exec_start)]
    checked = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == ""
