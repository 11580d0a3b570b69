"""Every profile's services answer the reference clients (ssh, snmpget, dnspython, nmap) run in the lab."""

from __future__ import annotations

import asyncio
import functools
import socket

import dns.message
import dns.query
import dns.resolver
import dns.reversename
import paramiko
import pytest
from defusedxml import ElementTree

from midprobe.capabilities.errors import LabError
from midprobe.runner.lab import Lab, LabHost, NamespaceThread

pytestmark = pytest.mark.lab

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
CLOSED_PROBES = (23, 443, 3389)


def _ssh_argv(lab: Lab, host: LabHost, command: str) -> list[str]:
    return [
        "ssh", "-i", str(lab.credentials.ssh_private_key),
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        f"{lab.credentials.ssh_user}@{host.address}", command,
    ]  # fmt: skip


def _snmp_v3(lab: Lab) -> list[str]:
    c = lab.credentials
    return [
        "-v3", "-l", "authPriv", "-u", c.snmpv3_user,
        "-a", c.snmpv3_auth_protocol, "-A", c.snmpv3_auth_key,
        "-x", c.snmpv3_priv_protocol, "-X", c.snmpv3_priv_key,
    ]  # fmt: skip


def _snmpget_values(lab: Lab, auth: list[str], address: str, *oids: str) -> dict[str, str]:
    done = lab.run(["snmpget", *auth, "-On", "-Oqv", "-t", "2", "-r", "1", address, *oids], timeout=20)
    return dict(zip(oids, done.stdout.splitlines(), strict=True))


def test_the_default_lab_has_every_profile(lab: Lab) -> None:
    profiles = {host.profile for host in lab.hosts}
    assert {"linux_server", "switch", "printer", "single_port", "silent", "dns"} <= profiles
    assert lab.scanner_address == "198.18.0.1"
    assert [h.address for h in lab.hosts][:2] == ["198.18.0.10", "198.18.0.11"]
    assert lab.host("dns1").address == lab.dns_server
    assert {h.name for h in lab.hosts_with("ssh")} == {"linux1", "switch1"}
    with pytest.raises(LabError, match="no host 'nosuch'"):
        lab.host("nosuch")


def test_nmap_finds_exactly_the_open_ports_of_every_host(lab: Lab) -> None:
    open_ports = {port for host in lab.hosts for port in host.open_tcp_ports}
    ports = ",".join(str(p) for p in sorted(open_ports | set(CLOSED_PROBES)))
    done = lab.run(
        ["nmap", "-sT", "-Pn", "-n", "-T4", "--max-retries", "1", "-p", ports, "-oX", "-",
         *(h.address for h in lab.hosts)],
        timeout=90,
    )  # fmt: skip
    root = ElementTree.fromstring(done.stdout)
    states: dict[str, dict[int, str]] = {}
    for host in root.iter("host"):
        address = host.find("address").get("addr")
        states[address] = {int(p.get("portid")): p.find("state").get("state") for p in host.iter("port")}
    for host in lab.hosts:
        found = states[host.address]
        assert tuple(sorted(p for p, s in found.items() if s == "open")) == host.open_tcp_ports, host.name
        if host.profile == "silent":
            assert set(found.values()) == {"filtered"}, found
        else:
            assert {s for p, s in found.items() if p not in host.open_tcp_ports} == {"closed"}, host.name


def test_ssh_by_key_in_batch_mode_reaches_each_ssh_host(lab: Lab) -> None:
    for host in lab.hosts_with("ssh"):
        done = lab.run(_ssh_argv(lab, host, "hostname; id -un"), timeout=30)
        assert done.stdout.split() == [host.name, lab.credentials.ssh_user]


def test_ssh_by_password_with_paramiko_from_the_namespace_thread(
    lab: Lab, lab_thread: NamespaceThread
) -> None:
    for host in lab.hosts_with("ssh"):
        # The socket is made inside the lab namespace, then paramiko uses it from this thread.
        sock = lab_thread.call(functools.partial(socket.create_connection, (host.address, 22), timeout=5))
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 (a fresh lab host key)
        try:
            client.connect(
                host.address,
                username=lab.credentials.ssh_user,
                password=lab.credentials.ssh_password,
                sock=sock,
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
            )
            _, stdout, _ = client.exec_command("uname -n", timeout=10)
            assert stdout.read().decode().strip() == host.name
        finally:
            client.close()


def test_ssh_refuses_a_wrong_password(lab: Lab, lab_thread: NamespaceThread) -> None:
    host = lab.host("linux1")
    sock = lab_thread.call(lambda: socket.create_connection((host.address, 22), timeout=5))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(
            host.address, username=lab.credentials.ssh_user, password="not-the-password",
            sock=sock, look_for_keys=False, allow_agent=False, timeout=10,
        )  # fmt: skip
    client.close()


def test_the_switch_presents_a_network_os_over_ssh(lab: Lab, lab_thread: NamespaceThread) -> None:
    switch = lab.host("switch1")
    sock = lab_thread.call(lambda: socket.create_connection((switch.address, 22), timeout=5))
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        assert "Cisco" in transport.remote_version
        transport.auth_password(lab.credentials.ssh_user, lab.credentials.ssh_password)
        assert "Cisco IOS Software" in (transport.get_banner() or b"").decode()
    finally:
        transport.close()
    linux = lab.host("linux1")
    sock = lab_thread.call(lambda: socket.create_connection((linux.address, 22), timeout=5))
    with paramiko.Transport(sock) as plain:
        plain.start_client(timeout=10)
        assert plain.remote_version.startswith("SSH-2.0-OpenSSH_")
        assert "Cisco" not in plain.remote_version


def test_snmp_v2c_answers_the_profile_system_group(lab: Lab) -> None:
    for host in lab.hosts_with("snmp"):
        values = _snmpget_values(
            lab,
            ["-v2c", "-c", lab.credentials.snmp_community],
            host.address,
            SYS_DESCR,
            SYS_OBJECT_ID,
            SYS_NAME,
        )
        assert values[SYS_DESCR].strip('"') == host.sys_descr
        assert values[SYS_OBJECT_ID] == host.sys_object_id
        assert values[SYS_NAME].strip('"') == host.sys_name == host.name


def test_snmp_v3_auth_priv_with_sha_and_aes(lab: Lab) -> None:
    for host in lab.hosts_with("snmp"):
        values = _snmpget_values(lab, _snmp_v3(lab), host.address, SYS_OBJECT_ID, SYS_NAME)
        assert values == {SYS_OBJECT_ID: host.sys_object_id, SYS_NAME: f'"{host.name}"'}


def test_snmp_refuses_wrong_secrets(lab: Lab) -> None:
    address = lab.host("linux1").address
    wrong_community = lab.run(
        ["snmpget", "-v2c", "-c", "public", "-t", "0.5", "-r", "0", address, SYS_NAME], check=False
    )
    assert wrong_community.returncode != 0
    assert "Timeout" in wrong_community.stderr
    v3 = _snmp_v3(lab)
    v3[v3.index("-X") + 1] = "wrong-priv-key"
    wrong_priv = lab.run(["snmpget", *v3, "-t", "0.5", "-r", "0", address, SYS_NAME], check=False)
    assert wrong_priv.returncode != 0


def test_the_switch_has_a_rich_interface_table(lab: Lab) -> None:
    switch = lab.host("switch1")
    walk = lab.run(
        ["snmpwalk", "-v2c", "-c", lab.credentials.snmp_community, "-Oqv", switch.address, IF_DESCR]
    )
    names = [line.strip('"') for line in walk.stdout.splitlines()]
    assert {f"Gi1-0-{n}" for n in range(1, 9)} | {"Vlan1", "eth0"} <= set(names)
    assert len(names) >= 10


def test_the_printer_answers_printer_mib_and_port_9100(lab: Lab, lab_thread: NamespaceThread) -> None:
    printer = lab.host("printer1")
    values = _snmpget_values(
        lab, ["-v2c", "-c", lab.credentials.snmp_community], printer.address, "1.3.6.1.2.1.43.5.1.1.16.1"
    )
    assert "LaserJet" in next(iter(values.values()))
    assert printer.sys_object_id == ".1.3.6.1.4.1.11.2.3.9.1"

    def send_job() -> bool:
        with socket.create_connection((printer.address, 9100), timeout=5) as conn:
            conn.sendall(b"\x1b%-12345X@PJL INFO ID\r\n")
            return True

    assert lab_thread.call(send_job)


def test_http_hosts_serve_a_page_with_their_server_header(lab: Lab, lab_thread: NamespaceThread) -> None:
    async def fetch(address: str, port: int) -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 5)
        writer.write(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return data

    for host in lab.hosts_with("http"):
        for port in host.open_tcp_ports:
            if port in (22, 53, 9100):
                continue
            reply = lab_thread.run_async(functools.partial(fetch, host.address, port))
            assert reply.startswith(b"HTTP/1.0 200 OK"), (host.name, port)
            assert b"Server: " in reply
            assert host.name.encode() in reply


def test_dns_answers_forward_and_reverse_for_every_host(lab: Lab, lab_thread: NamespaceThread) -> None:
    def resolve_all() -> dict[str, tuple[list[str], list[str]]]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [lab.dns_server]
        resolver.lifetime = 5
        found = {}
        for host in lab.hosts:
            assert host.fqdn is not None
            forward = [r.to_text() for r in resolver.resolve(host.fqdn, "A")]
            reverse = [
                r.to_text() for r in resolver.resolve(dns.reversename.from_address(host.address), "PTR")
            ]
            found[host.name] = (forward, reverse)
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve(f"nosuch.sandiego.{lab.dns_zone}", "A")
        return found

    found = lab_thread.call(resolve_all)
    for host in lab.hosts:
        assert found[host.name] == ([host.address], [f"{host.fqdn}."])
    subdomains = {h.fqdn.split(".")[1] for h in lab.hosts if h.fqdn}
    assert subdomains == {"sandiego", "sanjose"}


def test_dns_answers_over_tcp_too(lab: Lab, lab_thread: NamespaceThread) -> None:
    host = lab.host("linux1")
    query = dns.message.make_query(host.fqdn or "", "A")
    reply = lab_thread.call(lambda: dns.query.tcp(query, lab.dns_server, timeout=5))
    assert [r.to_text() for rrset in reply.answer for r in rrset] == [host.address]


def test_namespace_thread_sockets_belong_to_the_lab(lab_thread: NamespaceThread) -> None:
    interfaces = lab_thread.call(lambda: sorted(name for _, name in socket.if_nameindex()))
    assert interfaces == ["eth0", "lo"]
    assert sorted(name for _, name in socket.if_nameindex()) != interfaces  # this thread: root namespace
    with pytest.raises(ZeroDivisionError):
        lab_thread.call(lambda: 1 // 0)
    assert lab_thread.run_async(lambda: asyncio.sleep(0, result=42)) == 42


def test_dns_answers_udp_while_a_tcp_client_says_nothing(lab: Lab, lab_thread: NamespaceThread) -> None:
    """A scanner reading port 53's banner holds a silent TCP connection: UDP lookups go on meanwhile
    (dnsmasq must hand TCP to a child, not serve it inline as its debug mode does)."""
    host = lab.host("linux1")

    def lookup_while_held() -> list[str]:
        with socket.create_connection((lab.dns_server, 53), timeout=5):  # connected, sends nothing
            query = dns.message.make_query(host.fqdn or "", "A")
            reply = dns.query.udp(query, lab.dns_server, timeout=2)
        return [r.to_text() for rrset in reply.answer for r in rrset]

    assert lab_thread.call(lookup_while_held) == [host.address]
