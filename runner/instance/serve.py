"""Running the instance: the listen address, the TLS folder's default, and uvicorn serving HTTPS.

``serve`` opens the queue and the users, binds the socket itself (so ``--listen HOST:0`` gets a
free port and the URL printed is the real one), and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from midprobe.capabilities.config import CapabilityConfig
from midprobe.capabilities.errors import ConfigError
from midprobe.runner.instance.client_certs import VERIFY_MODES, ClientCertMode, client_certificate_protocol
from midprobe.runner.instance.tls import TlsFiles
from midprobe.runner.queue.url import SqliteLocation, parse_queue_url

DATABASE_CONNECTIONS = 8
"""PostgreSQL connections the instance's queue calls share (agents' requests run side by side)."""
if TYPE_CHECKING:
    from midprobe.probes.credentials.sealing import MidKeyPair
    from midprobe.runner.instance.agent_api import WireLog
    from midprobe.runner.instance.wheels import WheelShelf

_WILDCARDS = ("0.0.0.0", "::")  # noqa: S104  (names of the wildcard addresses, compared against, never bound here)


@dataclass(frozen=True)
class ListenAddress:
    """Where the instance listens: ``host`` (an IP address or a name) and ``port`` (0: any free port)."""

    host: str
    port: int

    @property
    def certificate_hosts(self) -> tuple[str, ...]:
        """The names the server certificate carries: this host (unless a wildcard) and the loopback ones."""
        names = () if self.host in _WILDCARDS else (self.host,)
        return (*names, "localhost", "127.0.0.1", "::1")

    def url(self, port: int) -> str:
        shown = "127.0.0.1" if self.host == "0.0.0.0" else "::1" if self.host == "::" else self.host  # noqa: S104
        return f"https://[{shown}]:{port}" if ":" in shown else f"https://{shown}:{port}"


def parse_listen(text: str) -> ListenAddress:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> ``ListenAddress``; ``ConfigError`` naming ``--listen`` if bad."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)", field="--listen")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{host!r} is not an IPv6 address", field="--listen") from None
    elif ":" in host:
        raise ConfigError("write an IPv6 address in brackets: [::1]:8443", field="--listen")
    elif not all(part.isascii() and (part.isalnum() or part in ("-", ".")) for part in host):
        raise ConfigError(f"{host!r} is not a host name or address", field="--listen")
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ConfigError(f"{port!r} is not a port (0 to 65535)", field="--listen")
    return ListenAddress(host, int(port))


def default_tls_folder(queue_url: str) -> Path:
    """Next to a SQLite database: ``<folder>/<name>-tls``; any other queue needs ``--tls-dir``."""
    location = parse_queue_url(queue_url)
    if isinstance(location, SqliteLocation) and not location.in_memory:
        database = Path(location.path)
        return database.parent / f"{database.stem}-tls"
    raise ConfigError(
        "give --tls-dir (or --cert and --key): the queue is not a database file", field="--tls-dir"
    )


def bind(address: ListenAddress) -> socket.socket:
    """A listening TCP socket on ``address`` (``ConfigError`` when the address cannot be bound)."""
    try:
        family, kind, protocol, _, where = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, protocol)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {address.host}: {error.strerror or error}", field="--listen"
        ) from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a response's TLS records, written apart,
        # wait for the client's delayed ACK (40 ms on Linux), and every request took 45 ms.
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind(where)
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"cannot listen on {address.host}:{address.port}: {error.strerror or error}", field="--listen"
        ) from None
    return listener


def serve(
    queue_url: str,
    address: ListenAddress,
    tls: TlsFiles,
    *,
    announce: Callable[[str], None],
    max_body_bytes: int | None = None,
    capabilities: CapabilityConfig | None = None,
    client_certs: ClientCertMode = "off",
    credentials: Mapping[str, Any] | None = None,
    wire_log: WireLog | None = None,
    credentials_key: MidKeyPair | None = None,
    wheels: WheelShelf | None = None,
) -> None:
    """Serve the Table API, the agent endpoints and the console (``/console``) over HTTPS on ``address`` until SIGTERM/SIGINT.

    ``announce`` gets the URL line. ``capabilities`` (clusters, selection rules) apply to every
    discovery started without a capabilities file of its own; discoveries left active by an
    earlier run resume at once. ``client_certs``: whether a connection may (``optional``) or
    must (``required``) present a client certificate signed by the instance's CA (``tls.ca``).
    ``credentials`` (a portable credentials document) is sealed to each validated MID that asks
    for it; ``wire_log``: a file of every agent request and answer. ``credentials_key``: the
    instance's own key pair, the discovery credentials it keeps are sealed to it at rest;
    ``wheels``: the midprobe wheels served to MIDs for their upgrades.
    """
    import uvicorn

    from midprobe.runner.cmdb.database import open_database
    from midprobe.runner.cmdb.store import CmdbStore
    from midprobe.runner.instance.api import MAX_BODY_BYTES, create_app
    from midprobe.runner.instance.auth import open_users
    from midprobe.runner.instance.cmdb_tables import cmdb_tables
    from midprobe.runner.instance.console import instance_console
    from midprobe.runner.instance.discoveries import DiscoveryService
    from midprobe.runner.instance.mid_tables import mid_tables
    from midprobe.runner.instance.throttle import LoginThrottle
    from midprobe.runner.instance.wake import WorkSignal
    from midprobe.runner.queue.url import open_queue

    mutual: dict[str, Any] = {}
    if client_certs != "off":
        if tls.ca is None:
            raise ConfigError(
                "client certificates are the instance CA's: --client-certs needs --tls-dir, not --cert/--key",
                field="--client-certs",
            )
        mutual = {
            "ssl_cert_reqs": VERIFY_MODES[client_certs],
            "ssl_ca_certs": str(tls.ca),
            "http": client_certificate_protocol(),
        }
    listener = bind(address)
    try:
        with open_queue(queue_url, connections=DATABASE_CONNECTIONS) as queue, open_users(queue_url) as users:
            work_signal = WorkSignal()
            throttle = LoginThrottle()  # the API's basic auth and the console's log-in form share it
            database = open_database(queue_url)
            discoveries = DiscoveryService(
                queue, database, capabilities=capabilities, signal=work_signal, key=credentials_key
            )
            app = create_app(
                queue,
                users,
                max_body_bytes=max_body_bytes or MAX_BODY_BYTES,
                signal=work_signal,
                discoveries=discoveries,
                tables=[*cmdb_tables(CmdbStore(database)), *mid_tables(queue, database, capabilities)],
                console=instance_console(
                    queue, users, database, discoveries, signal=work_signal, throttle=throttle
                ),
                throttle=throttle,
                ca_pem=None if tls.ca is None else tls.ca.read_text(encoding="ascii"),
                credentials=credentials,
                wire_log=wire_log,
                wheels=wheels,
            )
            config = uvicorn.Config(
                app,
                ssl_certfile=str(tls.certificate),
                ssl_keyfile=str(tls.key),
                log_level="warning",
                lifespan="off",
                access_log=False,
                **mutual,
            )
            announce(address.url(listener.getsockname()[1]))
            # uvicorn shuts down gracefully on SIGTERM, then raises it again for the handler it found:
            # this one ignores it, so a SIGTERM ends the command with status 0.
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
            discoveries.start_background()  # resumes every discovery an earlier run left Active
            try:
                uvicorn.Server(config).run(sockets=[listener])
            finally:
                signal.signal(signal.SIGTERM, previous)
                discoveries.stop_background()
                database.close()
    finally:
        listener.close()


__all__ = ["ListenAddress", "bind", "default_tls_folder", "parse_listen", "serve"]
