"""A lab client that keeps one TCP connection open to another lab host's service.

``python3 -I connector.py --lab WORKDIR --name linux1 --connect 198.18.0.12:9100``: connects, writes one short
line every few seconds (so the service's idle timeout never closes it), and connects again
after a second when the other side closes. It gives application dependency mapping a real,
lasting connection to find (``ss -tnp state established`` on the client, its process named).
"""

from __future__ import annotations

import argparse
import socket
import time

#: Seconds between two lines (the lab listener closes a connection idle for 30 s).
KEEPALIVE_SECONDS = 5.0
RECONNECT_SECONDS = 1.0


def hold(address: str, port: int, name: str) -> None:
    """Keep a connection to ``address:port`` open until the process is stopped."""
    while True:
        try:
            with socket.create_connection((address, port), timeout=5) as connection:
                print(f"{name}: connected to {address}:{port}", flush=True)
                while True:
                    connection.sendall(f"{name} is here\n".encode())
                    time.sleep(KEEPALIVE_SECONDS)
        except OSError as error:
            print(f"{name}: {address}:{port}: {error}", flush=True)
        time.sleep(RECONNECT_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--connect", required=True, metavar="ADDRESS:PORT")
    parser.add_argument("--lab", default="", help="the lab's workdir (only marks whose process this is)")
    args = parser.parse_args()
    address, _, port = args.connect.rpartition(":")
    hold(address, int(port), args.name)


if __name__ == "__main__":
    main()
