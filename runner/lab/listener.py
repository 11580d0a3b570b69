"""A tiny TCP/HTTP listener for lab hosts: HTTP/1.0 pages and raw ports (like a printer's 9100).

Run as a script inside a host's namespace (stdlib only, so it starts fast):
``python3 -I listener.py --bind ADDR [--bind ADDR6] --http 80=Server-header --raw 9100 --sink 443``.
A ``--sink`` port accepts every connection and closes it at once (no read, no per-connection
task; a FIN, not a reset, which a connect scan could read as refused before it saw the connection): scale mode's namespace answers a scan of every address of a /16 with it.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import signal
import socket

READ_LIMIT = 16384
IDLE_TIMEOUT = 30.0
SINK_BACKLOG = 4096  # the namespace's net.core.somaxconn default
SINK_BATCH = 256  # connections accepted per wake-up before the loop looks at other work


def _split(spec: str) -> tuple[int, str | None]:
    port, _, extra = spec.partition("=")
    return int(port), (extra or None)


async def _serve_http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: str | None, name: str
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        writer.close()
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    method = request_line.split(" ", 1)[0]
    title = html.escape(f"{name} - midprobe lab")
    body = f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    status = "200 OK" if method in ("GET", "HEAD") else "405 Method Not Allowed"
    lines = [f"HTTP/1.0 {status}", "Content-Type: text/html; charset=utf-8", f"Content-Length: {len(body)}"]
    if server:
        lines.append(f"Server: {server}")
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if method != "HEAD":
        payload += body.encode()
    try:
        writer.write(payload)
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def _serve_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, banner: str | None) -> None:
    try:
        if banner:
            writer.write(banner.encode() + b"\r\n")
            await writer.drain()
        received = 0
        while received < READ_LIMIT:
            chunk = await asyncio.wait_for(reader.read(4096), IDLE_TIMEOUT)
            if not chunk:
                break
            received += len(chunk)
    except (TimeoutError, ConnectionError):
        pass
    writer.close()


def _sink(bind: list[str], port: int) -> list[socket.socket]:
    """Listening sockets on ``port`` whose connections are accepted and closed as they come."""
    loop = asyncio.get_running_loop()
    sockets = []
    for address in bind:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((address, port))
        listening.listen(SINK_BACKLOG)
        listening.setblocking(False)

        def drain(listening: socket.socket = listening) -> None:
            for _ in range(SINK_BATCH):
                try:
                    connection, _ = listening.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue  # e.g. ECONNABORTED: the client went away first
                connection.close()

        loop.add_reader(listening.fileno(), drain)
        sockets.append(listening)
    return sockets


async def _main(bind: list[str], http: list[str], raw: list[str], sink: list[str], name: str) -> None:
    servers = []
    for spec in http:
        port, server = _split(spec)

        async def on_http(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: str | None = server) -> None:
            await _serve_http(r, w, s, name)

        servers.append(await asyncio.start_server(on_http, bind, port, reuse_address=True, backlog=512))
    for spec in raw:
        port, banner = _split(spec)

        async def on_raw(r: asyncio.StreamReader, w: asyncio.StreamWriter, b: str | None = banner) -> None:
            await _serve_raw(r, w, b)

        servers.append(await asyncio.start_server(on_raw, bind, port, reuse_address=True, backlog=512))
    sinks = [listening for spec in sink for listening in _sink(bind, _split(spec)[0])]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {bind}: http {http} raw {raw} sink {sink}", flush=True)
    await stop.wait()
    for server_ in servers:
        server_.close()
    for listening in sinks:
        loop.remove_reader(listening.fileno())
        listening.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", action="append", required=True, help="an address to listen on (repeatable)")
    parser.add_argument("--name", default="lab host")
    parser.add_argument("--lab", default="", help="the lab's workdir (only marks whose process this is)")
    parser.add_argument("--http", action="append", default=[], metavar="PORT[=SERVER]")
    parser.add_argument("--raw", action="append", default=[], metavar="PORT[=BANNER]")
    parser.add_argument("--sink", action="append", default=[], metavar="PORT")
    args = parser.parse_args()
    asyncio.run(_main(args.bind, args.http, args.raw, args.sink, args.name))


if __name__ == "__main__":
    main()
