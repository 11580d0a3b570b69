"""A TCP forward from a 127.0.0.1 port of this machine to one address inside a lab namespace.

What lets a browser on the machine reach a service that runs only inside the lab (the demo's
instance and its console on 198.18.0.1): the listening socket is the caller's (bound to
127.0.0.1 in the machine's own namespace, handed over as a file descriptor), and every
connection to it is relayed to the one target, dialled from a thread inside the lab namespace.
The target must be a lab address (198.18.0.0/15, 2001:db8::/32) or the namespace's loopback, so
the forward reaches nothing outside the lab. Connections are bounded in number and in idle time.

``python -m midprobe.runner.lab.forward --fd N --namespace NS --target HOST:PORT --log FILE``
serves until SIGTERM (``midprobe lab down`` ends it: its log lives in the lab's folder).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
from pathlib import Path
from typing import Final

from midprobe.capabilities.errors import LabError
from midprobe.runner.lab.netns import NAMESPACE_PATTERN, NamespaceThread

MAX_CONNECTIONS: Final = 64
"""Connections relayed at once; one more is closed at once."""
IDLE_SECONDS: Final = 300.0
"""A relayed connection with no byte either way for this long is closed."""
CONNECT_SECONDS: Final = 10.0
CHUNK: Final = 65536
_LAB_NETWORKS: Final = (
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("2001:db8::/32"),
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def check_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) of a lab address; ``LabError`` for anything else."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise LabError(f"forward target {text!r} is not ADDRESS:PORT") from None
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise LabError(f"forward target {text!r} has no port (1 to 65535)")
    if not any(address in network for network in _LAB_NETWORKS):
        raise LabError(f"forward target {host} is not a lab address (198.18.0.0/15, 2001:db8::/32, loopback)")
    return str(address), int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await asyncio.wait_for(reader.read(CHUNK), IDLE_SECONDS):
            writer.write(chunk)
            await writer.drain()
    except (OSError, TimeoutError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


class Forward:
    """Relays each connection accepted on ``listener`` to ``target``, dialled inside ``thread``'s namespace."""

    def __init__(self, listener: socket.socket, thread: NamespaceThread, target: tuple[str, int]) -> None:
        self._listener = listener
        self._thread = thread
        self._target = target
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    def _dial(self) -> socket.socket:
        return socket.create_connection(self._target, timeout=CONNECT_SECONDS)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            writer.close()
            return
        async with self._slots:
            try:
                dialled = await asyncio.wrap_future(self._thread.submit(self._dial))
                dialled.setblocking(False)
                target_reader, target_writer = await asyncio.open_connection(sock=dialled)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))

    async def serve(self, stop: asyncio.Event) -> None:
        self._listener.setblocking(False)
        server = await asyncio.start_server(self._relay, sock=self._listener)
        async with server:
            await stop.wait()


async def _main(listener: socket.socket, thread: NamespaceThread, target: tuple[str, int]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Forward(listener, thread, target).serve(stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m midprobe.runner.lab.forward", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket (127.0.0.1), inherited")
    parser.add_argument("--namespace", required=True, help="the lab namespace the target is in")
    parser.add_argument("--target", required=True, help="ADDRESS:PORT inside that namespace")
    parser.add_argument("--log", type=Path, required=True, help="where errors are written (the lab's folder)")
    arguments = parser.parse_args(argv)
    with arguments.log.open("a", encoding="utf-8") as log:
        try:
            if not NAMESPACE_PATTERN.fullmatch(arguments.namespace):
                raise LabError(f"{arguments.namespace!r} is not a lab namespace")
            target = check_target(arguments.target)
            listener = socket.socket(fileno=arguments.fd)
            host = listener.getsockname()[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise LabError(f"the forward listens on loopback only, not on {host}")
            with NamespaceThread(arguments.namespace) as thread:
                asyncio.run(_main(listener, thread, target))
        except LabError as error:
            print(f"forward: {error}", file=log)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CONNECT_SECONDS", "IDLE_SECONDS", "MAX_CONNECTIONS", "Forward", "check_target", "main"]
