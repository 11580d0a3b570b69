"""The SSH probes against the lab's real sshd hosts (password and key logins, wrong password, classify)."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.capabilities.errors import AuthenticationFailed
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.ssh.classify import SSHClassifyProbe, SSHClassifyResult
from midprobe.probes.ssh.command import SSHCommandProbe, SSHCommandResult
from midprobe.probes.ssh.known_hosts import InMemoryKnownHosts
from midprobe.runner.lab import Lab, LabHost, NamespaceThread

pytestmark = pytest.mark.lab


def lab_credentials(lab: Lab, folder: Path, *, password: str | None = None) -> CredentialStore:
    """A credentials file in the issue's shape, the password read from the environment."""
    creds = lab.credentials
    path = folder / "credentials.toml"
    path.write_text(
        "\n".join(
            [
                "[[credential]]",
                'id = "lab-password"',
                'type = "ssh_password"',
                f'user = "{creds.ssh_user}"',
                'password_env = "MP_LAB_SSH_PASSWORD"',
                "order = 10",
                "[[credential]]",
                'id = "lab-key"',
                'type = "ssh_private_key"',
                f'user = "{creds.ssh_user}"',
                f'private_key_file = "{creds.ssh_private_key}"',
                "order = 20",
                f'ip_ranges = ["{lab.network}"]',
                "",
            ]
        )
    )
    return CredentialStore.load(path, environ={"MP_LAB_SSH_PASSWORD": password or creds.ssh_password})


def linux_hosts(lab: Lab) -> list[LabHost]:
    hosts = [host for host in lab.hosts_with("ssh") if host.profile.startswith("linux")]
    assert hosts, "the default lab has a Linux server with sshd"
    return hosts


def run_command(
    thread: NamespaceThread, store: CredentialStore, address: str, parameters: dict[str, str]
) -> SSHCommandResult:
    probe = SSHCommandProbe(InMemoryKnownHosts())
    params = probe.parse_params(address, parameters)
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)
    return thread.run_async(lambda: probe.run(params, context))


@pytest.mark.parametrize("credential_id", ["lab-password", "lab-key"])
def test_login_to_each_linux_host(
    lab: Lab, lab_thread: NamespaceThread, tmp_path: Path, credential_id: str
) -> None:
    store = lab_credentials(lab, tmp_path)
    for host in linux_hosts(lab):
        result = run_command(
            lab_thread, store, host.address, {"name": "hostname; id -un", "credential_id": credential_id}
        )
        assert result.output.stdout == f"{host.name}\n{lab.credentials.ssh_user}\n"
        assert result.output.exit_status == 0
        assert result.connection.credential_id == credential_id
        assert result.connection.host_key.fingerprint.startswith("SHA256:")


def test_wrong_password_is_rejected_then_the_key_works(
    lab: Lab, lab_thread: NamespaceThread, tmp_path: Path
) -> None:
    host = linux_hosts(lab)[0]
    store = lab_credentials(lab, tmp_path, password="wrong-password-for-the-lab")
    with pytest.raises(AuthenticationFailed, match="every SSH credential was rejected"):
        run_command(lab_thread, store, host.address, {"name": "true", "credential_id": "lab-password"})
    with pytest.raises(AuthenticationFailed, match="skipped for another"):
        run_command(lab_thread, store, host.address, {"name": "true"})
    fresh = lab_credentials(lab, tmp_path, password="wrong-password-for-the-lab")
    result = run_command(lab_thread, fresh, host.address, {"name": "true", "credentials_debug": "true"})
    assert result.connection.credentials_tried == ("lab-password", "lab-key")
    assert fresh.affinity.get_affinity(host.address, "ssh") == "lab-key"


def test_classify_a_lab_linux_server(lab: Lab, lab_thread: NamespaceThread, tmp_path: Path) -> None:
    store = lab_credentials(lab, tmp_path)
    host = linux_hosts(lab)[0]
    probe = SSHClassifyProbe(InMemoryKnownHosts())
    params = probe.parse_params(host.address, {})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)
    result: SSHClassifyResult = lab_thread.run_async(lambda: probe.run(params, context))
    assert result.facts.ci_class == "cmdb_ci_linux_server"
    assert result.facts.hostname == host.name
    assert host.address in [address.address for address in result.facts.addresses]
    assert result.facts.cpu_count is not None
    assert result.facts.memory_mb is not None
    assert result.connection.credential_id == "lab-password"
