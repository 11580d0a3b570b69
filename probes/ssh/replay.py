"""Recorded SSH command conversations: record one off a live channel, replay it without a server.

A transcript is the sequence of what the server sent (``stdout``, ``stderr``, ``exit``, ``eof``,
``close``, and ``silence`` for time without output) and what the client did (``exec``, ``send``,
``eof``, ``close``), as JSON (``fixtures/ssh/sudo/*.json``). Secrets never appear in one: the
recorder writes ``REDACTED`` where the password was sent, and the replay stands the password
of the test in for it.

``ReplayChannel`` is a ``CommandChannel`` (``channel.py``): server events arrive while the client
waits (``wait``, ``wait_exit_status``), all of them up to the next client event, which is a
barrier the script stays at until the client does just that. Time is a ``ReplayClock`` the replay advances: waiting while the script
is stalled (at a barrier, at its end, or in a ``silence``) moves the clock by the time waited, so
timeouts run in no real time. What the client did that the script did not expect is kept in
``unexpected``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midprobe.probes.ssh.channel import CommandChannel

#: Stands in a transcript for the secret the client sent.
REDACTED = "<secret>"

_SERVER_KINDS = frozenset({"stdout", "stderr", "exit", "eof", "close", "silence"})
_CLIENT_KINDS = frozenset({"exec", "send", "eof", "close"})


@dataclass(frozen=True)
class Event:
    """One step of a conversation: ``side`` is "server" or "client"."""

    side: str
    kind: str
    data: str = ""
    #: ``exit``: the exit status; ``silence``: seconds without output.
    value: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.side: self.kind}
        if self.data:
            out["data"] = self.data
        if self.kind == "exit":
            out["status"] = int(self.value)
        if self.kind == "silence":
            out["seconds"] = self.value
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Event:
        if "server" in raw:
            side, kind = "server", str(raw["server"])
            if kind not in _SERVER_KINDS:
                raise ValueError(f"unknown server event {kind!r}")
        elif "client" in raw:
            side, kind = "client", str(raw["client"])
            if kind not in _CLIENT_KINDS:
                raise ValueError(f"unknown client event {kind!r}")
        else:
            raise ValueError(f"an event names neither server nor client: {dict(raw)!r}")
        value = float(raw.get("status", raw.get("seconds", 0.0)))
        return cls(side, kind, str(raw.get("data", "")), value)


@dataclass(frozen=True)
class Transcript:
    """A recorded conversation and what it was recorded with (no secrets)."""

    about: str
    command: str
    #: "password" or "key": the credential the recording logged in with.
    credential: str
    user: str
    host: str
    events: tuple[Event, ...]

    @classmethod
    def load(cls, path: Path) -> Transcript:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            about=str(raw["about"]),
            command=str(raw["command"]),
            credential=str(raw["credential"]),
            user=str(raw["user"]),
            host=str(raw["host"]),
            events=tuple(Event.from_json(event) for event in raw["events"]),
        )

    def dump(self) -> str:
        body = {
            "about": self.about,
            "command": self.command,
            "credential": self.credential,
            "user": self.user,
            "host": self.host,
            "events": [event.to_json() for event in self.events],
        }
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


class ReplayClock:
    """A monotonic clock that moves only when the replay waits."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass
class ReplayChannel:
    """A ``CommandChannel`` that plays ``transcript`` back (see the module docstring)."""

    transcript: Transcript
    secret: str = field(default="", repr=False)
    clock: ReplayClock = field(default_factory=ReplayClock)
    #: What the client did, in order (``send`` data with the secret replaced by the marker).
    client_log: list[Event] = field(default_factory=list)
    #: Client actions the script did not expect at that point.
    unexpected: list[str] = field(default_factory=list)
    _position: int = 0
    _silence_left: float = -1.0
    _stdout: bytearray = field(default_factory=bytearray)
    _stderr: bytearray = field(default_factory=bytearray)
    _eof: bool = False
    _closed: bool = False
    _client_closed: bool = False
    _exit_status: int | None = None

    def _deliver(self) -> None:
        """Apply the server events up to the next client event or silence."""
        events = self.transcript.events
        while self._position < len(events) and events[self._position].side == "server":
            event = events[self._position]
            if event.kind == "silence":
                if self._silence_left < 0:
                    self._silence_left = event.value
                if self._silence_left > 0:
                    return
                self._silence_left = -1.0
            elif event.kind == "stdout":
                self._stdout += event.data.encode()
            elif event.kind == "stderr":
                self._stderr += event.data.encode()
            elif event.kind == "exit":
                self._exit_status = int(event.value)
            elif event.kind == "eof":
                self._eof = True
            elif event.kind == "close":
                self._closed = True
            self._position += 1

    def _client(self, kind: str, data: str = "") -> None:
        shown = data.replace(self.secret, REDACTED) if self.secret else data
        self.client_log.append(Event("client", kind, shown))
        events = self.transcript.events
        expected = events[self._position] if self._position < len(events) else None
        if expected is not None and expected.kind == kind and expected.data == shown:
            self._position += 1
            return
        wanted = f"{expected.kind} {expected.data!r}" if expected is not None else "nothing (script ended)"
        self.unexpected.append(f"client {kind} {shown!r}, the script expected {wanted}")

    def _stalled(self) -> bool:
        return not self._stdout and not self._stderr and not self.finished()

    # -- CommandChannel ----------------------------------------------------------------------

    def exec_command(self, line: str) -> None:
        self._client("exec", line)

    def read_stdout(self) -> bytes:
        data, self._stdout = bytes(self._stdout), bytearray()
        return data

    def read_stderr(self) -> bytes:
        data, self._stderr = bytes(self._stderr), bytearray()
        return data

    def send_input(self, data: bytes) -> None:
        self._client("send", data.decode("utf-8", errors="replace"))

    def close_input(self) -> None:
        self._client("eof")

    def is_closed(self) -> bool:
        return self._closed

    def finished(self) -> bool:
        return self._closed or (self._eof and not self._stdout and not self._stderr)

    def wait(self, timeout: float) -> None:
        before = self._position
        self._deliver()
        if self._position != before or not self._stalled():
            return
        if self._silence_left > 0:
            waited = min(timeout, self._silence_left)
            self._silence_left -= waited
            self.clock.advance(waited)
            self._deliver()
        else:
            self.clock.advance(timeout)

    def wait_exit_status(self, timeout: float) -> int | None:
        self._deliver()
        if self._exit_status is None:
            self.clock.advance(timeout)
        return self._exit_status

    def close(self) -> None:
        if not self._client_closed:
            self._client("close")
        self._client_closed = self._closed = True


class RecordingChannel:
    """A ``CommandChannel`` that passes every call to ``inner`` and notes the conversation."""

    def __init__(self, inner: CommandChannel, *, secret: str) -> None:
        self._inner = inner
        self._secret = secret
        self.events: list[Event] = []
        self._exit_noted = False
        self._eof_noted = False

    def _note(self, side: str, kind: str, data: str = "", value: float = 0.0) -> None:
        if self._secret:
            data = data.replace(self._secret, REDACTED)
        previous = self.events[-1] if self.events else None
        if previous is not None and previous.side == side == "server" and previous.kind == kind and data:
            self.events[-1] = Event(side, kind, previous.data + data)  # one event per burst of output
            return
        self.events.append(Event(side, kind, data, value))

    def exec_command(self, line: str) -> None:
        self._note("client", "exec", line)
        self._inner.exec_command(line)

    def read_stdout(self) -> bytes:
        data = self._inner.read_stdout()
        if data:
            self._note("server", "stdout", data.decode("utf-8", errors="replace"))
        return data

    def read_stderr(self) -> bytes:
        data = self._inner.read_stderr()
        if data:
            self._note("server", "stderr", data.decode("utf-8", errors="replace"))
        return data

    def send_input(self, data: bytes) -> None:
        self._note("client", "send", data.decode("utf-8", errors="replace"))
        self._inner.send_input(data)

    def close_input(self) -> None:
        self._note("client", "eof")
        self._inner.close_input()

    def is_closed(self) -> bool:
        return self._inner.is_closed()

    def finished(self) -> bool:
        done = self._inner.finished()
        if done and not self._eof_noted:
            self._eof_noted = True
            self._note("server", "close" if self._inner.is_closed() else "eof")
        return done

    def wait(self, timeout: float) -> None:
        self._inner.wait(timeout)

    def wait_exit_status(self, timeout: float) -> int | None:
        status = self._inner.wait_exit_status(timeout)
        if status is not None and not self._exit_noted:
            self._exit_noted = True
            self._note("server", "exit", value=status)
        return status

    def close(self) -> None:
        self._note("client", "close")
        self._inner.close()


def transcript_events(events: Sequence[Event]) -> tuple[Event, ...]:
    """``events`` as a replayable script: the exit status before the end of output it came with."""
    ordered = list(events)
    exits = [event for event in ordered if event.kind == "exit"]
    ends = [i for i, event in enumerate(ordered) if event.side == "server" and event.kind in {"eof", "close"}]
    if exits and ends:
        ordered.remove(exits[0])
        ordered.insert(ends[0], exits[0])
    return tuple(ordered)
