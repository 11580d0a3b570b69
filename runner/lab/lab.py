"""The lab: real hosts in network namespaces joined by a bridge, brought up and torn down as one.

``Lab.up()`` builds the topology (see ``topology.py``), starts the real daemons, waits until the
scanner namespace can reach each of them and records the lab in a state file so other processes
(``midprobe lab status/exec/down``) find it. Teardown always runs: context manager, ``atexit``,
SIGTERM/SIGHUP, and ``cleanup_leftovers()`` for runs that were killed.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from midprobe.capabilities.errors import LabError

from . import daemons, netns, topology, zoo
from .netns import NamespaceThread
from .profiles import HOST_NETWORK, HostProfile, LabProfile, load_profile

STATE_ROOT = Path("/run/midprobe/lab")  # one place per machine, like /run/netns
STATE_FILE = "state.json"
SERVICES = ("ssh", "snmp", "http", "dns", "tcp")
LAB_USER = "mplab"
SNMPV3_USER = "mpv3"
READY_TIMEOUT = 20.0
MAX_EXTRA_HOSTS = 200
ORPHAN_GRACE = 60.0  # a state folder without state.json younger than this is a lab being born


@dataclass(frozen=True)
class LabHost:
    """One lab host as a scanner sees it."""

    name: str
    profile: str
    address: str
    namespace: str
    fqdn: str | None
    services: tuple[str, ...]
    open_tcp_ports: tuple[int, ...]
    sys_name: str | None
    sys_descr: str | None
    sys_object_id: str | None
    #: A network the lab routes to this host (its services answer on addresses of it: the zoo).
    routed_network: str | None = None
    #: The host's IPv6 address (2001:db8::/64, same bridge as ``address``).
    address6: str = ""


@dataclass(frozen=True)
class LabCredentials:
    """What to use against the lab: test-only secrets, generated per run."""

    ssh_user: str
    ssh_password: str
    ssh_private_key: Path
    snmp_community: str
    snmpv3_user: str
    snmpv3_auth_protocol: str
    snmpv3_auth_key: str
    snmpv3_priv_protocol: str
    snmpv3_priv_key: str

    def secrets(self) -> tuple[str, ...]:
        """The generated secret strings (for redacting recordings)."""
        return (self.ssh_password, self.snmp_community, self.snmpv3_auth_key, self.snmpv3_priv_key)

    def __repr__(self) -> str:  # never print secrets by accident (logs, tracebacks)
        return f"LabCredentials(ssh_user={self.ssh_user!r}, snmpv3_user={self.snmpv3_user!r}, ...)"


@dataclass(frozen=True)
class LargeNetwork:
    """Large mode: one namespace behind ``gateway`` holding ``network``; only ``alive`` answer."""

    namespace: str
    network: str
    gateway: str
    alive: tuple[str, ...]
    open_tcp_ports: tuple[int, ...]


@dataclass(frozen=True)
class ScaleNetwork:
    """Scale mode: one namespace behind ``gateway`` answering for every address of ``network``."""

    namespace: str
    network: str
    gateway: str
    open_tcp_ports: tuple[int, ...]


class Lab:
    """A running lab. Use ``Lab.up()`` (also a context manager) or ``Lab.attach(prefix)``."""

    def __init__(
        self,
        *,
        prefix: str,
        workdir: Path,
        hosts: tuple[LabHost, ...],
        credentials: LabCredentials,
        dns_zone: str,
        dns_server: str,
        large: LargeNetwork | None,
        namespaces: tuple[str, ...],
        profile_source: str,
        scale: ScaleNetwork | None = None,
    ) -> None:
        self.prefix = prefix
        self.scanner_namespace = topology.namespace_name(prefix, "scan")
        self.bridge_namespace = topology.namespace_name(prefix, "br")
        self.scanner_address = topology.SCANNER_ADDRESS
        self.scanner_address6 = topology.ipv6_address(topology.SCANNER_ADDRESS)
        self.network = str(HOST_NETWORK)
        self.network6 = str(topology.HOST_NETWORK6)
        self.hosts = hosts
        self.dns_server = dns_server
        self.dns_zone = dns_zone
        self.credentials = credentials
        self.workdir = workdir
        self.large = large
        self.scale = scale
        self.namespaces = namespaces
        self.profile_source = profile_source
        self.daemons: list[daemons.RunningDaemon] = []
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._owned = False  # this process brought it up and tears it down at exit
        self._down = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ bring-up

    @classmethod
    def up(
        cls,
        profile: Path | None = None,
        *,
        hosts: int | None = None,
        large: bool = False,
        scale: int | None = None,
        prefix: str | None = None,
        detach: bool = False,
        ready_timeout: float = READY_TIMEOUT,
    ) -> Lab:
        """Bring up a lab from ``profile`` (None: fixtures/lab/default.toml) and wait until it answers.

        ``hosts`` adds that many hosts of the profile's ``extra_host_profile``; ``large`` adds the
        large-mode network; ``scale`` (16..24) a namespace answering for all of 198.19.0.0/scale. Several labs may run at once, each under its own prefix. ``detach``
        (used by ``midprobe lab up``) leaves the lab running when this process exits.
        """
        if scale is not None and scale not in topology.SCALE_PREFIXES:
            first, last = topology.SCALE_PREFIXES[0], topology.SCALE_PREFIXES[-1]
            raise LabError(f"--scale must be a prefix length from {first} to {last}, not {scale}")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, setns, daemons on lab addresses)")
        for tool in ("ip", "unshare", "ssh-keygen", "openssl", daemons.SSHD, daemons.SNMPD, daemons.DNSMASQ):
            if shutil.which(tool) is None:
                raise LabError(f"{tool} is not installed; run `make system-deps`")
        extra = hosts or 0
        if not 0 <= extra <= MAX_EXTRA_HOSTS:
            raise LabError(f"--hosts must be between 0 and {MAX_EXTRA_HOSTS}, not {extra}")
        spec = load_profile(profile)
        plan = topology.plan(spec, extra_hosts=extra, large=large, scale=scale)
        if plan.scale is not None:
            _check_scale_apart(plan)
        if len(plan.hosts) > topology.MAX_HOSTS:
            raise LabError(
                f"the lab holds at most {topology.MAX_HOSTS} hosts, this one asks for {len(plan.hosts)}"
            )
        prefix, workdir = _claim_prefix(prefix)
        try:
            credentials = _generate_credentials(workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        has_dns = any(spec.profiles[h.profile].dns for h in plan.hosts)
        lab_hosts = tuple(_lab_host(spec, h, prefix, has_dns) for h in plan.hosts)
        dns_server = next((h.address for h in lab_hosts if "dns" in h.services), "")
        lab = cls(
            prefix=prefix,
            workdir=workdir,
            hosts=lab_hosts,
            credentials=credentials,
            dns_zone=spec.zone,
            dns_server=dns_server,
            large=(
                LargeNetwork(
                    namespace=topology.namespace_name(prefix, "large"),
                    network=plan.large.network,
                    gateway=plan.large.gateway,
                    alive=plan.large.alive,
                    open_tcp_ports=plan.large.open_ports,
                )
                if plan.large
                else None
            ),
            namespaces=topology.namespaces(prefix, plan),
            profile_source=spec.source,
            scale=(
                ScaleNetwork(
                    namespace=topology.namespace_name(prefix, "scale"),
                    network=plan.scale.network,
                    gateway=plan.scale.gateway,
                    open_tcp_ports=plan.scale.open_ports,
                )
                if plan.scale
                else None
            ),
        )
        lab._owned = True
        _register(lab)
        try:
            lab._save(status="starting")
            topology.build(prefix, plan, workdir)
            lab._start_daemons(spec, plan, ready_timeout)
            lab._save(status="up")
        except BaseException:
            lab.down()
            raise
        if detach:
            lab.detach()
        return lab

    def _start_daemons(self, spec: LabProfile, plan: topology.Plan, ready_timeout: float) -> None:
        creds = self.credentials
        ssh_dir = self.workdir / "ssh"
        home = self.workdir / "home"
        home.mkdir(mode=0o755)
        os.chown(home, daemons.LAB_UID, daemons.LAB_GID)
        specs: list[daemons.DaemonSpec] = []
        later: list[daemons.DaemonSpec] = []
        ssh_hosts = [h for h in self.hosts if "ssh" in h.services]
        host_keys = {h.name: self.workdir / "hosts" / h.name / "ssh_host_ed25519_key" for h in ssh_hosts}
        for host in self.hosts:
            (self.workdir / "hosts" / host.name).mkdir(mode=0o755, parents=True)
        daemons.generate_ssh_keys(list(host_keys.values()), f"lab-host@{self.prefix}")
        passwd, shadow = (
            daemons.user_database(
                self.workdir,
                user=creds.ssh_user,
                password_hash=daemons.hash_password(creds.ssh_password),
                home=home,
            )
            if ssh_hosts
            else (self.workdir / "passwd", self.workdir / "shadow")
        )
        records = [(h.fqdn, h.address) for h in self.hosts if h.fqdn]
        if records:
            records.append((f"scanner.{self.dns_zone}", self.scanner_address))
        for host in self.hosts:
            profile: HostProfile = spec.profiles[host.profile]
            host_dir = self.workdir / "hosts" / host.name
            common: dict[str, Any] = {"host": host.name, "namespace": host.namespace, "address": host.address}
            if profile.ssh is not None:
                specs.append(
                    daemons.sshd_spec(
                        **common,
                        address6=host.address6,
                        profile=profile,
                        host_dir=host_dir,
                        host_key=host_keys[host.name],
                        authorized_keys=ssh_dir / "authorized_keys",
                        passwd_file=passwd,
                        shadow_file=shadow,
                        user=creds.ssh_user,
                    )
                )
            if profile.snmp is not None:
                specs.append(
                    daemons.snmpd_spec(
                        **common,
                        address6=host.address6,
                        profile=profile,
                        host_dir=host_dir,
                        community=creds.snmp_community,
                        v3_user=creds.snmpv3_user,
                        v3_auth_key=creds.snmpv3_auth_key,
                        v3_priv_key=creds.snmpv3_priv_key,
                        engine_id=f"{self.prefix}-{host.name}",
                    )
                )
            if profile.dns:
                specs.append(
                    daemons.dnsmasq_spec(
                        **common,
                        host_dir=host_dir,
                        zone=self.dns_zone,
                        records=records,
                        reverse_zone=topology.reverse_zone(),
                    )
                )
            if profile.listeners:
                specs.append(
                    daemons.listener_spec(
                        **common,
                        address6=host.address6,
                        profile=profile,
                        host_dir=host_dir,
                        lab_dir=self.workdir,
                    )
                )
            if profile.zoo and host.routed_network is not None:
                specs.append(zoo.daemon_spec(**common, network=host.routed_network, host_dir=host_dir))
            # Second: lldpd needs its host's snmpd (the AgentX master), a connector its target's service.
            if profile.lldp:
                later.append(daemons.lldpd_spec(**common, profile=profile, host_dir=host_dir))
            for connection in profile.connects_to:
                later.append(
                    daemons.connector_spec(
                        **common,
                        target=self.host(connection.host).address,
                        port=connection.port,
                        host_dir=host_dir,
                        lab_dir=self.workdir,
                    )
                )
        if plan.large is not None:
            large_dir = self.workdir / "hosts" / "large"
            large_dir.mkdir(mode=0o755, parents=True)
            specs.append(
                daemons.network_listener_spec(
                    role="large",
                    namespace=topology.namespace_name(self.prefix, "large"),
                    ports=plan.large.open_ports,
                    probe=plan.large.alive[0],
                    host_dir=large_dir,
                    lab_dir=self.workdir,
                )
            )
        if plan.scale is not None:
            scale_dir = self.workdir / "hosts" / "scale"
            scale_dir.mkdir(mode=0o755, parents=True)
            network = ipaddress.IPv4Network(plan.scale.network)
            specs.append(
                daemons.network_listener_spec(
                    role="scale",
                    namespace=topology.namespace_name(self.prefix, "scale"),
                    ports=plan.scale.open_ports,
                    probe=str(network.broadcast_address - 1),  # its last host: the whole route is there
                    host_dir=scale_dir,
                    lab_dir=self.workdir,
                    sink=True,
                )
            )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        if later:
            Path("/run/lldpd").mkdir(mode=0o755, exist_ok=True)  # lldpd's privilege-separation chroot
        for batch in (specs, later):
            self._start_batch(batch, ready_timeout)

    def _start_batch(self, batch: list[daemons.DaemonSpec], ready_timeout: float) -> None:
        """Start ``batch`` and wait until every one of its daemons is ready."""
        for daemon_spec in batch:
            process, running = daemons.start_daemon(daemon_spec)
            self._processes[daemon_spec.name] = process
            self.daemons.append(running)
        self._save(status="starting")
        with self.namespace_thread() as thread:
            thread.run_async(lambda: daemons.wait_ready(batch, self._processes, within=ready_timeout))

    # ------------------------------------------------------------------ queries

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(
            f"lab {self.prefix} has no host {name!r} (hosts: {', '.join(h.name for h in self.hosts)})"
        )

    def hosts_with(self, service: str) -> list[LabHost]:
        """Hosts offering ``service``: "ssh", "snmp", "http", "dns" or "tcp" (a plain TCP listener)."""
        if service not in SERVICES:
            raise LabError(f"unknown lab service {service!r} (known: {', '.join(SERVICES)})")
        return [host for host in self.hosts if service in host.services]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the scanner namespace; text mode, stdout/stderr captured.

        ``env`` is added to the current environment. With ``check`` a non-zero exit is a LabError.
        """
        if not argv:
            raise LabError("lab run: no command given")
        full = ["ip", "netns", "exec", self.scanner_namespace, *argv]
        try:
            done = subprocess.run(
                full,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input,
                env={**os.environ, **env} if env is not None else None,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise LabError(f"{argv[0]} in the lab ran past {timeout:g} s") from error
        except OSError as error:
            raise LabError(f"cannot run {argv[0]} in the lab: {error}") from error
        if check and done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip())[-500:]
            raise LabError(f"{' '.join(argv)} exited with status {done.returncode} in the lab: {tail}")
        return done

    def namespace_thread(self) -> NamespaceThread:
        """A dedicated thread inside the scanner namespace (for in-process sockets)."""
        return NamespaceThread(self.scanner_namespace)

    # ------------------------------------------------------------------ lifecycle

    def detach(self) -> None:
        """Leave the lab running when this process exits (``midprobe lab down`` removes it)."""
        self._owned = False
        _unregister(self)
        self._save(status="up")

    def down(self) -> None:
        """Stop every daemon, delete the namespaces and the workdir. Safe to call twice."""
        with self._lock:
            if self._down:
                return
            self._down = True
            _unregister(self)
            teardown(self.prefix, daemons_=self.daemons, workdir=self.workdir)
            for process in self._processes.values():
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()

    @property
    def is_down(self) -> bool:
        return self._down

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"Lab(prefix={self.prefix!r}, hosts={[h.name for h in self.hosts]})"

    # ------------------------------------------------------------------ state file

    def _save(self, *, status: str) -> None:
        owner = os.getpid() if self._owned or status == "starting" else None
        state = {
            "version": 1,
            "prefix": self.prefix,
            "status": status,
            "owner_pid": owner,
            "owner_start_time": daemons.proc_start_time(owner) if owner else None,
            "created": time.time(),
            "profile": self.profile_source,
            "workdir": str(self.workdir),
            "namespaces": list(self.namespaces),
            "daemons": [asdict(d) for d in self.daemons],
            "hosts": [asdict(h) for h in self.hosts],
            "credentials": {
                **asdict(self.credentials),
                "ssh_private_key": str(self.credentials.ssh_private_key),
            },
            "dns_zone": self.dns_zone,
            "dns_server": self.dns_server,
            "large": asdict(self.large) if self.large else None,
            "scale": asdict(self.scale) if self.scale else None,
        }
        path = self.workdir / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.touch(mode=0o600)
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(path)

    @classmethod
    def attach(cls, prefix: str) -> Lab:
        """The running lab ``prefix`` (from its state file), e.g. one `midprobe lab up` started."""
        state = read_state(prefix)
        if state is None:
            raise LabError(f"no lab {prefix} is running (no state in {STATE_ROOT / prefix})")
        try:
            creds = dict(state["credentials"])
            creds["ssh_private_key"] = Path(creds["ssh_private_key"])
            large = state.get("large")
            scale = state.get("scale")
            lab = cls(
                prefix=state["prefix"],
                workdir=Path(state["workdir"]),
                hosts=tuple(
                    LabHost(
                        **{
                            **h,
                            "services": tuple(h["services"]),
                            "open_tcp_ports": tuple(h["open_tcp_ports"]),
                        }
                    )
                    for h in state["hosts"]
                ),
                credentials=LabCredentials(**creds),
                dns_zone=state["dns_zone"],
                dns_server=state["dns_server"],
                large=(
                    LargeNetwork(
                        **{
                            **large,
                            "alive": tuple(large["alive"]),
                            "open_tcp_ports": tuple(large["open_tcp_ports"]),
                        }
                    )
                    if large
                    else None
                ),
                namespaces=tuple(state["namespaces"]),
                profile_source=state["profile"],
                scale=(
                    ScaleNetwork(**{**scale, "open_tcp_ports": tuple(scale["open_tcp_ports"])})
                    if scale
                    else None
                ),
            )
            lab.daemons = [daemons.RunningDaemon(**d) for d in state["daemons"]]
        except (KeyError, TypeError, ValueError) as error:
            raise LabError(f"the state file of lab {prefix} is damaged: {error}") from error
        return lab


# ---------------------------------------------------------------------- labs on this machine


@dataclass(frozen=True)
class LabRecord:
    """A lab found on this machine: its state (None when only namespaces are left) and its owner."""

    prefix: str
    state: Mapping[str, Any] | None
    owner_alive: bool  # a live process holds it (e.g. a test session) and will tear it down
    namespaces: tuple[str, ...]

    @property
    def status(self) -> str:
        if self.state is None:
            return "leftover"
        if self.state.get("owner_pid") is not None and not self.owner_alive:
            return "crashed"
        return str(self.state.get("status", "unknown"))


def read_state(prefix: str) -> dict[str, Any] | None:
    if not netns.PREFIX_PATTERN.fullmatch(prefix):
        raise LabError(f"{prefix!r} is not a lab prefix (mp + 6 hex digits)")
    path = STATE_ROOT / prefix / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise LabError(f"cannot read {path}: {error}") from error
    return data if isinstance(data, dict) else None


def list_labs() -> list[LabRecord]:
    """Every lab on this machine: state folders and namespaces that carry a lab prefix."""
    by_prefix: dict[str, list[str]] = {}
    for name in netns.list_namespaces():
        match = netns.NAMESPACE_PATTERN.fullmatch(name)
        if match:
            by_prefix.setdefault(match.group(1), []).append(name)
    prefixes = set(by_prefix)
    if STATE_ROOT.is_dir():
        prefixes |= {p.name for p in STATE_ROOT.iterdir() if netns.PREFIX_PATTERN.fullmatch(p.name)}
    records = []
    for prefix in sorted(prefixes):
        try:
            state = read_state(prefix)
        except LabError:
            state = None
        folder = STATE_ROOT / prefix
        if state is None and folder.is_dir() and time.time() - folder.stat().st_mtime < ORPHAN_GRACE:
            continue  # a lab being born: its state file is not written yet
        owner = state.get("owner_pid") if state else None
        alive = isinstance(owner, int) and daemons.is_alive(
            owner, state.get("owner_start_time") if state else None
        )
        records.append(LabRecord(prefix, state, alive, tuple(by_prefix.get(prefix, ()))))
    return records


def teardown(
    prefix: str, *, daemons_: Sequence[daemons.RunningDaemon] = (), workdir: Path | None = None
) -> None:
    """Remove everything of lab ``prefix``: its daemons (even if the state is lost), namespaces, workdir."""
    if not netns.PREFIX_PATTERN.fullmatch(prefix):
        raise LabError(f"{prefix!r} is not a lab prefix")
    workdir = workdir or STATE_ROOT / prefix
    ours = [name for name in netns.list_namespaces() if name.startswith(prefix + "-")]
    pids: dict[int, int | None] = {d.pid: d.start_time for d in daemons_}
    for name in ours:
        for pid in netns.namespace_pids(name):
            pids.setdefault(pid, None)
    for pid in _pids_mentioning(str(workdir) + "/"):
        pids.setdefault(pid, None)
    pids.pop(os.getpid(), None)
    daemons.stop_pids(pids.items())
    for name in ours:
        netns.delete_namespace(name)
    shutil.rmtree(workdir, ignore_errors=True)


def cleanup_leftovers(*, include_detached: bool, include_live: bool = False) -> list[str]:
    """Tear down crashed labs and leftover namespaces; optionally detached and live ones too.

    A lab is *crashed* when the process that held it died without tearing it down (e.g. kill -9),
    *detached* when `midprobe lab up` started it, *live* when a running process still holds it.
    Returns the prefixes removed.
    """
    removed = []
    for record in list_labs():
        if record.owner_alive and not include_live:
            continue
        detached = record.state is not None and record.state.get("owner_pid") is None
        if detached and not include_detached:
            continue
        _teardown_record(record)
        removed.append(record.prefix)
    return removed


def _teardown_record(record: LabRecord) -> None:
    running: list[daemons.RunningDaemon] = []
    if record.state is not None:
        for item in record.state.get("daemons", []):
            try:
                running.append(daemons.RunningDaemon(**item))
            except TypeError:
                continue
    teardown(record.prefix, daemons_=running)


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line mentions ``text`` (a lab's workdir)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------------- helpers


def _claim_prefix(prefix: str | None) -> tuple[str, Path]:
    STATE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    STATE_ROOT.parent.chmod(0o755)
    STATE_ROOT.chmod(0o755)
    for _ in range(20):
        candidate = prefix or "mp" + secrets.token_hex(3)
        if not netns.PREFIX_PATTERN.fullmatch(candidate):
            raise LabError(f"prefix {candidate!r} must be 'mp' followed by 6 lower-case hex digits")
        busy = any(name.startswith(candidate + "-") for name in netns.list_namespaces())
        if not busy:
            try:
                (STATE_ROOT / candidate).mkdir(mode=0o755)
                return candidate, STATE_ROOT / candidate
            except FileExistsError:
                pass
        if prefix:
            raise LabError(
                f"a lab with prefix {prefix} already exists; pick another or run `midprobe lab down`"
            )
    raise LabError("could not find a free lab prefix")


def _generate_credentials(workdir: Path) -> LabCredentials:
    ssh_dir = workdir / "ssh"
    ssh_dir.mkdir(mode=0o755)
    key = ssh_dir / "id_ed25519"
    daemons.generate_ssh_keys([key], f"{LAB_USER}@midprobe-lab")
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    authorized.chmod(0o644)
    return LabCredentials(
        ssh_user=LAB_USER,
        ssh_password="mp-" + secrets.token_urlsafe(12),
        ssh_private_key=key,
        snmp_community="mp-" + secrets.token_hex(6),
        snmpv3_user=SNMPV3_USER,
        snmpv3_auth_protocol="SHA",
        snmpv3_auth_key="mpa-" + secrets.token_hex(8),
        snmpv3_priv_protocol="AES",
        snmpv3_priv_key="mpp-" + secrets.token_hex(8),
    )


def _check_scale_apart(plan: topology.Plan) -> None:
    """Scale mode's network may overlap no network the profile routes elsewhere."""
    assert plan.scale is not None
    scale = ipaddress.IPv4Network(plan.scale.network)
    routed = [h.routed_network for h in plan.hosts if h.routed_network is not None]
    if plan.large is not None:
        routed.append(plan.large.network)
    for network in routed:
        if ipaddress.IPv4Network(network).overlaps(scale):
            raise LabError(f"--scale's {scale} overlaps {network}, which the profile routes elsewhere")


def _lab_host(spec: LabProfile, planned: topology.PlannedHost, prefix: str, has_dns: bool) -> LabHost:
    profile = spec.profiles[planned.profile]
    if planned.subdomain:
        fqdn = f"{planned.name}.{planned.subdomain}.{spec.zone}"
    else:
        fqdn = f"{planned.name}.{spec.zone}"
    snmp = profile.snmp
    return LabHost(
        name=planned.name,
        profile=planned.profile,
        address=planned.address,
        namespace=topology.namespace_name(prefix, planned.name),
        fqdn=fqdn if has_dns else None,
        services=profile.services,
        open_tcp_ports=profile.open_tcp_ports,
        sys_name=planned.name if snmp else None,
        sys_descr=snmp.sys_descr.replace("{name}", planned.name) if snmp else None,
        sys_object_id=snmp.sys_object_id if snmp else None,
        routed_network=planned.routed_network,
        address6=planned.address6,
    )


# ---------------------------------------------------------------------- teardown at exit

_LIVE: dict[str, Lab] = {}
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _register(lab: Lab) -> None:
    global _HANDLERS_INSTALLED
    with _LIVE_LOCK:
        _LIVE[lab.prefix] = lab
        if not _HANDLERS_INSTALLED:
            _HANDLERS_INSTALLED = True
            atexit.register(_teardown_all)
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGTERM, signal.SIGHUP):
                    if signal.getsignal(signum) is signal.SIG_DFL:
                        signal.signal(signum, _on_signal)


def _unregister(lab: Lab) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(lab.prefix, None)


def _teardown_all() -> None:
    with _LIVE_LOCK:
        labs = list(_LIVE.values())
    for lab in labs:
        try:
            lab.down()
        except Exception as error:  # at exit: report and go on with the next lab
            print(f"midprobe: lab {lab.prefix} teardown failed: {error}", flush=True)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _teardown_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
