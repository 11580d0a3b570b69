"""A pseudo-terminal for tests: what a program writes to it is read back as the screen a VT100 shows.

Either hand its writing end to in-process code (``writer``) and ``drain`` after each write, or
``run`` a command with stdin, stdout and stderr on it until the command exits.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

import pyte


class PseudoTerminal:
    def __init__(self, *, columns: int = 100, rows: int = 50) -> None:
        self.columns, self.rows = columns, rows
        self._master, self._slave = pty.openpty()
        fcntl.ioctl(self._slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.screen = pyte.Screen(columns, rows)
        self._stream = pyte.ByteStream(self.screen)
        self._writers: list[TextIO] = []

    def writer(self) -> TextIO:
        """A text file on the terminal's writing end (a terminal: ``isatty()`` is true); closed with it."""
        writer = os.fdopen(os.dup(self._slave), "w", encoding="utf-8")
        self._writers.append(writer)
        return writer

    def drain(self) -> None:
        """Feed the screen everything written so far (in-process writers have already returned)."""
        while select.select([self._master], [], [], 0)[0]:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every writing end is closed
                return
            if not chunk:
                return
            self._stream.feed(chunk)

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120.0
    ) -> int:
        """Run ``argv`` on the terminal until it exits (killed past ``timeout``); its exit status."""
        process = subprocess.Popen(
            argv,
            stdin=self._slave,
            stdout=self._slave,
            stderr=self._slave,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        os.close(self._slave)  # from now on EOF (EIO) on the reading end means the command is gone
        self._slave = -1
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not select.select([self._master], [], [], 0.5)[0]:
                    if process.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self._stream.feed(chunk)
            else:
                process.kill()
        finally:
            code = process.wait(timeout=10)
        return code

    def lines(self) -> list[str]:
        """The screen's rows, trailing blanks removed, trailing empty rows dropped."""
        shown = [row.rstrip() for row in self.screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> PseudoTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
