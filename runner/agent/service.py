"""What ``midprobe mid setup`` writes, as text (pure, no I/O): the agent's TOML, its systemd unit, its password file.

The MID runs as a UNIX daemon: a systemd service whose ``ExecStart`` is ``midprobe agent
--config FILE``. The password reaches it only through the unit's ``EnvironmentFile`` (mode
0600, read by systemd before it drops privileges), never through the unit or the config.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from midprobe.runner.queue.url import INSTANCE_PASSWORD_VARIABLE

STATE_ROOT: Final = Path("/var/lib")
"""Where systemd's ``StateDirectory=`` folders live."""


@dataclass(frozen=True)
class MidService:
    """One MID Server set up to run as a systemd service."""

    name: str
    url: str
    user: str
    ca_file: Path
    config_file: Path
    environment_file: Path
    spool_dir: Path
    #: Its key pair and upgrades (``state_dir``); the spool is usually inside it.
    state_dir: Path
    #: The command that runs midprobe (the Python of this installation and ``-m midprobe.runner``).
    program: tuple[str, ...]
    lab_mode: bool = False
    #: Let the agent open raw sockets (``CAP_NET_RAW``): SYN port scans, ARP/ICMP sweeps, nmap's
    #: ``-sS``/``-O``; without it they fall back to TCP connect (nmap: ``-sT``).
    raw_sockets: bool = False

    @property
    def unit_name(self) -> str:
        return f"midprobe-mid-{self.name}.service"

    @property
    def exec_start(self) -> tuple[str, ...]:
        return (*self.program, "agent", "--config", str(self.config_file))


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL is escaped too)."""
    return json.dumps(text).replace("\x7f", "\\u007f")


def agent_config(service: MidService) -> str:
    """The ``[agent]`` table ``midprobe agent --config`` reads (runner/agent/config.py)."""
    values: list[tuple[str, str]] = [
        ("name", _toml_string(service.name)),
        ("queue_url", _toml_string(service.url)),
        ("instance_user", _toml_string(service.user)),
        ("instance_ca_file", _toml_string(str(service.ca_file))),
        ("spool_dir", _toml_string(str(service.spool_dir))),
        ("state_dir", _toml_string(str(service.state_dir))),
    ]
    if service.lab_mode:
        values.append(("lab_mode", "true"))
    lines = [
        f"# midprobe MID Server {service.name}: written by midprobe mid setup.",
        f"# The password is not here: it is {INSTANCE_PASSWORD_VARIABLE} in {service.environment_file}.",
        "[agent]",
        *(f"{key} = {value}" for key, value in values),
    ]
    return "\n".join(lines) + "\n"


def environment_file(password: str) -> str:
    """The unit's ``EnvironmentFile``: the password, double-quoted with ``\\`` and ``"`` escaped."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'{INSTANCE_PASSWORD_VARIABLE}="{quoted}"\n'


def _exec_word(word: str) -> str:
    """One word of an ``ExecStart=`` line: ``%`` and ``$`` doubled (specifiers, variables), quoted if needed."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in escaped) or not escaped:
        return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


def exec_line(words: Sequence[str]) -> str:
    return " ".join(_exec_word(word) for word in words)


def _writable(folder: Path) -> str:
    """The unit line that lets the agent write ``folder``: a ``StateDirectory=`` under /var/lib
    (systemd makes it, owned by the dynamic user), else ``ReadWritePaths=``."""
    if folder.is_relative_to(STATE_ROOT) and folder != STATE_ROOT:
        return f"StateDirectory={folder.relative_to(STATE_ROOT)}"
    return f"ReadWritePaths={_exec_word(str(folder))}"


def systemd_unit(service: MidService) -> str:
    """The service unit: midprobe agent as a dynamic user, its state folder (key pair, upgrades)
    and its spool its only writable folders."""
    writable = [_writable(service.state_dir)]
    if not service.spool_dir.is_relative_to(service.state_dir):
        writable.append(_writable(service.spool_dir))
    # The one capability raw sockets need, and nothing else: kept across the dynamic user's exec
    # (ambient), and told to nmap, which otherwise takes only root for privileged.
    raw = (
        [
            "AmbientCapabilities=CAP_NET_RAW",
            "CapabilityBoundingSet=CAP_NET_RAW",
            "Environment=NMAP_PRIVILEGED=1",
        ]
        if service.raw_sockets
        else ["CapabilityBoundingSet="]
    )
    return "\n".join(
        [
            "[Unit]",
            f"Description=midprobe MID Server {service.name} (instance {service.url})",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={exec_line(service.exec_start)}",
            f"EnvironmentFile={_exec_word(str(service.environment_file))}",
            "DynamicUser=yes",
            *raw,
            *writable,
            "Restart=on-failure",
            "RestartSec=10",
            # SIGTERM: the agent finishes its work in flight (30 s) and releases the rest.
            "TimeoutStopSec=60",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


__all__ = ["MidService", "agent_config", "environment_file", "exec_line", "systemd_unit"]
