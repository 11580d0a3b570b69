"""The SSH probes against a real OpenSSH sshd in a private network namespace (see sshd_harness.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import paramiko
import pytest

from midprobe.capabilities.errors import (
    AuthenticationFailed,
    HostKeyMismatch,
    NetworkError,
    ProbeTimeout,
    ReadTimeout,
    SudoFailed,
)
from midprobe.probes.base import ProbeContext, SharedResources
from midprobe.probes.credentials import CredentialStore
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.ssh.channel import CommandOutput
from midprobe.probes.ssh.classify import CLASSIFY_COMMANDS, SSHClassifyProbe
from midprobe.probes.ssh.command import SSHCommandProbe, SSHCommandResult
from midprobe.probes.ssh.connections import PoolSettings, SSHConnectionPool
from midprobe.probes.ssh.known_hosts import FileKnownHosts, InMemoryKnownHosts
from midprobe.probes.ssh.session import MAX_CONNECTIONS_PER_HOST, SUDO_PROMPT, SUDO_STARTED, SSHTimeouts
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.ecc.record import EccRecord
from tests.lab.sshd_harness import (
    NO_SUDO_USER,
    SUDO_NOPASSWD_USER,
    SUDO_TARGETPW_USER,
    SUDO_USER,
    TEST_HOSTNAME,
    USERS,
    HangingServer,
    SSHTestBed,
)

pytestmark = pytest.mark.lab
T = TypeVar("T")

LOCAL = "127.0.0.1"


@pytest.fixture(scope="module")
def bed() -> Iterator[SSHTestBed]:
    test_bed = SSHTestBed()
    try:
        test_bed.start_sshd(22)
        yield test_bed
    finally:
        test_bed.close()


def store_for(bed: SSHTestBed, tmp_path: Path, text: str | None = None) -> CredentialStore:
    path = tmp_path / "credentials.toml"
    path.write_text(text if text is not None else bed.credentials_toml())
    return CredentialStore.load(path, environ={"MP_TEST_KEY_PASSPHRASE": bed.key_passphrase})


def run_command(
    bed: SSHTestBed,
    store: CredentialStore,
    parameters: dict[str, str],
    probe: SSHCommandProbe | None = None,
) -> SSHCommandResult:
    probe = probe or SSHCommandProbe(InMemoryKnownHosts())
    params = probe.parse_params(LOCAL, parameters)
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)
    return bed.thread.run_async(lambda: probe.run(params, context))


def fingerprint_of(public_key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]


def test_password_login_runs_the_command_and_reports_exit_status(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    result = run_command(
        bed, store, {"name": "uname -a; echo to-stderr >&2; exit 3", "credential_id": "test-password"}
    )
    assert result.output.stdout.startswith(f"Linux {TEST_HOSTNAME} ")
    assert result.output.stderr == "to-stderr\n"
    assert result.output.exit_status == 3
    assert result.connection.credential_id == "test-password"
    assert result.connection.user == bed.user
    server = bed_server_key(bed)
    assert result.connection.host_key.fingerprint == fingerprint_of(server)
    element = SSHCommandProbe().encode_results(result)[0]
    assert element.get("exit_status") == "3"
    assert element.get("credential_id") == "test-password"
    assert element.get("host_key") == f"ssh-ed25519 {fingerprint_of(server)}"
    assert bed.password not in str(result)


def bed_server_key(bed: SSHTestBed) -> Path:
    return Path(f"{bed.workdir / 'host_key_22_0'}.pub")


@pytest.mark.parametrize("credential_id", ["test-ed25519", "test-ecdsa", "test-rsa-pem"])
def test_key_login_with_each_key_type(bed: SSHTestBed, tmp_path: Path, credential_id: str) -> None:
    store = store_for(bed, tmp_path)
    result = run_command(bed, store, {"name": "id -un", "credential_id": credential_id})
    assert result.output.stdout == f"{bed.user}\n"
    assert result.output.exit_status == 0
    assert result.connection.credential_id == credential_id


def test_set_path_puts_the_sbin_directories_first(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    with_path = run_command(bed, store, {"name": "echo $PATH"})
    without = run_command(bed, store, {"name": "echo $PATH", "set_path": "false"})
    assert with_path.output.stdout.startswith("/usr/sbin:/usr/bin:/bin:/sbin:")
    assert not without.output.stdout.startswith("/usr/sbin:/usr/bin:/bin:/sbin:")


def test_the_command_reads_end_of_input_instead_of_hanging(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    result = run_command(bed, store, {"name": "cat; echo done", "command_timeout_ms": "5000"})
    assert result.output.stdout == "done\n"


def test_wrong_password_is_an_authentication_failure_and_the_address_is_then_skipped(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    store = store_for(bed, tmp_path, bed.credentials_toml(password="not-the-password"))
    with pytest.raises(AuthenticationFailed, match="every SSH credential was rejected") as failure:
        run_command(bed, store, {"name": "true", "credential_id": "test-password"})
    assert "not-the-password" not in str(failure.value)
    assert store.tracker.failures(LOCAL, "test-password") == 1
    # refused before connecting: the skip is checked ahead of any socket
    with pytest.raises(AuthenticationFailed, match="skipped for another"):
        run_command(bed, store, {"name": "true", "credential_id": "test-password"})
    assert store.tracker.failures(LOCAL, "test-password") == 1


def test_first_success_becomes_the_affinity_and_is_tried_first_next_time(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    store = store_for(bed, tmp_path, bed.credentials_toml(password="not-the-password"))
    first = run_command(bed, store, {"name": "true", "credentials_debug": "true"})
    assert first.connection.credentials_tried == ("test-password", "test-ed25519")
    assert first.connection.credential_id == "test-ed25519"
    assert store.affinity.get_affinity(LOCAL, "ssh") == "test-ed25519"
    second = run_command(bed, store, {"name": "true", "credentials_debug": "true"})
    assert second.connection.credentials_tried == ("test-ed25519",)
    element = SSHCommandProbe().encode_results(second)[0]
    assert element.get("credentials_tried") == "test-ed25519"


def test_changed_host_key_is_refused_in_strict_mode(bed: SSHTestBed, tmp_path: Path) -> None:
    known_hosts = FileKnownHosts(tmp_path / "known_hosts")
    store = store_for(bed, tmp_path)
    first_key = bed.new_host_key("rotating_a")
    server = bed.start_sshd(2201, first_key)
    strict = SSHCommandProbe(known_hosts, strict_host_keys=True)
    recorded = run_command(bed, store, {"name": "true", "port": "2201"}, strict)
    assert recorded.connection.host_key_status == "new"
    assert known_hosts.lookup(LOCAL, 2201)[0].fingerprint == fingerprint_of(Path(f"{first_key}.pub"))
    # OpenSSH reads what we recorded.
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[{LOCAL}]:2201", "-f", str(tmp_path / "known_hosts")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0
    assert (
        run_command(bed, store, {"name": "true", "port": "2201"}, strict).connection.host_key_status
        == "known"
    )

    server.stop()
    second_key = bed.new_host_key("rotating_b")
    bed.start_sshd(2201, second_key)
    with pytest.raises(HostKeyMismatch, match=r"host key of 127\.0\.0\.1:2201 changed"):
        run_command(bed, store, {"name": "true", "port": "2201"}, strict)
    # Not strict: accepted, reported as changed, and the new key is recorded.
    relaxed = SSHCommandProbe(known_hosts, strict_host_keys=False)
    result = run_command(bed, store, {"name": "true", "port": "2201"}, relaxed)
    assert result.connection.host_key_status == "changed"
    assert known_hosts.lookup(LOCAL, 2201)[0].fingerprint == fingerprint_of(Path(f"{second_key}.pub"))


@pytest.mark.parametrize("banner", [b"SSH-2.0-x\r\n", b""], ids=["banner-then-silence", "silent"])
def test_a_server_that_hangs_is_a_bounded_timeout(bed: SSHTestBed, tmp_path: Path, banner: bytes) -> None:
    store = store_for(bed, tmp_path)
    hanging = HangingServer(bed, 2222, banner)
    try:
        started = time.monotonic()
        with pytest.raises(ReadTimeout, match=r"SSH handshake with 127\.0\.0\.1:2222 timed out after 1\.5 s"):
            run_command(bed, store, {"name": "true", "port": "2222", "connect_timeout_ms": "1500"})
        assert time.monotonic() - started < 8.0  # bounded: far below paramiko's own 15 s defaults
    finally:
        hanging.close()


def test_nothing_listening_is_a_network_error(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    with pytest.raises(NetworkError, match="connection refused"):
        run_command(bed, store, {"name": "true", "port": "2299"})


def test_command_timeout_stops_the_command(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match="timed out after 1 s"):
        run_command(bed, store, {"name": "sleep 30", "command_timeout_ms": "1000"})
    assert time.monotonic() - started < 8.0  # bounded: the command would sleep 30 s


def test_output_beyond_the_cap_is_cut_and_flagged(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    result = run_command(
        bed, store, {"name": "head -c 5000000 /dev/zero | tr '\\0' a", "max_output_bytes": "100000"}
    )
    assert result.output.truncated
    assert result.output.stdout == "a" * 100000
    assert result.output.exit_status is None
    assert SSHCommandProbe().encode_results(result)[0].get("truncated") == "true"


def test_at_most_seven_connections_per_host(bed: SSHTestBed, tmp_path: Path) -> None:
    """14 commands on one host run at most 7 at a time, and the limit is used in full.

    Each command prints when it started and ended (one clock, on the server), so the peak
    overlap is exact; sampling ``ss`` is not (a socket dump is no atomic snapshot). A command
    runs inside its connection, so its overlap can never exceed the connections open at once.
    """
    store = store_for(bed, tmp_path)
    probe = SSHCommandProbe(InMemoryKnownHosts())
    command = "date +%s%N; sleep 1.5; date +%s%N"
    params = probe.parse_params(LOCAL, {"name": command, "credential_id": "test-ed25519"})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)

    async def many() -> list[SSHCommandResult]:
        return await asyncio.gather(*(probe.run(params, context) for _ in range(14)))

    results = bed.thread.run_async(many)
    assert len(results) == 14
    assert all(result.output.exit_status == 0 for result in results)
    events: list[tuple[int, int]] = []
    for result in results:
        started, ended = (int(line) for line in result.output.stdout.split())
        events += [(started, +1), (ended, -1)]
    running = peak = 0
    for _, change in sorted(events):  # at equal times an end (-1) sorts before a start
        running += change
        peak = max(peak, running)
    assert peak == MAX_CONNECTIONS_PER_HOST == 7  # docs/ecc-reference.md: at most 7 SSH connections per host


def test_classify_collects_typed_facts_over_one_connection(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    probe = SSHClassifyProbe(InMemoryKnownHosts())
    params = probe.parse_params(LOCAL, {"credential_tag": "", "credential_id": "test-ed25519"})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)
    result = bed.thread.run_async(lambda: probe.run(params, context))
    assert [output.command for output in result.outputs] == [command for _, command in CLASSIFY_COMMANDS]
    facts = result.facts
    assert facts.ci_class == "cmdb_ci_linux_server"
    assert facts.kernel_name == "Linux"
    assert facts.hostname == TEST_HOSTNAME
    assert LOCAL in [address.address for address in facts.addresses]
    assert facts.cpu_count is not None
    assert facts.cpu_count >= 1
    assert facts.memory_mb is not None
    assert facts.memory_mb > 64
    assert facts.os_name is not None  # this machine's /etc/os-release
    elements = probe.encode_results(result)
    assert len(elements) == len(CLASSIFY_COMMANDS) + 1
    assert elements[-1].get("classification") == "cmdb_ci_linux_server"
    assert elements[-1].findtext("hostname") == TEST_HOSTNAME


# -- must_sudo against the real sudo of the bed (rules: sshd_harness.SSHTestBed.sudoers_text) -----------


def sudo_store(bed: SSHTestBed, tmp_path: Path) -> CredentialStore:
    """A password and a key credential for each user of the bed, ids ``<user>-password``/``<user>-ed25519``."""
    return store_for(bed, tmp_path, "".join(bed.user_credentials_toml(user) for user in USERS))


def encoded(result: SSHCommandResult) -> str:
    return ET.tostring(SSHCommandProbe().encode_results(result)[0], encoding="unicode")


def test_must_sudo_with_a_password_answers_the_prompt_and_runs_as_root(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    """sudo asks this user for its password; the probe answers once and the password shows nowhere."""
    store = sudo_store(bed, tmp_path)
    command = "cat; id -u; echo $SUDO_USER; echo to-stderr >&2"  # cat: the password never reaches the command
    result = run_command(
        bed,
        store,
        {
            "name": command,
            "must_sudo": "true",
            "credential_id": f"{SUDO_USER}-password",
            "command_timeout_ms": "20000",
        },
    )
    assert result.output.stdout == f"0\n{SUDO_USER}\n"
    assert result.output.stderr == "to-stderr\n"  # no prompt, no start marker
    assert result.output.exit_status == 0
    xml = encoded(result)
    assert f"<stdout>0\n{SUDO_USER}\n</stdout>" in xml
    for text in (result.output.stdout, result.output.stderr, str(result), xml):
        assert bed.password not in text
        assert SUDO_PROMPT not in text
        assert SUDO_STARTED not in text


@pytest.mark.parametrize("credential", ["ed25519", "password"])
def test_must_sudo_with_a_nopasswd_rule(bed: SSHTestBed, tmp_path: Path, credential: str) -> None:
    """No prompt comes: a key works (sudo -n), and a password credential is not kept waiting for one."""
    store = sudo_store(bed, tmp_path)
    started = time.monotonic()
    result = run_command(
        bed,
        store,
        {
            "name": "id -u",
            "must_sudo": "true",
            "credential_id": f"{SUDO_NOPASSWD_USER}-{credential}",
            "command_timeout_ms": "20000",
        },
    )
    assert (result.output.stdout, result.output.stderr, result.output.exit_status) == ("0\n", "", 0)
    assert time.monotonic() - started < 10.0
    assert bed.password not in encoded(result)


KEY_HAS_NO_PASSWORD = (
    r"sudo: a password is required \(a key login has no password to give sudo: it takes a NOPASSWD rule\)$"
)


@pytest.mark.parametrize(
    ("user", "credential", "reason"),
    [
        (NO_SUDO_USER, "password", rf"{NO_SUDO_USER} is not in the sudoers file\.$"),
        (NO_SUDO_USER, "ed25519", KEY_HAS_NO_PASSWORD),
        (SUDO_USER, "ed25519", KEY_HAS_NO_PASSWORD),
        (
            SUDO_TARGETPW_USER,  # sudo wants root's password, which is locked
            "password",
            r"the password was not accepted \(Sorry, try again\.; .*incorrect password attempt\)$",
        ),
    ],
    ids=["no-rule-password", "no-rule-key", "password-rule-key", "password-refused"],
)
def test_sudo_refusal_is_a_clear_error_within_the_command_timeout(
    bed: SSHTestBed, tmp_path: Path, user: str, credential: str, reason: str
) -> None:
    store = sudo_store(bed, tmp_path)
    started = time.monotonic()
    expected = rf"^sudo refused to run 'id -u' as root for {user} on 127\.0\.0\.1: {reason}"
    with pytest.raises(SudoFailed, match=expected) as refused:
        run_command(
            bed,
            store,
            {
                "name": "id -u",
                "must_sudo": "true",
                "credential_id": f"{user}-{credential}",
                "command_timeout_ms": "10000",
            },
        )
    assert time.monotonic() - started < 10.0  # sudo's answer, not the command timeout
    assert bed.password not in str(refused.value)
    assert SUDO_PROMPT not in str(refused.value)


def test_a_command_under_sudo_is_bounded_by_the_command_timeout(bed: SSHTestBed, tmp_path: Path) -> None:
    store = sudo_store(bed, tmp_path)
    started = time.monotonic()
    with pytest.raises(ReadTimeout, match=r"^command 'sleep 30' timed out after 1 s$"):
        run_command(
            bed,
            store,
            {
                "name": "sleep 30",
                "must_sudo": "true",
                "credential_id": f"{SUDO_USER}-password",
                "command_timeout_ms": "1000",
            },
        )
    assert time.monotonic() - started < 8.0


def test_the_agent_answers_must_sudo_requests_with_results_and_error_records(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    """Through the probe runner: root's output in the payload, a refusal as the record's error; no password."""
    runner = ProbeRunner(
        registry=default_registry(),
        identity=AgentIdentity(name="lab1"),
        policy=TargetPolicy.lab(),
        probe_timeout_seconds=30.0,
        credentials=sudo_store(bed, tmp_path),
    )

    def request(user: str) -> EccRecord:
        return new_output_record(
            agent="lab1",
            topic="SSHCommand",
            source=LOCAL,
            name="id -u",
            parameters={"must_sudo": "true", "credential_id": f"{user}-password"},
        )

    allowed = bed.thread.run_async(lambda: runner.answer(request(SUDO_USER)))
    refused = bed.thread.run_async(lambda: runner.answer(request(NO_SUDO_USER)))
    assert allowed.error_string == ""
    assert decode_input_payload(allowed.payload).results[0].findtext("stdout") == "0\n"
    assert refused.error_string == (
        f"sudo refused to run 'id -u' as root for {NO_SUDO_USER} on {LOCAL}: "
        f"{NO_SUDO_USER} is not in the sudoers file."
    )
    for record in (allowed, refused):
        assert bed.password not in record.payload
        assert bed.password not in record.error_string


# -- the agent's connection pool: one connection per host and credential, a channel per command --


def pooled_commands(
    bed: SSHTestBed,
    store: CredentialStore,
    scenario: Callable[[Callable[..., Awaitable[SSHCommandResult]], SSHConnectionPool], Awaitable[T]],
    settings: PoolSettings | None = None,
) -> T:
    """Run ``scenario(run, pool)`` on one event loop with a runner-style shared pool, then close it.

    ``run(command, credential_id=...)`` runs ``echo $SSH_CONNECTION; command`` as one SSHCommand
    request through the pool; after the scenario the pool is closed and every connection the
    commands ran on must be gone from the server's side.
    """
    probe = SSHCommandProbe(InMemoryKnownHosts())
    shared = SharedResources()
    pool = shared.get(SSHConnectionPool, lambda: SSHConnectionPool(settings))
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store, shared=shared)

    clients: set[int] = set()

    async def run(command: str, credential_id: str = "test-ed25519") -> SSHCommandResult:
        params = probe.parse_params(
            LOCAL, {"name": "echo $SSH_CONNECTION; " + command, "credential_id": credential_id}
        )
        result = await probe.run(params, context)
        clients.add(int(connection_of(result).split()[1]))
        return result

    async def main() -> T:
        try:
            return await scenario(run, pool)
        finally:
            await shared.close()

    value = bed.thread.run_async(main)
    wait_until(lambda: not clients & bed.established_peers(22), "the pool's connections to close")
    return value


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def connection_of(result: SSHCommandResult) -> str:
    """The server's ``$SSH_CONNECTION`` (client address and port): one value per TCP connection."""
    assert result.output.exit_status == 0, result.output.stderr
    return result.output.stdout.splitlines()[0]


def test_pooled_commands_to_one_host_share_one_connection(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)

    async def scenario(run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool) -> list[str]:
        first = [await run("true") for _ in range(3)]
        together = await asyncio.gather(*(run("true") for _ in range(5)))
        assert pool.opened == 1
        return [connection_of(result) for result in [*first, *together]]

    assert len(set(pooled_commands(bed, store, scenario))) == 1


def test_pool_opens_at_most_seven_connections_per_host_under_32_wide_load(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    """One channel per connection: 32 requests at once share 7 connections, all 7 used at once."""
    store = store_for(bed, tmp_path)
    command = "date +%s%N; sleep 0.5; date +%s%N"

    async def scenario(
        run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool
    ) -> list[SSHCommandResult]:
        return await asyncio.gather(*(run(command) for _ in range(32)))

    results = pooled_commands(bed, store, scenario, PoolSettings(channels_per_connection=1))
    assert len({connection_of(result) for result in results}) == MAX_CONNECTIONS_PER_HOST == 7
    events: list[tuple[int, int]] = []
    for result in results:
        started, ended = (int(line) for line in result.output.stdout.split()[-2:])
        events += [(started, +1), (ended, -1)]
    running = peak = 0
    for _, change in sorted(events):
        running += change
        peak = max(peak, running)
    assert peak == 7


def test_pool_runs_many_channels_on_few_connections(bed: SSHTestBed, tmp_path: Path) -> None:
    """At the default 8 channels a connection, 32 requests at once need 4 connections, never more than 7."""
    store = store_for(bed, tmp_path)

    async def scenario(
        run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool
    ) -> list[SSHCommandResult]:
        return await asyncio.gather(*(run("sleep 0.3") for _ in range(32)))

    results = pooled_commands(bed, store, scenario)
    assert 1 <= len({connection_of(result) for result in results}) <= 7


def test_idle_pooled_connection_is_closed_after_the_idle_time(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)

    async def scenario(run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool) -> None:
        first = await run("true")
        # Nobody uses it now: it goes by itself, while the pool is still open.
        client = int(connection_of(first).split()[1])
        deadline = time.monotonic() + 15
        while pool.open_connections(LOCAL) or client in await asyncio.to_thread(bed.established_peers, 22):
            assert time.monotonic() < deadline, "the idle connection stayed open"
            await asyncio.sleep(0.05)
        assert pool.opened == 1
        assert not pool.closed

    pooled_commands(bed, store, scenario, PoolSettings(idle_seconds=0.2))


def test_a_different_credential_gets_a_different_connection(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)

    async def scenario(run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool) -> list[str]:
        results = [
            await run("true", credential_id=credential)
            for credential in ("test-ed25519", "test-rsa-pem", "test-ed25519", "test-rsa-pem")
        ]
        assert [result.connection.credential_id for result in results] == [
            "test-ed25519",
            "test-rsa-pem",
        ] * 2
        return [connection_of(result) for result in results]

    ed25519, rsa, ed25519_again, rsa_again = pooled_commands(bed, store, scenario)
    assert ed25519 != rsa
    assert (ed25519_again, rsa_again) == (ed25519, rsa)


def test_a_killed_pooled_connection_is_replaced(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)

    async def scenario(run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool) -> list[str]:
        # $PPID: the server's process for this connection; killing it drops the connection.
        first = await run("echo $PPID")
        os.kill(int(first.output.stdout.split()[-1]), signal.SIGKILL)
        second = await run("true")
        third = await run("true")
        assert pool.opened == 2
        return [connection_of(result) for result in (first, second, third)]

    first, second, third = pooled_commands(bed, store, scenario)
    assert first != second == third


def test_the_agent_runner_closes_its_pooled_connections_and_threads(bed: SSHTestBed, tmp_path: Path) -> None:
    store = store_for(bed, tmp_path)
    runner = ProbeRunner(
        registry=default_registry(),
        identity=AgentIdentity(name="pooltest"),
        policy=TargetPolicy.lab(),
        credentials=store,
    )
    output = new_output_record(
        agent="pooltest",
        topic="SSHCommand",
        name="echo $SSH_CONNECTION",
        source=LOCAL,
        parameters={"credential_id": "test-ed25519"},
    )

    def paramiko_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()}

    before = paramiko_threads()  # other tests' runners, never closed, may still hold some

    async def main() -> list[EccRecord]:
        answers = [await runner.answer(output) for _ in range(3)]
        assert runner.shared.get(SSHConnectionPool).opened == 1
        await runner.close()
        return answers

    answers = bed.thread.run_async(main)
    assert all(not answer.error_string for answer in answers)
    stdout = {decode_input_payload(answer.payload).results[0].findtext("stdout") for answer in answers}
    assert len(stdout) == 1
    (connection,) = stdout
    assert connection is not None
    client = int(connection.split()[1])
    wait_until(lambda: client not in bed.established_peers(22), "the runner's connections to close")
    wait_until(lambda: paramiko_threads() <= before, "paramiko's threads to end")


def test_a_channel_the_server_refuses_leaves_the_commands_running_on_that_connection(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    """At its MaxSessions (2 here) the server refuses a third channel on a connection: that command
    runs on a fresh connection, and the two running on the first one go on to their end."""
    bed.start_sshd(2222, max_sessions=2)
    store = store_for(bed, tmp_path)

    async def main() -> tuple[list[CommandOutput], int]:
        pool = SSHConnectionPool(PoolSettings(channels_per_connection=8))
        known_hosts = InMemoryKnownHosts()

        async def one() -> CommandOutput:
            async with pool.lease(
                LOCAL,
                2222,
                store=store,
                known_hosts=known_hosts,
                timeouts=SSHTimeouts(),
                deadline=time.monotonic() + 60,
            ) as connection:
                return await connection.run("echo $SSH_CONNECTION; sleep 0.5; echo done")

        try:
            outputs = await asyncio.gather(*(one() for _ in range(3)))
            return list(outputs), pool.opened
        finally:
            await pool.close()

    outputs, opened = bed.thread.run_async(main)
    assert [(output.exit_status, output.stdout.splitlines()[-1]) for output in outputs] == [(0, "done")] * 3
    assert opened == 2
    # Two commands shared the first connection, the refused one ran on the second.
    assert sorted(Counter(output.stdout.splitlines()[0] for output in outputs).values()) == [1, 2]


def test_a_cancelled_command_ends_its_own_channel_not_the_pooled_connection(
    bed: SSHTestBed, tmp_path: Path
) -> None:
    """Two commands share a pooled connection; cancelling one (its request's deadline, a cancelled
    discovery) ends that command's channel: the other runs to its end, and the connection stays."""
    store = store_for(bed, tmp_path)

    async def scenario(run: Callable[..., Awaitable[SSHCommandResult]], pool: SSHConnectionPool) -> list[str]:
        kept = asyncio.ensure_future(run("sleep 1.5; echo done"))
        cancelled = asyncio.ensure_future(run("sleep 37"))
        deadline = time.monotonic() + 15
        while not await asyncio.to_thread(_running, "sleep 37"):
            assert time.monotonic() < deadline, "the command to cancel never started"
            await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        first = await kept
        assert first.output.stdout.splitlines()[-1] == "done"
        after = await run("true")  # the same connection takes the next command
        assert pool.opened == 1
        return [connection_of(first), connection_of(after)]

    first, after = pooled_commands(bed, store, scenario)
    assert first == after


def _running(command: str) -> bool:
    """Whether a process runs ``command`` (the lab's sshd shares this machine's process table)."""
    return subprocess.run(["pgrep", "-f", command], capture_output=True, check=False).returncode == 0
