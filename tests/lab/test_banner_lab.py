"""BannerSniff against real servers: the lab's OpenSSH, HTTP listeners and printer, servers this test
starts on the scanner namespace's own loopback (silent, chatty, TLS), and a real snmpd answering the
community ``public`` in a private namespace (asked only when ``snmp_public=true``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from midprobe.probes.banner import PROBE, BannerResult, PortBanner
from midprobe.probes.base import ProbeContext
from midprobe.probes.classify import Observations, default_classifier
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.lab import Lab, NamespaceThread, load_profile, namespace_thread

pytestmark = pytest.mark.lab


def _context() -> ProbeContext:
    return ProbeContext(policy=TargetPolicy.lab())


def _sniff(thread: NamespaceThread, host: str, **parameters: str) -> BannerResult:
    params = PROBE.parse_params(host, parameters)
    return thread.run_async(lambda: PROBE.run(params, _context()))


def _ports(result: BannerResult) -> dict[tuple[str, int], PortBanner]:
    return {(port.protocol, port.port): port for port in result.ports}


def _sshd_version() -> str:
    """``OpenSSH_9.2p1 Debian-2+deb12u10``: what ``ssh -V`` prints (``sshd -V`` leaves out the
    distribution part; client and server are built from one source package)."""
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False, timeout=10)
    return (done.stderr or done.stdout).split(",")[0].strip()


def _listener_banner(profile: str, port: int) -> str:
    listener = next(item for item in load_profile().profiles[profile].listeners if item.port == port)
    assert listener.banner is not None
    return listener.banner


# --- the lab's hosts -------------------------------------------------------------------------------


def test_the_linux_hosts_openssh_banner_and_http_server_header(lab: Lab, lab_thread: NamespaceThread) -> None:
    linux1 = lab.host("linux1")
    result = _sniff(lab_thread, linux1.address, ports="22,80,23")
    ports = _ports(result)
    ssh = ports[("tcp", 22)]
    assert (ssh.scanner, ssh.state, ssh.service) == ("BannerTCP", "open", "ssh")
    assert ssh.banner == f"SSH-2.0-{_sshd_version()}"
    http = ports[("tcp", 80)]
    assert (http.scanner, http.state, http.service) == ("HTTP", "open", "http")
    assert http.http is not None
    assert http.http.status == 200
    assert http.http.server == http.banner == _listener_banner("linux_server", 80)
    assert ports[("tcp", 23)].state == "refused"
    assert ("udp", 161) not in ports  # SNMP was not asked for

    # The classifier reads these banners as they are.
    verdict = default_classifier().classify(
        Observations(linux1.address, frozenset(linux1.open_tcp_ports), result.banners())
    )
    assert any(ssh.banner[:40] in line for line in verdict.evidence), verdict.evidence


def test_the_switch_banner_carries_its_version_addendum(lab: Lab, lab_thread: NamespaceThread) -> None:
    settings = load_profile().profiles["switch"].ssh
    assert settings is not None
    assert settings.version_addendum
    result = _sniff(lab_thread, lab.host("switch1").address, ports="22")
    assert result.banners()[22] == f"SSH-2.0-{_sshd_version()} {settings.version_addendum}"


def test_the_printer_web_server_talks_and_its_print_port_is_left_alone(
    lab: Lab, lab_thread: NamespaceThread
) -> None:
    printer = lab.host("printer1")
    result = _sniff(lab_thread, printer.address, ports="80,9100", banner_wait="500")
    ports = _ports(result)
    assert ports[("tcp", 80)].banner == _listener_banner("printer", 80)
    raw = ports[("tcp", 9100)]
    assert (raw.state, raw.service, raw.banner, raw.http) == ("open", "jetdirect", "", None)
    assert "nothing sent" in raw.detail
    assert result.banners() == {80: _listener_banner("printer", 80)}


def test_silent_and_unreachable_ports_are_told_apart(lab: Lab, lab_thread: NamespaceThread) -> None:
    result = _sniff(lab_thread, lab.host("silent1").address, ports="22", connect_wait="300")
    (port,) = result.ports
    assert (port.state, port.detail) == ("filtered", "no answer in 300 ms")


def test_snmp_public_is_only_asked_for_when_requested(lab: Lab, lab_thread: NamespaceThread) -> None:
    switch = lab.host("switch1").address
    assert ("udp", 161) not in _ports(_sniff(lab_thread, switch, ports="22"))
    asked = _ports(_sniff(lab_thread, switch, ports="22", snmp_public="true", snmp_wait="300"))[("udp", 161)]
    # The lab's agents only know their generated community, so `public` goes unanswered.
    assert (asked.scanner, asked.state, asked.snmp) == ("SNMP", "filtered", None)
    assert asked.detail == "no answer to community public in 2 taps of 300 ms"


# --- servers this test runs on the scanner namespace's loopback --------------------------------------


@dataclass
class _Recorder:
    """What one test server received."""

    received: bytearray
    closed: asyncio.Event


def _serve(
    port: int, behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter, _Recorder], Awaitable[None]],
    tls: ssl.SSLContext | None = None,
) -> tuple[Callable[[], Awaitable[asyncio.Server]], _Recorder]:  # fmt: skip
    recorder = _Recorder(bytearray(), asyncio.Event())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer, recorder)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()
            recorder.closed.set()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, "127.0.0.1", port, ssl=tls, reuse_address=True)

    return start, recorder


async def _record_until_closed(reader: asyncio.StreamReader, _: asyncio.StreamWriter, rec: _Recorder) -> None:
    while chunk := await asyncio.wait_for(reader.read(4096), 10):
        rec.received += chunk


async def _http_when_asked(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: _Recorder
) -> None:
    rec.received += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.write(b"HTTP/1.0 200 OK\r\nServer: silent-until-asked\r\n\r\n")
    await writer.drain()


async def _ssh_when_spoken_to(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: _Recorder
) -> None:
    """An SSH server slower than the NULL wait: its identification line comes only after our HEAD,
    followed by its complaint about the request."""
    rec.received += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.write(b"SSH-2.0-LateSSH_1.0\r\nInvalid SSH identification string.\r\n")
    await writer.drain()


async def _ftp_greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: _Recorder) -> None:
    writer.write(b"220 ProFTPD Server (lab) ready.\r\n")
    await writer.drain()
    await _record_until_closed(reader, writer, rec)


async def _firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: _Recorder) -> None:
    for _ in range(64):  # 1 MiB without a line end, unless the reader stops listening first
        writer.write(b"A" * 16384)
        await asyncio.wait_for(writer.drain(), 10)


async def _tls_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: _Recorder) -> None:
    rec.received += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.write(b"HTTP/1.1 204 No Content\r\nServer: tls-lab\r\nConnection: close\r\n\r\n")
    await writer.drain()


def _tls_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "midprobe-banner-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_greetings_silence_size_caps_and_tls_on_servers_we_run(
    lab_thread: NamespaceThread, tmp_path: Path
) -> None:
    tls = _tls_context(tmp_path)
    servers = {
        9100: _serve(9100, _record_until_closed),  # a raw print port: must receive nothing
        9999: _serve(9999, _http_when_asked),  # silent until spoken to, then HTTP
        2121: _serve(2121, _ftp_greeting),
        2222: _serve(2222, _ssh_when_spoken_to),
        7000: _serve(7000, _firehose),
        8443: _serve(8443, _tls_http, tls),  # https-alt: TLS first
    }

    async def scenario() -> BannerResult:
        started = [await start() for start, _ in servers.values()]
        try:
            params = PROBE.parse_params(
                "127.0.0.1",
                {"ports": "2121,2222,7000,8443,9100,9999", "banner_wait": "400", "read_limit": "256"},
            )
            result = await PROBE.run(params, _context())
            async with asyncio.timeout(5):
                for _, recorder in servers.values():
                    await recorder.closed.wait()
            return result
        finally:
            for server in started:
                server.close()

    ports = _ports(lab_thread.run_async(scenario))

    printer = ports[("tcp", 9100)]
    assert (printer.state, printer.service, printer.banner) == ("open", "jetdirect", "")
    assert bytes(servers[9100][1].received) == b""

    asked = ports[("tcp", 9999)]
    assert (asked.service, asked.banner) == ("http", "silent-until-asked")
    assert asked.http is not None
    assert asked.http.status == 200
    assert bytes(servers[9999][1].received).startswith(b"HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\n")

    late = ports[("tcp", 2222)]
    assert (late.service, late.banner) == ("ssh", "SSH-2.0-LateSSH_1.0")  # not the complaint after it

    ftp = ports[("tcp", 2121)]
    assert (ftp.service, ftp.banner) == ("ftp", "220 ProFTPD Server (lab) ready.")
    assert bytes(servers[2121][1].received) == b""  # it spoke first, so we never had to

    firehose = ports[("tcp", 7000)]
    assert firehose.state == "open"
    assert firehose.banner == "A" * 256

    secure = ports[("tcp", 8443)]
    assert (secure.scanner, secure.service) == ("HTTPS", "https")
    assert secure.tls is not None
    assert secure.tls.version.startswith("TLS")
    assert secure.tls.subject == secure.tls.issuer == "CN=midprobe-banner-test"
    assert secure.http is not None
    assert (secure.http.status, secure.http.server) == (204, "tls-lab")
    assert bytes(servers[8443][1].received).startswith(b"HEAD / HTTP/1.0\r\n")


# --- a real snmpd that answers `public`, in a private namespace ---------------------------------------

SNMP_IN_PKTS = "1.3.6.1.2.1.11.1.0"
SNMPD_OBJECT_ID = ".1.3.6.1.4.1.11.2.3.9.1"
SNMPD_DESCR = "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153"


@dataclass(frozen=True)
class _PublicAgent:
    namespace: str

    def exec(self, *argv: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        )
        return done.stdout

    def packets_in(self) -> int:
        """snmpInPkts: every SNMP message the agent received (this query included)."""
        output = self.exec(
            "snmpget", "-v2c", "-c", "public", "-On", "-Oqv", "-t", "1", "-r", "2", "127.0.0.1", SNMP_IN_PKTS
        )
        return int(output.strip())


@pytest.fixture(scope="module")
def public_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_PublicAgent]:
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    namespace = f"mpbn{secrets.token_hex(3)}"
    workdir = tmp_path_factory.mktemp("snmpd")
    config = workdir / "snmpd.conf"
    config.write_text(
        "rocommunity public 127.0.0.1\n"
        f"sysObjectID {SNMPD_OBJECT_ID}\n"
        f"sysDescr {SNMPD_DESCR}\n"
        "agentXSocket none\nmaster off\n"
    )
    subprocess.run(["ip", "netns", "add", namespace], check=True, timeout=20)
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True, timeout=20)
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, snmpd, "-f", "-Lf", str(workdir / "snmpd.log"), "-C",
             "-c", str(config), "-I", "-smux", "udp:127.0.0.1:161"],
            env={**os.environ, "SNMP_PERSISTENT_DIR": str(workdir), "MIBS": ""},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        agent = _PublicAgent(namespace)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(subprocess.CalledProcessError):
                agent.packets_in()
                break
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("snmpd did not come up in its private namespace", pytrace=False)
            time.sleep(0.1)
        yield agent
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        subprocess.run(["ip", "netns", "delete", namespace], check=False, timeout=20)


def test_snmp_public_reads_the_identity_and_is_sent_only_when_asked(public_agent: _PublicAgent) -> None:
    with namespace_thread(public_agent.namespace) as thread:
        before = public_agent.packets_in()
        quiet = _sniff(thread, "127.0.0.1", ports="1")
        between = public_agent.packets_in()
        asked = _sniff(thread, "127.0.0.1", ports="1", snmp_public="true")
        after = public_agent.packets_in()

    assert [(p.protocol, p.port, p.state) for p in quiet.ports] == [("tcp", 1, "refused")]
    assert between - before == 1  # only our own counter query: the probe sent nothing
    assert after - between == 2  # one GET (answered at the first tap) and the counter query
    snmp = _ports(asked)[("udp", 161)]
    assert (snmp.scanner, snmp.state, snmp.service) == ("SNMP", "open", "snmp")
    assert snmp.snmp is not None
    assert (snmp.snmp.sys_object_id, snmp.snmp.sys_descr) == (SNMPD_OBJECT_ID, SNMPD_DESCR)
    assert snmp.banner == SNMPD_DESCR
    assert asked.snmp == snmp.snmp
