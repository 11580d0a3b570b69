"""BannerSniff's pure half: its constants, typed results, parameters and the parsers of what ports say."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from midprobe.capabilities.errors import MidprobeError, ProbeParameterError, TargetSpecError
from midprobe.probes.banner.defaults import DEFAULT_BANNER_WAIT_MS, DEFAULT_SNMP_TAPS, DEFAULT_SNMP_WAIT_MS
from midprobe.probes.params import parse_bool, parse_choice, parse_int
from midprobe.probes.ports import parse_ports, service_name
from midprobe.probes.targets import parse_targets

TOPIC = "BannerSniff"
DEFAULT_CONNECT_WAIT_MS = 1000  # Shazzam GenericTCP
#: The shortest NULL wait (a port given the chance to speak first) and the shortest wait for the
#: answer to the one probe a silent port is sent (ms); both grow with the measured connect RTT
#: (:data:`RTT_FACTOR` round trips) and never pass ``banner_wait``.
DEFAULT_NULL_WAIT_MS = 120
DEFAULT_PROBE_WAIT_MS = 250
RTT_FACTOR = 8
DEFAULT_READ_LIMIT = 4096
MAX_READ_LIMIT = 65536
DEFAULT_CONCURRENCY = 16
MAX_PORTS = 1024
MAX_BANNER_CHARS = 1024
SNMP_PORT = 161
SNMP_COMMUNITY = b"public"
#: Raw print ports (HP JetDirect and friends): whatever arrives is printed, so nothing is sent.
PRINT_PORTS = frozenset(range(9100, 9108))

HTTP_SERVICES = frozenset({"http", "http-alt", "http-proxy", "squid-http", "wsman", "ipp", "upnp"})
HTTPS_SERVICES = frozenset({"https", "https-alt", "tungsten-https", "wsmans"})
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)

Scanner = Literal["BannerTCP", "HTTP", "HTTPS", "SNMP"]
#: ``open``: connected (or SNMP answered); ``refused``: reset (or ICMP port unreachable);
#: ``filtered``: no answer in time; ``error``: anything else (``detail`` says what).
PortState = Literal["open", "refused", "filtered", "error"]


# --- typed results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpHead:
    """The head of an HTTP response."""

    version: str
    status: int
    reason: str
    server: str | None

    @property
    def status_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}".rstrip()


@dataclass(frozen=True)
class TlsPeer:
    """What the TLS handshake showed (the certificate is not verified: discovery, not trust)."""

    version: str
    cipher: str
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None


@dataclass(frozen=True)
class SnmpIdentity:
    """sysObjectID.0 (with a leading dot, as ECC writes OIDs) and sysDescr.0 of an SNMP agent."""

    sys_object_id: str | None
    sys_descr: str | None


@dataclass(frozen=True)
class PortBanner:
    """What one port said."""

    port: int
    protocol: Literal["tcp", "udp"]
    scanner: Scanner
    state: PortState
    #: Our guess of the service from what it said (else the port's conventional name).
    service: str
    #: Printable text: the SSH identification line, a greeting, the HTTP ``Server`` header, sysDescr.
    banner: str = ""
    http: HttpHead | None = None
    tls: TlsPeer | None = None
    snmp: SnmpIdentity | None = None
    #: A short note: why nothing was read, or what went wrong.
    detail: str = ""


@dataclass(frozen=True)
class BannerResult:
    address: str
    host_name: str | None
    ports: tuple[PortBanner, ...]
    elapsed_ms: int

    def banners(self) -> dict[int, str]:
        """TCP port -> banner text, for the classifier's ``Observations.banners``."""
        return {p.port: p.banner for p in self.ports if p.protocol == "tcp" and p.banner}

    @property
    def snmp(self) -> SnmpIdentity | None:
        return next((p.snmp for p in self.ports if p.snmp is not None), None)


@dataclass(frozen=True)
class BannerParams:
    """A validated request. Times are milliseconds."""

    host: str
    ports: tuple[int, ...]
    snmp_public: bool = False
    snmp_version: Literal["1", "2c"] = "2c"
    connect_wait_ms: int = DEFAULT_CONNECT_WAIT_MS
    banner_wait_ms: int = DEFAULT_BANNER_WAIT_MS
    snmp_wait_ms: int = DEFAULT_SNMP_WAIT_MS
    snmp_taps: int = DEFAULT_SNMP_TAPS
    read_limit: int = DEFAULT_READ_LIMIT
    concurrency: int = DEFAULT_CONCURRENCY
    #: Ports to handshake TLS on, besides the conventional HTTPS ports.
    tls_ports: tuple[int, ...] = ()
    #: Send the HEAD request to a port that stayed silent through its NULL wait.
    probe_silent: bool = True
    null_wait_ms: int = DEFAULT_NULL_WAIT_MS
    probe_wait_ms: int = DEFAULT_PROBE_WAIT_MS

    def null_wait(self, rtt: float) -> float:
        """Seconds a port is given to speak first, for a connect that took ``rtt`` seconds."""
        return adaptive_wait(rtt, self.null_wait_ms, self.banner_wait_ms)

    def probe_wait(self, rtt: float) -> float:
        """Seconds a silent port is given to answer the probe it was sent."""
        return adaptive_wait(rtt, self.probe_wait_ms, self.banner_wait_ms)


def adaptive_wait(rtt: float, floor_ms: int, cap_ms: int) -> float:
    """``RTT_FACTOR`` round trips of ``rtt`` seconds, at least ``floor_ms`` and at most ``cap_ms``, in
    seconds (nmap's service probes likewise scale their waits to the host's measured RTT)."""
    return min(cap_ms, max(floor_ms, rtt * 1000 * RTT_FACTOR)) / 1000


# --- pure parsers and builders --------------------------------------------------------------------


def sanitize(data: bytes, limit: int = MAX_BANNER_CHARS) -> str:
    """Printable text: UTF-8 (else Latin-1), trailing line ends dropped, anything not printable
    escaped (``\\r``, ``\\n``, ``\\t``, ``\\xNN``, ``\\uNNNN``), at most ``limit`` characters."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.rstrip("\r\n\x00")
    out: list[str] = []
    size = 0
    for char in text:
        code = ord(char)
        if char == "\r":
            piece = "\\r"
        elif char == "\n":
            piece = "\\n"
        elif char == "\t":
            piece = "\\t"
        elif char == "\\":
            piece = "\\\\"
        elif not char.isprintable():  # controls, format characters (bidi overrides), odd spaces
            if code < 0x100:
                piece = f"\\x{code:02x}"
            else:
                piece = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        else:
            piece = char
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def ssh_identification(data: bytes) -> str | None:
    """The ``SSH-protoversion-softwareversion [comments]`` line (RFC 4253 4.2; other lines may come
    first), without its line end; ``None`` when ``data`` holds none."""
    for line in data.split(b"\n"):
        if line.startswith(b"SSH-"):
            return sanitize(line.rstrip(b"\r"), 255)
    return None


def guess_service(port: int, data: bytes) -> str:
    """The service a greeting points to (``ssh``, ``ftp``, ``smtp``, ...); the port's name otherwise."""
    head = data[:512]
    upper = head.upper()
    if head.startswith(b"SSH-") or b"\nSSH-" in head:
        return "ssh"
    if head.startswith(b"HTTP/"):
        return "http"
    if head.startswith(b"RFB "):
        return "vnc"
    if head.startswith(b"+OK"):
        return "pop3"
    if head.startswith((b"* OK", b"* PREAUTH")):
        return "imap"
    if head[:1] == b"\xff" and head[1:2] in (b"\xfb", b"\xfc", b"\xfd", b"\xfe"):
        return "telnet"
    if head.startswith(b"220"):
        if b"FTP" in upper:
            return "ftp"
        if b"SMTP" in upper or b"MAIL" in upper:
            return "smtp"
        return {21: "ftp", 25: "smtp", 587: "smtp"}.get(port, "ftp-or-smtp")
    if len(head) > 5 and head[4] == 0x0A and head[3] == 0 and b"\x00" in head[5:]:
        return "mysql"  # a protocol-10 handshake packet after a 4-byte header
    return service_name(port)


def http_request(host: str) -> bytes:
    """``HEAD / HTTP/1.0`` with a ``Host`` header (IPv6 literals in brackets)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        host_header = host
    else:
        host_header = f"[{literal}]" if literal.version == 6 else str(literal)
    return (
        f"HEAD / HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: midprobe\r\nAccept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")


def parse_http_head(data: bytes) -> HttpHead | None:
    """The status line and ``Server`` header of an HTTP response head, or ``None`` if not HTTP."""
    if not data.startswith(b"HTTP/"):
        return None
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
        return None
    server: str | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"server":
            server = sanitize(value.strip(), 255)
            break
    reason = sanitize(parts[2].strip(), 255) if len(parts) > 2 else ""
    return HttpHead(sanitize(parts[0], 16), int(parts[1]), reason, server)


def describe_certificate(der: bytes) -> tuple[str | None, str | None, str | None]:
    """``(subject, issuer, not_after)`` of a DER certificate (RFC 4514 names, ISO time); Nones if unreadable."""
    from cryptography import x509  # only a TLS port needs it: a plain port scan never loads it

    try:
        certificate = x509.load_der_x509_certificate(der)
        subject = certificate.subject.rfc4514_string()
        issuer = certificate.issuer.rfc4514_string()
        not_after = certificate.not_valid_after_utc.isoformat()
    except (ValueError, TypeError):
        return None, None, None
    return subject, issuer, not_after


def snmp_identity_request(request_id: int, version: Literal["1", "2c"] = "2c") -> bytes:
    """A GET of sysObjectID.0 and sysDescr.0 with the community ``public``."""
    from midprobe.probes.snmp import codec  # the SNMP package only for the SNMP tap

    number = codec.VERSION_1 if version == "1" else codec.VERSION_2C
    return codec.encode_request(
        number, SNMP_COMMUNITY, codec.GET_REQUEST, request_id, [SYS_OBJECT_ID, SYS_DESCR]
    )


def parse_snmp_identity(data: bytes, request_id: int) -> SnmpIdentity | None:
    """The identity from the agent's response to ``request_id``; ``None`` for anything else."""
    from midprobe.probes.snmp import codec
    from midprobe.probes.snmp.values import SnmpType, format_oid, render

    try:
        response = codec.decode_response(data)
    except codec.SnmpDecodeError:
        return None
    if response.pdu_type != codec.RESPONSE or response.request_id != request_id:
        return None
    sys_object_id: str | None = None
    sys_descr: str | None = None
    for oid, value in response.varbinds:
        if value.is_exception:
            continue
        if oid == SYS_OBJECT_ID and value.type is SnmpType.OBJECT_ID:
            assert isinstance(value.value, tuple)
            sys_object_id = format_oid(value.value, leading_dot=True)
        elif oid == SYS_DESCR:
            text, _ = render(value)
            sys_descr = sanitize(text.encode("utf-8"), MAX_BANNER_CHARS)
    return SnmpIdentity(sys_object_id, sys_descr)


# --- parameters (pure) ----------------------------------------------------------------------------


def _port_list(parameters: Mapping[str, str], name: str, *, required: bool) -> tuple[int, ...]:
    text = parameters.get(name, "").strip()
    if not text:
        if required:
            raise ProbeParameterError("no ports given", parameter=name)
        return ()
    try:
        spec = parse_ports(text)
    except MidprobeError as error:
        raise ProbeParameterError(str(error), parameter=name) from None
    if spec.udp:
        raise ProbeParameterError(
            "TCP ports only (SNMP on UDP 161 is asked for with snmp_public=true)", parameter=name
        )
    if len(spec.tcp) > MAX_PORTS:
        raise ProbeParameterError(f"{len(spec.tcp)} ports, at most {MAX_PORTS}", parameter=name)
    return spec.tcp


def parse_banner_params(source: str, parameters: Mapping[str, str]) -> BannerParams:
    """Validate a ``BannerSniff`` request (one host: ``host``, else ``source``)."""
    name = "host" if parameters.get("host", "").strip() else "source"
    host = parameters.get("host", "").strip() or source.strip()
    if not host:
        raise ProbeParameterError("no host given (neither host nor source is set)", parameter="host")
    try:
        spec = parse_targets(host)
    except TargetSpecError as error:
        raise ProbeParameterError(str(error), parameter=name) from None
    if spec.count() != 1 or len(host.split()) != 1:
        raise ProbeParameterError(f"{host!r} is not one host", parameter=name)
    snmp_public = parse_bool(parameters, "snmp_public", False)
    ports = _port_list(parameters, "ports", required=not snmp_public)
    version = parse_choice(parameters, "snmp_version", "2c", ("1", "2c"))
    return BannerParams(
        host=host,
        ports=ports,
        snmp_public=snmp_public,
        snmp_version="1" if version == "1" else "2c",
        connect_wait_ms=parse_int(parameters, "connect_wait", DEFAULT_CONNECT_WAIT_MS, 10, 60_000),
        banner_wait_ms=parse_int(parameters, "banner_wait", DEFAULT_BANNER_WAIT_MS, 10, 60_000),
        snmp_wait_ms=parse_int(parameters, "snmp_wait", DEFAULT_SNMP_WAIT_MS, 10, 60_000),
        snmp_taps=parse_int(parameters, "snmp_taps", DEFAULT_SNMP_TAPS, 1, 10),
        read_limit=parse_int(parameters, "read_limit", DEFAULT_READ_LIMIT, 64, MAX_READ_LIMIT),
        concurrency=parse_int(parameters, "concurrency", DEFAULT_CONCURRENCY, 1, 256),
        tls_ports=_port_list(parameters, "tls_ports", required=False),
        probe_silent=parse_bool(parameters, "probe_silent", True),
        null_wait_ms=parse_int(parameters, "null_wait", DEFAULT_NULL_WAIT_MS, 10, 60_000),
        probe_wait_ms=parse_int(parameters, "probe_wait", DEFAULT_PROBE_WAIT_MS, 10, 60_000),
    )


def scanner_for(port: int, tls_ports: Sequence[int] = ()) -> Scanner:
    """Which way a port is read: HTTPS (TLS first), HTTP (we speak first) or BannerTCP (it does)."""
    name = service_name(port)
    if port in tls_ports or name in HTTPS_SERVICES:
        return "HTTPS"
    if name in HTTP_SERVICES:
        return "HTTP"
    return "BannerTCP"
