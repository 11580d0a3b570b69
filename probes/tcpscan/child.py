"""Running a scan engine in a child process, its hosts streamed back over a pipe.

An engine's time is system calls (a send per probe, a read per answer) with the interpreter lock
held between them. On a thread it takes turns at that lock with everything else the process does
(the agent encoding each page, the queue, the scan's report and output lines): a routed /18 x 10
ports took the whole ``midprobe scan`` about 1.7 times as long as the engine alone. In a child
process the engine has an interpreter of its own, and the machine's second core does the rest.

The child is forked from the calling thread, so it is in that thread's network namespace (the
lab's), and it runs only the engine, already imported, on the arguments it was given. It sends
each host as it is decided (a length-prefixed pickle), then the end of the scan or the error that
ended it (errors are pickled as raised: ``MidprobeError.__reduce__``), and leaves with
``os._exit`` (no exit handlers, none of the parent's buffered output written twice). It ignores
SIGINT (the parent decides when a scan stops, and stops it), and dies with the thread that forked
it (``PR_SET_PDEATHSIG``), so a killed agent leaves no scan running behind it. The reading side
(:meth:`ChildScan.hosts`) is a generator like an engine's own ``scan``, on one thread; stopping the
scan from another (:meth:`ChildScan.end`) kills the child, which ends the read it waits in, and the
reader reaps it.

Only an engine that touches nothing of the caller's but its arguments runs apart (``separable``:
the real engines with their own sockets); an engine given its own sender or socket factory (a
test's) runs on the caller's thread, where the caller sees what it does.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import pickle
import signal
import struct
import threading
import warnings
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Final, NoReturn

from midprobe.capabilities.errors import MidprobeError, ProbeError
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import HostScan, ScanEngine, ScanOptions, StopFlag

__all__ = ["ChildScan", "separable"]

#: What one frame holds: a host, the end of the scan, or the error that ended it.
_HOST: Final = 0
_END: Final = 1
_ERROR: Final = 2
_LENGTH = struct.Struct("<I")
#: Bytes read from the pipe at once (many hosts' frames).
_READ_SIZE: Final = 1 << 16
#: ``prctl(2)``: the signal a process gets when the thread that forked it ends.
_PR_SET_PDEATHSIG: Final = 1


def separable(engine: ScanEngine) -> bool:
    """Whether ``engine`` may run in a child process (its ``separable`` says so; an engine without
    one, such as a test's stand-in, runs on the caller's thread)."""
    return bool(getattr(engine, "separable", False))


class ChildScan:
    """``engine.scan(targets, ports, options)`` in a child process: :meth:`hosts` forks it and reads
    each host as the child decides it (the child's error raised there), on one thread; :meth:`end`,
    from any thread, kills the child, so a reader waiting for it returns."""

    def __init__(
        self, engine: ScanEngine, targets: Iterable[Target], ports: Sequence[int], options: ScanOptions
    ) -> None:
        self.engine = engine
        self.targets = targets
        self.ports = ports
        self.options = options
        self._lock = threading.Lock()
        #: The child, while it may still run: a pidfd is never another process, even once reaped.
        self._pidfd: int | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        """:meth:`end` was called."""
        return self._ended

    def end(self) -> None:
        """Stop the scan: the child is killed (now, or as soon as it is forked)."""
        with self._lock:
            self._ended = True
            if self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def hosts(self, stop: StopFlag | None = None) -> Generator[HostScan, None, None]:
        """Every host of the scan, then its end (a process that cannot fork scans on this thread
        instead, ``stop`` ending it); closing the generator kills the child and reaps it."""
        die_with_parent = _prctl()  # looked up here: the child neither imports nor opens a library
        if self.ended:
            return
        parent = os.getpid()
        read_end, write_end = os.pipe()
        try:
            with warnings.catch_warnings():
                # Python 3.12 warns of fork() in a process with threads: the child here runs only
                # code already imported and touches no lock another thread may hold.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            yield from self.engine.scan(self.targets, self.ports, self.options, stop=stop)
            return
        if pid == 0:
            os.close(read_end)
            _child(write_end, parent, die_with_parent, self.engine, self.targets, self.ports, self.options)
        os.close(write_end)
        with self._lock:
            self._pidfd = os.pidfd_open(pid)
        if self._ended:  # ended as it forked: killed now, nothing read
            self.end()
        finished = False
        try:
            for kind, value in _frames(read_end, self):
                if kind == _HOST:
                    assert isinstance(value, HostScan)
                    yield value
                    continue
                finished = True
                if kind == _ERROR:
                    assert isinstance(value, BaseException)
                    raise value
                return
        finally:
            os.close(read_end)
            if not finished:
                self.end()
            with contextlib.suppress(ChildProcessError):  # another reaper (waitpid(-1)) took it
                os.waitpid(pid, 0)
            with self._lock:
                assert self._pidfd is not None
                os.close(self._pidfd)
                self._pidfd = None


def _frames(fd: int, scan: ChildScan) -> Generator[tuple[int, object], None, None]:
    """The child's frames as they come, until its pipe closes: ended on purpose (``scan.end``), or
    a ``ProbeError`` (something else killed the child)."""
    buffer = bytearray()
    while True:
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            if scan.ended:
                return
            raise ProbeError("the port scan's engine process ended before the scan did")
        buffer += chunk
        offset = 0
        with memoryview(buffer) as view:
            while len(buffer) - offset >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer, offset)
                start = offset + _LENGTH.size
                if len(buffer) - start < size:
                    break
                # From our own child, over a pipe only it and this thread hold.
                frame = pickle.loads(view[start : start + size])  # noqa: S301
                offset = start + size
                yield frame
        del buffer[:offset]


def _child(
    fd: int,
    parent: int,
    prctl: Callable[..., int],
    engine: ScanEngine,
    targets: Iterable[Target],
    ports: Sequence[int],
    options: ScanOptions,
) -> NoReturn:
    """The child's whole life: scan, send every host and the end (or the error), exit."""
    status = 0
    try:
        _detach(parent, prctl)
        for host in engine.scan(targets, ports, options):
            _send(fd, (_HOST, host))
        _send(fd, (_END, None))
    except BrokenPipeError:  # the reading side is gone: nobody wants the rest
        status = 1
    except BaseException as error:  # every failure goes to the parent, raised there
        try:
            _send(fd, (_ERROR, _portable(error)))
        except BaseException:
            status = 1
    finally:
        os._exit(status)


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's ``prctl(2)``."""
    import ctypes

    function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return function


def _detach(parent: int, prctl: Callable[..., int]) -> None:
    """Signals as a child scan wants them, and an end tied to the thread that forked it."""
    signal.set_wakeup_fd(-1)  # the parent's event loop hears its own signals, not the child's
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before the line above
        os._exit(1)
    # What the parent made stays put: no collection walks it (its pages stay shared), none frees it.
    gc.freeze()


def _send(fd: int, frame: tuple[int, object]) -> None:
    data = pickle.dumps(frame, pickle.HIGHEST_PROTOCOL)
    out = memoryview(_LENGTH.pack(len(data)) + data)
    while out:
        out = out[os.write(fd, out) :]


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling as it is (every ``MidprobeError`` does), else a
    ``ProbeError`` that names it."""
    if isinstance(error, MidprobeError):
        return error
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301  (what this process just wrote)
    except Exception:
        return ProbeError(f"the port scan's engine failed: {type(error).__name__}: {error}")
    return error
