"""BannerSniff's I/O: connecting, reading greetings, HTTP HEAD, TLS and SNMP taps, bounded per port and in all."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import replace

from midprobe.probes.banner.parsers import (
    MAX_READ_LIMIT,
    PRINT_PORTS,
    SNMP_PORT,
    BannerParams,
    BannerResult,
    PortBanner,
    TlsPeer,
    describe_certificate,
    guess_service,
    http_request,
    parse_http_head,
    parse_snmp_identity,
    sanitize,
    scanner_for,
    snmp_identity_request,
    ssh_identification,
)
from midprobe.probes.base import ProbeContext
from midprobe.probes.ports import service_name
from midprobe.probes.resolve import resolve_host

_IDLE_AFTER_LINE = 0.1  # after a complete line, how long more lines may take to follow


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
        """Wait up to ``wait`` for the peer to speak; once a line is complete, only briefly for more,
        and not at all after an SSH identification line: an SSH server says nothing more until the
        client has sent its own (RFC 4253 4.2: other lines may come before it, none after)."""
        deadline = time.monotonic() + wait
        while await self.read_some(deadline):
            if b"\n" in self.data:
                if _ssh_line_complete(self.data):
                    return
                deadline = min(deadline, time.monotonic() + _IDLE_AFTER_LINE)

    async def read_http_head(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while b"\r\n\r\n" not in self.data and b"\n\n" not in self.data and await self.read_some(deadline):
            pass


def _ssh_line_complete(data: bytearray) -> bool:
    """Whether ``data`` holds a whole ``SSH-...`` identification line (its line end arrived)."""
    if data.startswith(b"SSH-"):
        start = 0
    else:
        start = data.find(b"\nSSH-") + 1
        if start == 0:
            return False
    return data.find(b"\n", start) >= 0


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
        started = time.monotonic()
        try:
            async with asyncio.timeout(connect_wait):
                reader, writer = await asyncio.open_connection(self.address, port, limit=params.read_limit)
        except TimeoutError:
            return replace(base, state="filtered", detail=f"no answer in {params.connect_wait_ms} ms")
        except ConnectionRefusedError:
            return replace(base, state="refused")
        except OSError as error:
            return replace(base, state="error", detail=_error_text(error))
        rtt = time.monotonic() - started  # the handshake's round trip: what the waits below scale with
        try:
            if context is not None:
                return await self._https(base, reader, writer, context, banner_wait)
            if scanner == "HTTP":
                return await self._http(base, _Reader(reader, params.read_limit), writer, banner_wait)
            return await self._greeting(base, _Reader(reader, params.read_limit), writer, rtt)
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
            return replace(_spoken(base, data), detail="not HTTP")
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
        self, base: PortBanner, reader: _Reader, writer: asyncio.StreamWriter, rtt: float
    ) -> PortBanner:
        """The NULL probe: the port is given ``null_wait`` (scaled to ``rtt``) to speak first; a
        silent one (not a print port) is then sent the HEAD request and given ``probe_wait``."""
        params = self.params
        wait = params.null_wait(rtt)
        await reader.read_greeting(wait)
        data = bytes(reader.data)
        if data:
            return _spoken(base, data)
        waited = f"silent for {round(wait * 1000)} ms"
        if base.port in PRINT_PORTS:
            return replace(base, detail=f"{waited}; a raw print port, nothing sent")
        if reader.closed:
            return replace(base, detail="closed by the server without a word")
        if not params.probe_silent:
            return replace(base, detail=waited)
        result = await self._http(base, reader, writer, params.probe_wait(rtt), service=base.service)
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


def _spoken(base: PortBanner, data: bytes) -> PortBanner:
    """What a port said of itself: an SSH identification line alone (other lines may precede it, and
    a late sshd answers the HEAD request with a complaint after it), else the sanitised text."""
    identification = ssh_identification(data)
    if identification is not None:
        return replace(base, service="ssh", banner=identification)
    return replace(base, service=guess_service(base.port, data), banner=sanitize(data))


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
