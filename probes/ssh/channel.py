"""The channel layer of SSH: the command line sent, and driving one command on one channel.

``run_on_channel`` sends the command, answers sudo's password prompt once, collects stdout and
stderr under the output cap and the timeouts, and tells a sudo refusal (``SudoFailed``) from the
command's own result. It sees the channel only through the small ``CommandChannel`` protocol:
``ParamikoChannel`` adapts a paramiko channel, ``probes/ssh/replay.py`` replays a recorded
conversation, so the logic runs in unit tests without a server.
"""

from __future__ import annotations

import re
import select
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import paramiko

from midprobe.capabilities.errors import ChannelOpenFailed, ProbeError, ProbeTimeout, ReadTimeout, SudoFailed
from midprobe.probes.ssh.transport import translate_error

#: ``set_path`` default of the SSHCommand probe.
DEFAULT_PATH = "/usr/sbin:/usr/bin:/bin:/sbin"
#: Combined stdout + stderr kept per command; the command is stopped past it.
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
#: sudo's password prompt, chosen so it cannot be mistaken for command output.
SUDO_PROMPT = "[midprobe-sudo-password]"
#: The root shell prints this line on stderr before the command: sudo let it run.
SUDO_STARTED = "[midprobe-sudo-started]"
_READ_CHUNK = 65536
_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_./:+-]+$")
_STARTED_LINE = SUDO_STARTED.encode() + b"\n"
_PROMPT_PATTERN = re.compile(re.escape(SUDO_PROMPT.encode()) + b"\n?")


@dataclass(frozen=True)
class CommandOutput:
    """What one command printed and how it ended."""

    command: str
    stdout: str
    stderr: str
    #: None when the server sent no exit status (killed by a signal, or stopped by the output cap).
    exit_status: int | None
    truncated: bool
    elapsed_ms: float


@dataclass(frozen=True)
class CommandLimits:
    """The bounds of one command: the whole run, the longest silence, the output kept."""

    timeout: float
    channel_timeout: float
    max_output: int


@dataclass(frozen=True)
class Sudo:
    """A command to run under sudo: as whom (for messages) and the password to answer its prompt with."""

    user: str
    host: str
    password: str | None = field(default=None, repr=False)


def compose_command(command: str, *, set_path: str | None, must_sudo: bool, sudo_with_password: bool) -> str:
    """The command line sent to the server (pure).

    ``set_path`` puts those directories first on PATH. ``must_sudo`` runs the command
    as root: with a password credential, ``sudo -S`` reads the password we send on
    its prompt (the command itself gets /dev/null as stdin); with a key, ``sudo -n``.
    Under sudo the root shell first prints ``SUDO_STARTED`` on stderr, so everything
    on stderr before it is sudo's own (prompts, refusals) and everything after is the command's.
    """
    line = command
    if set_path:
        if not _PATH_PATTERN.match(set_path):
            raise ValueError("set_path may hold only letters, digits and _ . / : + -")
        line = f"PATH={set_path}:$PATH; export PATH; {command}"
    if not must_sudo:
        return line
    started = f"printf '%s\\n' {shlex.quote(SUDO_STARTED)} >&2; "
    if sudo_with_password:
        script = shlex.quote(f"{started}exec </dev/null; {line}")
        return f"sudo -S -p {shlex.quote(SUDO_PROMPT)} -- sh -c {script}"
    return f"sudo -n -- sh -c {shlex.quote(started + line)}"


def split_sudo_stderr(stderr: bytes) -> tuple[bytes, bytes | None]:
    """sudo's own stderr text without its prompts, and the command's stderr (None: not started) (pure).

    An unanswered prompt (sudo read end of input) is followed by the newline sudo then prints;
    it goes with the prompt.
    """
    head, found, tail = stderr.partition(_STARTED_LINE)
    return _PROMPT_PATTERN.sub(b"", head), (tail if found else None)


def sudo_failure_reason(sudo_text: str, *, with_password: bool, prompts: int, exit_status: int | None) -> str:
    """Why sudo did not start the command, from what it printed (pure)."""
    lines = [line.strip() for line in sudo_text.splitlines() if line.strip()]
    said = "; ".join(lines) or f"sudo ended with exit status {exit_status} and said nothing"
    if prompts > 1:
        return f"the password was not accepted ({said})"
    if not with_password and "password is required" in said:
        return f"{said} (a key login has no password to give sudo: it takes a NOPASSWD rule)"
    return said


class CommandChannel(Protocol):
    """One SSH session channel as ``run_on_channel`` drives it (all calls blocking, none unbounded)."""

    def exec_command(self, line: str) -> None:
        """Start ``line`` on the server."""

    def read_stdout(self) -> bytes:
        """The stdout bytes that arrived so far and were not read yet (b"" when none)."""

    def read_stderr(self) -> bytes:
        """The stderr bytes that arrived so far and were not read yet (b"" when none)."""

    def send_input(self, data: bytes) -> None:
        """Write ``data`` to the command's stdin."""

    def close_input(self) -> None:
        """Send end of input."""

    def is_closed(self) -> bool:
        """The channel is closed (by either side)."""

    def finished(self) -> bool:
        """Closed, or end of output received with nothing left unread."""

    def wait(self, timeout: float) -> None:
        """Return when output may have arrived, or after ``timeout`` seconds."""

    def wait_exit_status(self, timeout: float) -> int | None:
        """The exit status, waiting up to ``timeout`` seconds for it; None when the server sent none."""

    def close(self) -> None:
        """Close the channel."""


class ParamikoChannel:
    """``CommandChannel`` over a paramiko ``Channel``."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def exec_command(self, line: str) -> None:
        self._channel.exec_command(line)

    def read_stdout(self) -> bytes:
        data = bytearray()
        while self._channel.recv_ready():
            data += self._channel.recv(_READ_CHUNK)
        return bytes(data)

    def read_stderr(self) -> bytes:
        data = bytearray()
        while self._channel.recv_stderr_ready():
            data += self._channel.recv_stderr(_READ_CHUNK)
        return bytes(data)

    def send_input(self, data: bytes) -> None:
        self._channel.sendall(data)

    def close_input(self) -> None:
        self._channel.shutdown_write()

    def is_closed(self) -> bool:
        return bool(self._channel.closed)

    def finished(self) -> bool:
        channel = self._channel
        return bool(
            channel.closed
            or (channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready())
        )

    def wait(self, timeout: float) -> None:
        select.select([self._channel], [], [], timeout)

    def wait_exit_status(self, timeout: float) -> int | None:
        channel = self._channel
        channel.status_event.wait(timeout)
        if channel.status_event.is_set() and channel.exit_status >= 0:
            return int(channel.exit_status)
        return None

    def close(self) -> None:
        self._channel.close()


class ChannelHolder:
    """The channel one command runs on, for another thread to close: a cancelled or overdue command
    on a shared connection ends its own channel, not the connection (see ``SSHConnection.run``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channel: paramiko.Channel | None = None
        self._closed = False

    def hold(self, channel: paramiko.Channel) -> bool:
        """Keep ``channel``; False when the command was already ended (the caller closes it)."""
        with self._lock:
            if self._closed:
                return False
            self._channel = channel
            return True

    def close(self) -> None:
        """End the command: its channel now, or the channel as soon as it is open."""
        with self._lock:
            self._closed = True
            channel = self._channel
        if channel is not None:
            channel.close()


def run_command(
    transport: paramiko.Transport,
    command: str,
    line: str,
    *,
    sudo: Sudo | None,
    limits: CommandLimits,
    holder: ChannelHolder | None = None,
) -> CommandOutput:
    """Open a session channel on ``transport`` and run ``line`` on it (blocking: runs in the SSH pool).
    With a ``holder``, the channel is kept there for another thread to close."""
    started = time.monotonic()
    try:
        channel = transport.open_session(timeout=limits.channel_timeout)
    except Exception as error:
        what = f"opening a channel for command {command!r}"
        failure = translate_error(error, what, limits.channel_timeout)
        if isinstance(failure, ProbeTimeout):
            raise failure from None
        # The connection is gone or refuses channels: the command never started (a reused
        # connection may then be replaced and the command run once more, see connections.py).
        raise ChannelOpenFailed(str(failure)) from None
    if holder is not None and not holder.hold(channel):
        channel.close()
        raise ProbeError(f"command {command!r} was ended before it started")
    return run_on_channel(ParamikoChannel(channel), command, line, sudo=sudo, limits=limits, started=started)


def run_on_channel(
    channel: CommandChannel,
    command: str,
    line: str,
    *,
    sudo: Sudo | None,
    limits: CommandLimits,
    started: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CommandOutput:
    """Run ``line`` (``command`` composed by ``compose_command``) on ``channel``, then close it.

    Raises ``SudoFailed`` when sudo did not start the command, ``ReadTimeout`` past
    ``limits.timeout`` (the whole command) or ``limits.channel_timeout`` (silence), and the ``translate_error`` form of
    anything the channel raises.
    """
    try:
        return _drive(channel, command, line, clock() if started is None else started, sudo, limits, clock)
    except ProbeError:
        raise
    except Exception as error:
        raise translate_error(error, f"command {command!r}", limits.timeout) from None
    finally:
        channel.close()


def _drive(
    channel: CommandChannel,
    command: str,
    line: str,
    started: float,
    sudo: Sudo | None,
    limits: CommandLimits,
    clock: Callable[[], float],
) -> CommandOutput:
    timeout, channel_timeout, max_output = limits.timeout, limits.channel_timeout, limits.max_output
    channel.exec_command(line)
    # Input stays open only for sudo's password prompt; otherwise the command sees end of input
    # at once, as with ``ssh -n``.
    password = sudo.password if sudo is not None else None
    input_open = password is not None
    if not input_open:
        channel.close_input()
    prompt = SUDO_PROMPT.encode()
    sudo_started = sudo is None
    stdout, stderr = bytearray(), bytearray()
    deadline = started + timeout
    last_activity = clock()
    truncated = False
    while True:
        out, err = channel.read_stdout(), channel.read_stderr()
        progressed = bool(out or err)
        stdout += out
        stderr += err
        if not sudo_started and _STARTED_LINE in stderr:
            sudo_started = True
        if input_open and (sudo_started or prompt in stderr):
            # Answer sudo's first prompt, and only before the command started (with NOPASSWD the
            # marker comes first and the password is never sent); a second prompt (a refused
            # password) then reads end of input.
            if password is not None and not sudo_started and not channel.is_closed():
                channel.send_input((password + "\n").encode())
            channel.close_input()
            input_open = False
        if len(stdout) + len(stderr) > max_output:
            truncated = True
            stdout = stdout[:max_output]
            stderr = stderr[: max_output - len(stdout)]
            break
        if channel.finished():
            break
        now = clock()
        if progressed:
            last_activity = now
        waiting = ""
        if not sudo_started:
            unanswered = ", nor shown the password prompt midprobe answers" if input_open else ""
            waiting = f" (sudo had not started it{unanswered})"
        if now >= deadline:
            raise ReadTimeout(f"command {command!r}{waiting}", timeout)
        if now - last_activity >= channel_timeout:
            raise ReadTimeout(f"waiting for output of {command!r}{waiting}", channel_timeout)
        channel.wait(max(0.0, min(deadline - now, last_activity + channel_timeout - now)))
    exit_status: int | None = None
    if not truncated:
        exit_status = channel.wait_exit_status(max(0.0, min(deadline - clock(), 5.0)))
    if sudo is not None:
        sudo_text, command_stderr = split_sudo_stderr(bytes(stderr))
        if command_stderr is None and not truncated:
            reason = sudo_failure_reason(
                sudo_text.decode("utf-8", errors="replace"),
                with_password=sudo.password is not None,
                prompts=stderr.count(prompt),
                exit_status=exit_status,
            )
            raise SudoFailed(command, sudo.user, sudo.host, reason)
        # sudo's own warnings (e.g. "unable to resolve host") stay; its prompts and our marker go.
        stderr = bytearray(sudo_text + (command_stderr or b""))
    return CommandOutput(
        command=command,
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=stderr.decode("utf-8", errors="replace"),
        exit_status=exit_status,
        truncated=truncated,
        elapsed_ms=round((clock() - started) * 1000.0, 3),
    )
