"""A private PostgreSQL server for the tests, started from the Debian package binaries.

It lives in a temporary folder (data and unix socket), listens only on 127.0.0.1 on
a port the kernel chose for us, runs with fsync off, and is stopped and deleted at
the end. It refuses to run as root, so as root it runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

POSTGRES_VERSION = "15"
BIN_DIR = Path(f"/usr/lib/postgresql/{POSTGRES_VERSION}/bin")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
OS_USER = "postgres"
DB_USER = "midprobe"
DB_NAME = "midprobe"


class PostgresUnavailable(RuntimeError):
    """The harness cannot provide a server; the message says what to install or check."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivatePostgres:
    """One throw-away PostgreSQL server; ``start()`` returns the URL of its ``midprobe`` database."""

    bin_dir: Path = BIN_DIR
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    base: Path | None = None
    _process: subprocess.Popen[bytes] | None = None
    _run_as: dict[str, Any] = field(default_factory=dict)

    def url(self, database: str = DB_NAME) -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while the server runs (its backends are its children)."""
        return None if self._process is None else self._process.pid

    def _check_binaries(self) -> None:
        missing = [name for name in ("initdb", "postgres") if not (self.bin_dir / name).is_file()]
        if missing:
            raise PostgresUnavailable(
                f"PostgreSQL {POSTGRES_VERSION} is not installed ({', '.join(missing)} missing from "
                f"{self.bin_dir}); install the Debian package 'postgresql' (make system-deps)"
            )
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(OS_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root but there is no '{OS_USER}' OS user to run PostgreSQL as "
                    "(the Debian package 'postgresql' creates it)"
                ) from None
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._run_as:
            os.chown(path, self._run_as["user"], self._run_as["group"])

    def start(self) -> str:
        self._check_binaries()
        self.base = Path(tempfile.mkdtemp(prefix="midprobe-pg-"))
        atexit.register(self.stop)
        data, sockets, pwfile = self.base / "data", self.base / "sock", self.base / "pwfile"
        sockets.mkdir()
        pwfile.write_text(self.password + "\n")
        for path in (self.base, sockets, pwfile):
            self._chown(path)
        initdb = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                DB_USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            timeout=120,
            check=False,
            cwd=self.base,
            **self._run_as,
        )
        if initdb.returncode != 0:
            tail = initdb.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise PostgresUnavailable(f"initdb failed: {' | '.join(tail)}")
        for _attempt in range(3):
            self.port = _free_port()
            if self._launch(data, sockets):
                break
        else:
            raise PostgresUnavailable(f"PostgreSQL did not start; log: {self._log_tail()}")
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{DB_NAME}"')
        return self.url()

    def _launch(self, data: Path, sockets: Path) -> bool:
        assert self.base is not None
        log = (self.base / "postgres.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={sockets}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=60",
                    "-c",
                    "shared_buffers=32MB",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                start_new_session=True,  # a Ctrl-C in the terminal must not kill it before teardown
                **self._run_as,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False  # e.g. the port was taken between choosing and binding: try another
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise PostgresUnavailable(
            f"PostgreSQL did not accept connections within {START_TIMEOUT_S:g} s; log: {tail}"
        )

    def _log_tail(self) -> str:
        if self.base is None:
            return ""
        try:
            lines = (self.base / "postgres.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:])

    def create_schema(self) -> str:
        """A new empty schema in the ``midprobe`` database; returns a URL whose ``search_path`` is it.

        Much cheaper than a database (milliseconds, not half a second) and just as
        isolated for everything that connects through the URL.
        """
        schema = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        return f"{self.url()}?options=-csearch_path%3D{schema}"

    def drop_schema(self, url: str) -> None:
        """Drop the schema ``create_schema`` made for ``url`` (best effort: the server is thrown away anyway)."""
        schema = url.rsplit("%3D", 1)[1]
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin,
        ):
            admin.execute("SET lock_timeout = '5s'")
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def create_database(self, name: str | None = None) -> str:
        """A new empty database on this server; returns its URL."""
        database = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it lingers; then delete the folder. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
