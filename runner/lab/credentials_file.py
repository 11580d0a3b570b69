"""A running lab's generated credentials as a credentials TOML file (docs/credentials.md).

``midprobe lab status --credentials-toml`` prints it, ``midprobe demo`` and the discovery tests
write it: every lab generates new secrets, so the file is made from the lab, never copied by hand.
"""

from __future__ import annotations

import json

from midprobe.runner.lab.lab import Lab

__all__ = ["lab_credentials_toml"]


def _entry(fields: dict[str, str | list[str]]) -> list[str]:
    # JSON strings and arrays of strings are valid TOML basic strings and arrays.
    return ["[[credential]]", *(f"{key} = {json.dumps(value)}" for key, value in fields.items()), ""]


def lab_credentials_toml(lab: Lab, *, inline_key: bool = False) -> str:
    """The credentials file of ``lab``: SSH (password, then key) scoped to its Linux servers, SNMPv3,
    and its v1/v2c community (in place of ``public``, which no lab agent answers).

    ``inline_key``: the SSH key's text itself (``private_key``) instead of its path, for a file
    that must be self-contained (the credentials pasted into the instance's console).
    """
    creds = lab.credentials
    linux = [host for host in lab.hosts if host.profile.startswith("linux")]
    servers = [f"{host.address}/32" for host in linux] + [
        f"{host.address6}/128" for host in linux if host.address6
    ]
    lines = [
        f"# midprobe lab {lab.prefix}: test-only secrets generated for this lab; they end with it.",
        "snmp_public_fallback = false",
        "",
    ]
    if servers:
        lines += _entry(
            {
                "id": "lab-ssh",
                "type": "ssh_password",
                "user": creds.ssh_user,
                "password": creds.ssh_password,
                "ip_ranges": servers,
            }
        )
        lines += _entry(
            {
                "id": "lab-key",
                "type": "ssh_private_key",
                "user": creds.ssh_user,
                **(
                    {"private_key": creds.ssh_private_key.read_text(encoding="ascii")}
                    if inline_key
                    else {"private_key_file": str(creds.ssh_private_key)}
                ),
                "ip_ranges": servers,
            }
        )
    lines += _entry(
        {
            "id": "lab-v3",
            "type": "snmpv3",
            "user": creds.snmpv3_user,
            "auth_protocol": creds.snmpv3_auth_protocol,
            "auth_key": creds.snmpv3_auth_key,
            "priv_protocol": creds.snmpv3_priv_protocol,
            "priv_key": creds.snmpv3_priv_key,
        }
    )
    lines += _entry(
        {"id": "lab-community", "type": "snmp", "community": creds.snmp_community, "version": "2c"}
    )
    return "\n".join(lines)
