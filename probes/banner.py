"""``BannerSniff`` (our topic): the first bytes a host's open ports say, as typed, sanitised results.

Per TCP port (parameter ``ports``): HTTP ports get ``HEAD / HTTP/1.0`` and report the status line
and ``Server`` header; HTTPS ports the same over an unverified TLS handshake (certificate subject
and issuer recorded); every other port is given ``banner_wait`` (Shazzam's BannerTCP wait, 1500 ms)
to speak first (an SSH identification line, an FTP/SMTP greeting), and a port that stays silent
gets the HEAD request too, except raw print ports (9100-9107), which print what they receive and
are never sent anything. SNMP (UDP 161, community ``public``: one GET of sysObjectID.0 and
sysDescr.0, 1000 ms wait, 2 taps) only with ``snmp_public=true``. Parsers and the encoder are pure;
see docs/banner.md for the parameters and the ``<result>`` layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from cryptography import x509

from midprobe.capabilities.errors import MidprobeError, ProbeParameterError, TargetSpecError
from midprobe.probes.base import ProbeContext
from midprobe.probes.params import parse_bool, parse_choice, parse_int
from midprobe.probes.ports import parse_ports, service_name
from midprobe.probes.resolve import resolve_host
from midprobe.probes.snmp import codec
from midprobe.probes.snmp.values import SnmpType, format_oid, render
from midprobe.probes.targets import parse_targets

__all__ = [
    "DEFAULT_BANNER_WAIT_MS",
    "DEFAULT_SNMP_TAPS",
    "DEFAULT_SNMP_WAIT_MS",
    "PRINT_PORTS",
    "PROBE",
    "BannerParams",
    "BannerResult",
    "BannerSniffProbe",
    "HttpHead",
    "PortBanner",
    "SnmpIdentity",
    "TlsPeer",
    "describe_certificate",
    "encode_banners",
    "guess_service",
    "http_request",
    "parse_banner_params",
    "parse_http_head",
    "parse_snmp_identity",
    "sanitize",
    "scanner_for",
    "sniff",
    "snmp_identity_request",
    "ssh_identification",
]

TOPIC = "BannerSniff"
DEFAULT_CONNECT_WAIT_MS = 1000  # Shazzam GenericTCP
DEFAULT_BANNER_WAIT_MS = 1500  # Shazzam BannerTCP
DEFAULT_SNMP_WAIT_MS = 1000  # Shazzam SNMP
DEFAULT_SNMP_TAPS = 2
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

_IDLE_AFTER_LINE = 0.1  # after a complete line, how long more lines may take to follow


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
    #: Send the HEAD request to a port that stayed silent through ``banner_wait``.
    probe_silent: bool = True


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
    number = codec.VERSION_1 if version == "1" else codec.VERSION_2C
    return codec.encode_request(
        number, SNMP_COMMUNITY, codec.GET_REQUEST, request_id, [SYS_OBJECT_ID, SYS_DESCR]
    )


def parse_snmp_identity(data: bytes, request_id: int) -> SnmpIdentity | None:
    """The identity from the agent's response to ``request_id``; ``None`` for anything else."""
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
    )


def scanner_for(port: int, tls_ports: Sequence[int] = ()) -> Scanner:
    """Which way a port is read: HTTPS (TLS first), HTTP (we speak first) or BannerTCP (it does)."""
    name = service_name(port)
    if port in tls_ports or name in HTTPS_SERVICES:
        return "HTTPS"
    if name in HTTP_SERVICES:
        return "HTTP"
    return "BannerTCP"


# --- I/O -------------------------------------------------------------------------------------------


class _Reader:
    """Bounded reads from one connection: never more than ``limit`` bytes, never past ``deadline``."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self.reader = reader
        self.limit = limit
        self.data = bytearray()
        self.closed = False

    async def read_some(self, deadline: float) -> bool:
        """Read one chunk before ``deadline``; False on time-out, end of stream or a full buffer."""
        room = self.limit - len(self.data)
        remaining = deadline - time.monotonic()
        if room <= 0 or self.closed or remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):
                chunk = await self.reader.read(room)
        except TimeoutError:
            return False
        except (ConnectionError, OSError, ssl.SSLError):
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.data += chunk
        return True

    async def read_greeting(self, wait: float) -> None:
        """Wait up to ``wait`` for the peer to speak; once a line is complete, only briefly for more."""
        deadline = time.monotonic() + wait
        while await self.read_some(deadline):
            if b"\n" in self.data:
                deadline = min(deadline, time.monotonic() + _IDLE_AFTER_LINE)

    async def read_http_head(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while b"\r\n\r\n" not in self.data and b"\n\n" not in self.data and await self.read_some(deadline):
            pass


def _error_text(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


class _Sniffer:
    def __init__(self, params: BannerParams, address: str, host_header: str, server_name: str | None) -> None:
        self.params = params
        self.address = address
        self.host_header = host_header
        self.server_name = server_name

    async def tcp(self, port: int) -> PortBanner:
        params = self.params
        scanner = scanner_for(port, params.tls_ports)
        context: ssl.SSLContext | None = _tls_context() if scanner == "HTTPS" else None
        connect_wait = params.connect_wait_ms / 1000
        banner_wait = params.banner_wait_ms / 1000
        base = PortBanner(port, "tcp", scanner, "open", service_name(port))
        try:
            async with asyncio.timeout(connect_wait):
                reader, writer = await asyncio.open_connection(self.address, port, limit=params.read_limit)
        except TimeoutError:
            return replace(base, state="filtered", detail=f"no answer in {params.connect_wait_ms} ms")
        except ConnectionRefusedError:
            return replace(base, state="refused")
        except OSError as error:
            return replace(base, state="error", detail=_error_text(error))
        try:
            if context is not None:
                return await self._https(base, reader, writer, context, banner_wait)
            if scanner == "HTTP":
                return await self._http(base, _Reader(reader, params.read_limit), writer, banner_wait)
            return await self._greeting(base, _Reader(reader, params.read_limit), writer, banner_wait)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await writer.wait_closed()

    async def _http(
        self,
        base: PortBanner,
        reader: _Reader,
        writer: asyncio.StreamWriter,
        wait: float,
        *,
        service: str = "http",
    ) -> PortBanner:
        try:
            writer.write(http_request(self.host_header))
            async with asyncio.timeout(wait):
                await writer.drain()
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError) as error:
            return replace(base, service=service, detail=f"sending the request failed: {_error_text(error)}")
        await reader.read_http_head(wait)
        head = parse_http_head(bytes(reader.data))
        if head is None:
            data = bytes(reader.data)
            if not data:
                return replace(base, service=service, detail=f"no HTTP answer in {round(wait * 1000)} ms")
            return replace(
                base, service=guess_service(base.port, data), banner=sanitize(data), detail="not HTTP"
            )
        return replace(base, service=service, banner=head.server or "", http=head)

    async def _https(
        self,
        base: PortBanner,
        raw_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        wait: float,
    ) -> PortBanner:
        try:
            async with asyncio.timeout(wait):
                await writer.start_tls(context, server_hostname=self.server_name)
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError) as error:
            detail = "no TLS handshake in time" if isinstance(error, TimeoutError) else _error_text(error)
            return replace(base, service="ssl/unknown", detail=f"TLS: {detail}")
        tls = _tls_peer(writer)
        return await self._http(
            replace(base, tls=tls), _Reader(raw_reader, self.params.read_limit), writer, wait, service="https"
        )

    async def _greeting(
        self, base: PortBanner, reader: _Reader, writer: asyncio.StreamWriter, wait: float
    ) -> PortBanner:
        await reader.read_greeting(wait)
        data = bytes(reader.data)
        if data:
            identification = ssh_identification(data)
            if identification is not None:
                return replace(base, service="ssh", banner=identification)
            return replace(base, service=guess_service(base.port, data), banner=sanitize(data))
        waited = f"silent for {self.params.banner_wait_ms} ms"
        if base.port in PRINT_PORTS:
            return replace(base, detail=f"{waited}; a raw print port, nothing sent")
        if reader.closed:
            return replace(base, detail="closed by the server without a word")
        if not self.params.probe_silent:
            return replace(base, detail=waited)
        result = await self._http(base, reader, writer, wait, service=base.service)
        if result.http is None:
            return replace(result, detail=f"{waited}; {result.detail}" if result.detail else waited)
        return replace(result, service="http", detail=f"{waited}; answered HTTP")

    async def snmp(self) -> PortBanner:
        params = self.params
        base = PortBanner(SNMP_PORT, "udp", "SNMP", "filtered", "snmp")
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            try:
                sock.connect((self.address, SNMP_PORT))
            except OSError as error:
                return replace(base, state="error", detail=_error_text(error))
            wait = params.snmp_wait_ms / 1000
            for _ in range(params.snmp_taps):
                request_id = secrets.randbits(31)
                try:
                    await loop.sock_sendall(sock, snmp_identity_request(request_id, params.snmp_version))
                    deadline = time.monotonic() + wait
                    while (remaining := deadline - time.monotonic()) > 0:
                        async with asyncio.timeout(remaining):
                            data = await loop.sock_recv(sock, MAX_READ_LIMIT)
                        identity = parse_snmp_identity(data, request_id)
                        if identity is not None:
                            return replace(base, state="open", banner=identity.sys_descr or "", snmp=identity)
                except TimeoutError:
                    continue
                except ConnectionRefusedError:
                    return replace(base, state="refused", detail="ICMP port unreachable")
                except OSError as error:
                    return replace(base, state="error", detail=_error_text(error))
            return replace(
                base,
                detail=f"no answer to community public in {params.snmp_taps} taps of {params.snmp_wait_ms} ms",
            )
        finally:
            sock.close()


def _tls_context() -> ssl.SSLContext:
    """Unverified, and tolerant of small keys and old ciphers: discovery wants to see the certificate,
    not trust it. (TLS 1.0/1.1 stay off: Python deprecates them; such servers report a TLS error.)"""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _tls_peer(writer: asyncio.StreamWriter) -> TlsPeer | None:
    tls = writer.get_extra_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject):
        return None
    der = tls.getpeercert(binary_form=True)
    subject, issuer, not_after = describe_certificate(der) if der else (None, None, None)
    cipher = tls.cipher()
    return TlsPeer(tls.version() or "", cipher[0] if cipher else "", subject, issuer, not_after)


def _failed(port: int | None, params: BannerParams, detail: str) -> PortBanner:
    """An ``error`` result for a TCP port, or for SNMP when ``port`` is None."""
    if port is None:
        return PortBanner(SNMP_PORT, "udp", "SNMP", "error", "snmp", detail=detail)
    return PortBanner(
        port, "tcp", scanner_for(port, params.tls_ports), "error", service_name(port), detail=detail
    )


async def sniff(params: BannerParams, context: ProbeContext) -> BannerResult:
    """Read the banners of ``params.host``; sockets are made on the calling thread (its namespace)."""
    started = time.monotonic()
    host_name: str | None = None
    try:
        ipaddress.ip_address(params.host)
    except ValueError:
        host_name = params.host
    address = str(await resolve_host(params.host, context.policy, deadline=context.deadline))
    sniffer = _Sniffer(params, address, host_name or address, host_name)
    limit = asyncio.Semaphore(params.concurrency)

    async def bounded(port: int | None) -> PortBanner:
        async with limit:
            try:
                return await (sniffer.snmp() if port is None else sniffer.tcp(port))
            except (OSError, ssl.SSLError, EOFError) as error:  # one port's trouble is that port's result
                return _failed(port, params, _error_text(error))

    jobs: list[int | None] = [*params.ports, *([None] if params.snmp_public else [])]
    tasks = [asyncio.ensure_future(bounded(port)) for port in jobs]
    margin = min(1.0, context.remaining() * 0.05)
    done, _ = (
        await asyncio.wait(tasks, timeout=max(0.0, context.remaining() - margin)) if tasks else (set(), set())
    )
    results: list[PortBanner] = []
    for port, task in zip(jobs, tasks, strict=True):
        if task in done:
            results.append(task.result())
            continue
        task.cancel()
        results.append(_failed(port, params, "probe deadline"))
    await asyncio.gather(*tasks, return_exceptions=True)
    return BannerResult(address, host_name, tuple(results), round((time.monotonic() - started) * 1000))


# --- the ECC payload (pure) ------------------------------------------------------------------------


def encode_banners(result: BannerResult) -> ET.Element:
    """``<result><host ip=".."><scanner name="BannerTCP" port="22" .../>...</host></result>``."""
    element = ET.Element("result")
    host = ET.SubElement(element, "host", ip=result.address, elapsed_ms=str(result.elapsed_ms))
    if result.host_name:
        host.set("hostName", result.host_name)
    for port in result.ports:
        scanner = ET.SubElement(
            host,
            "scanner",
            name=port.scanner,
            port=str(port.port),
            portprobe=service_name(port.port, port.protocol),
            protocol=port.protocol,
            result=port.state,
            service=port.service,
        )
        if port.banner:
            scanner.set("banner_text", port.banner)
        if port.http is not None:
            scanner.set("http_status", str(port.http.status))
            scanner.set("http_status_line", port.http.status_line)
            if port.http.server is not None:
                scanner.set("http_server", port.http.server)
        if port.tls is not None:
            scanner.set("tls_version", port.tls.version)
            scanner.set("tls_cipher", port.tls.cipher)
            for name, value in (
                ("tls_subject", port.tls.subject),
                ("tls_issuer", port.tls.issuer),
                ("tls_not_after", port.tls.not_after),
            ):
                if value is not None:
                    scanner.set(name, value)
        if port.snmp is not None:
            if port.snmp.sys_object_id is not None:
                ET.SubElement(
                    scanner, "sysObjectID", oid=format_oid(SYS_OBJECT_ID[:-1]), type=SnmpType.OBJECT_ID.value
                ).text = port.snmp.sys_object_id
            if port.snmp.sys_descr is not None:
                ET.SubElement(
                    scanner, "sysDescr", oid=format_oid(SYS_DESCR[:-1]), type=SnmpType.OCTET_STRING.value
                ).text = port.snmp.sys_descr
        if port.detail:
            scanner.set("detail", port.detail)
    return element


class BannerSniffProbe:
    topic = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> BannerParams:
        return parse_banner_params(source, parameters)

    async def run(self, params: BannerParams, context: ProbeContext) -> BannerResult:
        return await sniff(params, context)

    def encode_results(self, result: BannerResult) -> Sequence[ET.Element]:
        return [encode_banners(result)]


PROBE = BannerSniffProbe()
