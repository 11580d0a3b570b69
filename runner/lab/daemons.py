"""The lab's daemons: generated configs for sshd, snmpd, dnsmasq, lldpd, the listener and the
connector; start, probe, stop.

Each daemon is the real Debian binary started with ``ip netns exec`` in its host's namespace,
inside its own UTS and mount namespaces (so ``hostname`` answers the lab host's name and sshd
sees a lab-only ``/etc/passwd`` holding the test user: the machine's user database is untouched).
Readiness is checked from the scanner namespace, so a daemon counts as up only when the scanner
can reach it through the lab bridge.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from midprobe.capabilities.errors import LabError

from .profiles import HostProfile

LISTENER_SCRIPT = Path(__file__).resolve().with_name("listener.py")
CONNECTOR_SCRIPT = Path(__file__).resolve().with_name("connector.py")
SSHD = "/usr/sbin/sshd"
SNMPD = "/usr/sbin/snmpd"
DNSMASQ = "/usr/sbin/dnsmasq"
LLDPD = "/usr/sbin/lldpd"
# The lab user's numeric ids exist only inside the lab's sshd (see module docstring).
LAB_UID = 64999
LAB_GID = 65534
_WRAPPER = (
    'hostname "$1" || exit 97; shift; '
    'while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 98; shift 2; done; shift; exec "$@"'
)


@dataclass(frozen=True)
class ReadyCheck:
    """How the scanner tells a daemon is up: a TCP connect, an SNMP answer, a DNS answer, or its
    control socket accepting a connection."""

    kind: str  # "tcp" | "snmp" | "dns" | "unix" (data: the socket's path)
    address: str
    port: int
    data: str = ""  # snmp: the community; dns: a name to resolve


@dataclass(frozen=True)
class DaemonSpec:
    name: str  # e.g. "sshd@linux1"
    host: str
    namespace: str
    argv: tuple[str, ...]
    log: Path
    checks: tuple[ReadyCheck, ...]
    binds: tuple[tuple[str, str], ...] = ()  # (file in workdir, path it hides) in the daemon's mount ns
    env: Mapping[str, str] = field(default_factory=dict)
    #: Seconds this daemon may take to pass its checks when that is longer than the lab's budget
    #: (the zoo's snmpsim indexes every recording on its first run).
    ready_within: float | None = None


@dataclass(frozen=True)
class RunningDaemon:
    name: str
    host: str
    pid: int
    start_time: int  # /proc/<pid>/stat field 22, guards against a reused pid
    log: str


def start_daemon(spec: DaemonSpec) -> tuple[subprocess.Popen[bytes], RunningDaemon]:
    """Start ``spec`` in its namespace; the returned pid is the daemon itself (every step execs)."""
    binds: list[str] = []
    for source, target in spec.binds:
        binds += [source, target]
    argv = [
        "ip", "netns", "exec", spec.namespace,
        "unshare", "--uts", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", _WRAPPER, "sh", spec.host, *binds, "--", *spec.argv,
    ]  # fmt: skip
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", **spec.env}
    with open(spec.log, "ab") as log:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            raise LabError(f"{spec.name} could not be started: {error}") from error
    return process, RunningDaemon(
        spec.name, spec.host, process.pid, proc_start_time(process.pid), str(spec.log)
    )


def proc_start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot, 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, started at ``start_time``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def stop_pids(pids: Iterable[tuple[int, int | None]], *, grace: float = 3.0) -> None:
    """SIGTERM each live (pid, start time), wait up to ``grace`` seconds, then SIGKILL the rest."""
    alive = [(pid, start) for pid, start in pids if pid > 1 and is_alive(pid, start)]
    for pid, _ in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [(pid, start) for pid, start in alive if is_alive(pid, start)]
        if alive:
            time.sleep(0.02)
    for pid, _ in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except OSError as error:  # not ours to kill: say so, never guess
        raise LabError(f"cannot signal process {pid}: {error.strerror}") from error


def log_tail(path: Path | str, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "(empty log)"


# --------------------------------------------------------------------------- sshd


def sshd_spec(
    *,
    host: str,
    namespace: str,
    address: str,
    address6: str,
    profile: HostProfile,
    host_dir: Path,
    host_key: Path,
    authorized_keys: Path,
    passwd_file: Path,
    shadow_file: Path,
    user: str,
) -> DaemonSpec:
    """Write the host's sshd_config (and banner) and describe the sshd to start (IPv4 and IPv6)."""
    assert profile.ssh is not None
    lines = [
        f"ListenAddress {address}:22",
        f"ListenAddress [{address6}]:22",
        f"HostKey {host_key}",
        "PidFile none",
        "UsePAM no",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        f"AuthorizedKeysFile {authorized_keys}",
        "StrictModes no",
        "PermitRootLogin no",
        f"AllowUsers {user}",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "LoginGraceTime 30",
        # Benchmarks open many sessions at once; the Debian default (10:30:100) would drop them.
        "MaxStartups 200:30:400",
        "MaxSessions 50",
        "MaxAuthTries 10",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    if profile.ssh.version_addendum:
        lines.append(f"VersionAddendum {profile.ssh.version_addendum}")
    if profile.ssh.banner:
        banner = host_dir / "ssh-banner.txt"
        banner.write_text(profile.ssh.banner.strip("\n") + "\n")
        lines.append(f"Banner {banner}")
    config = host_dir / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    log = host_dir / "sshd.log"
    return DaemonSpec(
        name=f"sshd@{host}",
        host=host,
        namespace=namespace,
        argv=(SSHD, "-D", "-e", "-f", str(config)),
        log=log,
        checks=(ReadyCheck("tcp", address, 22), ReadyCheck("tcp", address6, 22)),
        binds=((str(passwd_file), "/etc/passwd"), (str(shadow_file), "/etc/shadow")),
    )


def user_database(workdir: Path, *, user: str, password_hash: str, home: Path) -> tuple[Path, Path]:
    """Write the passwd/shadow pair the lab's sshd sees: root, nobody, sshd and the lab user."""
    keep = {"root", "nobody", "sshd"}
    system = [line for line in Path("/etc/passwd").read_text().splitlines() if line.split(":", 1)[0] in keep]
    if not any(line.startswith("sshd:") for line in system):
        system.append("sshd:x:103:65534::/run/sshd:/usr/sbin/nologin")
    passwd = [*system, f"{user}:x:{LAB_UID}:{LAB_GID}:midprobe lab user:{home}:/bin/bash"]
    days = int(time.time() // 86400)
    shadow = [f"{line.split(':', 1)[0]}:*:{days}:0:99999:7:::" for line in system]
    shadow.append(f"{user}:{password_hash}:{days}:0:99999:7:::")
    passwd_file = workdir / "passwd"
    shadow_file = workdir / "shadow"
    passwd_file.write_text("\n".join(passwd) + "\n")
    passwd_file.chmod(0o644)
    shadow_file.touch(mode=0o600)
    shadow_file.write_text("\n".join(shadow) + "\n")
    return passwd_file, shadow_file


def hash_password(password: str) -> str:
    """SHA-512 crypt hash (``openssl passwd -6``), as chpasswd would store it."""
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.startswith("$6$"):
        raise LabError(f"openssl passwd failed: {done.stderr.strip()}")
    return done.stdout.strip()


def generate_ssh_keys(paths: Sequence[Path], comment: str) -> None:
    """Generate ed25519 keys without passphrase at ``paths`` (all at once, in parallel)."""
    processes = [
        (
            path,
            subprocess.Popen(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            ),
        )
        for path in paths
    ]
    for path, process in processes:
        out, _ = process.communicate(timeout=30)
        if process.returncode != 0:
            raise LabError(f"ssh-keygen for {path.name} failed: {out.decode(errors='replace').strip()}")


# --------------------------------------------------------------------------- snmpd


def snmpd_spec(
    *,
    host: str,
    namespace: str,
    address: str,
    address6: str,
    profile: HostProfile,
    host_dir: Path,
    community: str,
    v3_user: str,
    v3_auth_key: str,
    v3_priv_key: str,
    engine_id: str,
) -> DaemonSpec:
    """Write the host's snmpd.conf (v1/v2c community, SNMPv3 SHA/AES user, system group)."""
    snmp = profile.snmp
    assert snmp is not None
    persistent = host_dir / "snmp-persistent"
    persistent.mkdir(mode=0o700, exist_ok=True)
    lines = [
        f"rocommunity {community} default",
        f"rocommunity6 {community} default",  # rocommunity's "default" is IPv4 sources only
        f'createUser {v3_user} SHA "{v3_auth_key}" AES "{v3_priv_key}"',
        f"rouser {v3_user} priv",
        f"engineID {engine_id}",
        f"sysName {host}",
        f"sysDescr {snmp.sys_descr.replace('{name}', host)}",
        f"sysObjectID {snmp.sys_object_id}",
        f"sysLocation {snmp.sys_location}",
        f"sysContact {snmp.sys_contact}",
        f"sysServices {snmp.sys_services}",
        "dontLogTCPWrappersConnects yes",
        # With lldpd: snmpd is the AgentX master lldpd serves LLDP-MIB through (a socket of its own).
        *(
            ("master agentx", f"agentXSocket {agentx_socket(host_dir)}")
            if profile.lldp
            else ("agentXSocket none", "master off")
        ),
    ]
    lines += [f"override {o.oid} {o.type} {_snmp_value(o.value, o.type)}" for o in snmp.overrides]
    config = host_dir / "snmpd.conf"
    config.touch(mode=0o600)
    config.write_text("\n".join(lines) + "\n")
    log = host_dir / "snmpd.log"
    return DaemonSpec(
        name=f"snmpd@{host}",
        host=host,
        namespace=namespace,
        argv=(
            SNMPD,
            "-f",
            "-Lf",
            str(log),
            "-C",
            "-c",
            str(config),
            "-I",
            "-smux",
            f"udp:{address}:161,udp6:[{address6}]:161",
        ),
        log=host_dir / "snmpd.out",
        checks=(ReadyCheck("snmp", address, 161, community), ReadyCheck("snmp", address6, 161, community)),
        env={"SNMP_PERSISTENT_DIR": str(persistent), "MIBS": ""},
    )


def agentx_socket(host_dir: Path) -> Path:
    """The AgentX socket between a host's snmpd (master) and its lldpd (subagent)."""
    return host_dir / "agentx.sock"


# --------------------------------------------------------------------------- lldpd


#: Seconds between two LLDP frames (the default 30 s would leave a new neighbour unseen that long).
LLDP_TX_INTERVAL = 5


def lldpd_spec(
    *, host: str, namespace: str, address: str, profile: HostProfile, host_dir: Path
) -> DaemonSpec:
    """lldpd on eth0, with its own control socket and configuration (none of the machine's); a
    host with snmpd serves LLDP-MIB through it over AgentX (``-x``). Start it after snmpd."""
    config = host_dir / "lldpd.conf"
    config.write_text(f"configure lldp tx-interval {LLDP_TX_INTERVAL}\n")
    control = host_dir / "lldpd.socket"
    argv = [LLDPD, "-d", "-I", "eth0", "-C", "eth0", "-m", address, "-u", str(control), "-O", str(config)]
    if profile.snmp is not None:
        argv += ["-x", "-X", str(agentx_socket(host_dir))]
    return DaemonSpec(
        name=f"lldpd@{host}",
        host=host,
        namespace=namespace,
        argv=tuple(argv),
        log=host_dir / "lldpd.log",
        checks=(ReadyCheck("unix", address, 0, str(control)),),
    )


def connector_spec(
    *, host: str, namespace: str, address: str, target: str, port: int, host_dir: Path, lab_dir: Path
) -> DaemonSpec:
    """The connector holding a TCP connection to ``target:port``, run as the lab user (so an SSH
    login as that user sees its process in ``ss -p``)."""
    argv = [
        "setpriv", f"--reuid={LAB_UID}", f"--regid={LAB_GID}", "--clear-groups", "--",
        sys.executable, "-I", str(CONNECTOR_SCRIPT), "--lab", str(lab_dir), "--name", host,
        "--connect", f"{target}:{port}",
    ]  # fmt: skip
    return DaemonSpec(
        name=f"connector@{host}:{target}:{port}",
        host=host,
        namespace=namespace,
        argv=tuple(argv),
        log=host_dir / f"connector-{target}-{port}.log",
        checks=(),  # it connects once the target's service (checked before it starts) answers
    )


def _snmp_value(value: str, kind: str) -> str:
    if kind == "octet_str":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


# --------------------------------------------------------------------------- dnsmasq


def dnsmasq_spec(
    *,
    host: str,
    namespace: str,
    address: str,
    host_dir: Path,
    zone: str,
    records: Sequence[tuple[str, str]],
    reverse_zone: str,
) -> DaemonSpec:
    """dnsmasq answering A and PTR records for ``records`` (fqdn, address), nothing else."""
    argv = [
        DNSMASQ,
        # In the foreground but not in debug mode (--no-daemon): debug mode serves a TCP connection
        # inline, so a silent TCP client (a scanner reading port 53's banner) stalls every UDP lookup.
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        f"--listen-address={address}",
        "--except-interface=lo",
        "--user=root",
        "--group=root",
        "--pid-file",
        f"--log-facility={host_dir / 'dnsmasq.log'}",
        "--log-queries",
        f"--local=/{zone}/",
        f"--local=/{reverse_zone}/",
        "--cache-size=0",
    ]
    argv += [f"--host-record={fqdn},{addr}" for fqdn, addr in records]
    first = records[0][0] if records else f"{host}.{zone}"
    return DaemonSpec(
        name=f"dnsmasq@{host}",
        host=host,
        namespace=namespace,
        argv=tuple(argv),
        log=host_dir / "dnsmasq.out",
        checks=(ReadyCheck("dns", address, 53, first), ReadyCheck("tcp", address, 53)),
    )


# --------------------------------------------------------------------------- listener


def listener_spec(
    *,
    host: str,
    namespace: str,
    address: str,
    address6: str,
    profile: HostProfile,
    host_dir: Path,
    lab_dir: Path,
) -> DaemonSpec:
    """The stdlib listener serving the profile's HTTP and raw TCP ports on ``address`` and ``address6``."""
    argv = [
        sys.executable,
        "-I",
        str(LISTENER_SCRIPT),
        "--lab",
        str(lab_dir),
        "--bind",
        address,
        "--bind",
        address6,
        "--name",
        host,
    ]
    for listener in profile.listeners:
        flag = "--http" if listener.kind == "http" else "--raw"
        argv += [flag, f"{listener.port}={listener.banner}" if listener.banner else str(listener.port)]
    return DaemonSpec(
        name=f"listener@{host}",
        host=host,
        namespace=namespace,
        argv=tuple(argv),
        log=host_dir / "listener.log",
        checks=tuple(
            ReadyCheck("tcp", bound, listener.port)
            for listener in profile.listeners
            for bound in (address, address6)
        ),
    )


def network_listener_spec(
    *,
    role: str,
    namespace: str,
    ports: Sequence[int],
    probe: str,
    host_dir: Path,
    lab_dir: Path,
    sink: bool = False,
) -> DaemonSpec:
    """One listener on 0.0.0.0 answering every address of a namespace that holds a whole network
    (``role``: "large", its alive addresses; "scale", every address of its local route).

    ``sink``: accept and close at once (``--sink``), to keep up with a scan of every address.
    """
    argv = [
        sys.executable,
        "-I",
        str(LISTENER_SCRIPT),
        "--lab",
        str(lab_dir),
        "--bind",
        "0.0.0.0",  # noqa: S104 (inside the namespace of a lab network: its addresses, nothing else)
        "--name",
        role,
    ]
    for port in ports:
        argv += (
            ["--sink", str(port)] if sink else ["--http", str(port)] if port == 80 else ["--raw", str(port)]
        )
    return DaemonSpec(
        name=f"listener@{role}",
        host=role,
        namespace=namespace,
        argv=tuple(argv),
        log=host_dir / "listener.log",
        checks=tuple(ReadyCheck("tcp", probe, port) for port in ports),
    )


# --------------------------------------------------------------------------- readiness


async def wait_ready(
    specs: Sequence[DaemonSpec],
    processes: Mapping[str, subprocess.Popen[bytes]],
    *,
    within: float,
) -> None:
    """Wait until every check of every daemon passes (each within ``within`` seconds or its own
    longer ``ready_within``); LabError naming the first that does not."""
    started = asyncio.get_running_loop().time()

    async def one(spec: DaemonSpec) -> None:
        timeout = max(within, spec.ready_within or 0.0)
        deadline = started + timeout
        for check in spec.checks:
            while True:
                process = processes[spec.name]
                if process.poll() is not None:
                    raise LabError(
                        f"{spec.name} exited with status {process.returncode} while starting: {_logs(spec)}"
                    )
                if await _probe(check):
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise LabError(
                        f"{spec.name} did not answer on {check.kind} {check.address}:{check.port} "
                        f"within {timeout:g} s: {_logs(spec)}"
                    )
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one(spec) for spec in specs))


def _logs(spec: DaemonSpec) -> str:
    tails = [log_tail(spec.log)]
    for extra in ("snmpd.log", "dnsmasq.log", "sshd.log"):
        path = spec.log.with_name(extra)
        if spec.name.startswith(extra.split(".")[0]) and path.exists() and path != spec.log:
            tails.append(log_tail(path))
    return " | ".join(tails)


async def _probe(check: ReadyCheck) -> bool:
    try:
        if check.kind == "tcp":
            _, writer = await asyncio.wait_for(asyncio.open_connection(check.address, check.port), 0.5)
            writer.close()
            return True
        if check.kind == "snmp":
            return await _snmp_answers(check.address, check.port, check.data)
        if check.kind == "unix":  # a daemon's control socket accepts a connection
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(check.data), 0.5)
            writer.close()
            return True
        if check.kind == "dns":
            query = dns.message.make_query(check.data, "A")
            answer = await dns.asyncquery.udp(query, check.address, timeout=0.5, port=check.port)
            return answer.rcode() == dns.rcode.NOERROR and bool(answer.answer)
    except (OSError, TimeoutError, dns.exception.DNSException):
        return False
    raise LabError(f"unknown readiness check {check.kind!r}")


async def _snmp_answers(address: str, port: int, community: str) -> bool:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (address, port))
        await loop.sock_sendall(sock, snmp_get_request(community, "1.3.6.1.2.1.1.5.0", request_id=4242))
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)
        except TimeoutError:
            return False
    return data[:1] == b"\x30"


def snmp_get_request(community: str, oid: str, *, request_id: int) -> bytes:
    """An SNMPv2c GetRequest for one OID, BER-encoded (just enough for a readiness probe)."""
    varbind = _tlv(0x30, _tlv(0x30, _oid(oid) + b"\x05\x00"))
    pdu = _tlv(0xA0, _int(request_id) + _int(0) + _int(0) + varbind)
    return _tlv(0x30, _int(1) + _tlv(0x04, community.encode()) + pdu)


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.strip(".").split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))
