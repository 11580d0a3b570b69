"""Network-namespace plumbing: ``ip netns``/veth/bridge commands and ``setns(2)`` on a dedicated thread.

Everything here shells out to iproute2 (``ip``), except ``NamespaceThread`` which calls
``setns(2)`` through ctypes so in-process code (sockets, asyncio) runs inside a namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import queue
import re
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from midprobe.capabilities.errors import LabError

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
#: ``ip netns exec NAME`` bind-mounts ``/etc/netns/NAME/resolv.conf`` over ``/etc/resolv.conf``.
NETNS_ETC = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
# Every namespace a lab creates is named "<prefix>-<role>", the prefix being "mp" + 6 hex digits.
PREFIX_PATTERN = re.compile(r"^mp[0-9a-f]{6}$")
NAMESPACE_PATTERN = re.compile(r"^(mp[0-9a-f]{6})-[a-z0-9-]+$")
IP_TIMEOUT = 20.0


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    """Run one ``ip`` command (in ``namespace`` when given); return its stdout."""
    argv = ["ip", *(["-n", namespace] if namespace else []), *args]
    return _run(argv, check=check)


def ip_batch(lines: Iterable[str], *, namespace: str | None = None) -> None:
    """Run many ``ip`` commands in one process (``ip -batch -``); fast for hundreds of addresses."""
    argv = ["ip", *(["-n", namespace] if namespace else []), "-batch", "-"]
    _run(argv, check=True, input="\n".join(lines) + "\n")


def _run(argv: Sequence[str], *, check: bool, input: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=IP_TIMEOUT, input=input, check=False
        )
    except FileNotFoundError as error:
        raise LabError(f"{argv[0]} is not installed (iproute2 is needed for the lab)") from error
    except subprocess.TimeoutExpired as error:
        raise LabError(f"{' '.join(argv[:6])} did not finish within {IP_TIMEOUT:g} s") from error
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def list_namespaces() -> list[str]:
    """Names of every named network namespace on the machine (``ip netns list``)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in NETNS_DIR.iterdir())


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add_namespace(name: str) -> None:
    """Create ``name`` with its loopback up (a fresh namespace's loopback is down)."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", namespace=name)


def delete_namespace(name: str) -> None:
    """Delete ``name`` if it exists (and its resolver file); veth pairs with an end in it disappear with it."""
    if namespace_exists(name):
        ip("netns", "delete", name, check=False)
    if NAMESPACE_PATTERN.fullmatch(name):
        (NETNS_ETC / name / "resolv.conf").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # absent, or holding files midprobe did not write
            (NETNS_ETC / name).rmdir()


def set_resolver(name: str, server: str) -> None:
    """Commands run with ``ip netns exec name`` resolve names through ``server`` only."""
    if not NAMESPACE_PATTERN.fullmatch(name):
        raise LabError(f"{name!r} is not a lab namespace")
    folder = NETNS_ETC / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text(f"nameserver {server}\noptions timeout:1 attempts:2\n")
    except OSError as error:
        raise LabError(f"cannot write {folder}/resolv.conf: {error.strerror or error}") from None


def namespace_pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (``ip netns pids``)."""
    if not namespace_exists(name):
        return []
    out = ip("netns", "pids", name, check=False)
    return [int(token) for token in out.split() if token.isdigit()]


class NamespaceThread:
    """A dedicated thread that called ``setns(2)`` into a network namespace.

    Work submitted with ``call``/``run_async`` runs on that thread, so sockets it creates
    belong to the namespace; such a socket stays usable from any thread afterwards.
    Use as a context manager or call ``close()``.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._work: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"netns-{namespace}", daemon=True
        )
        self._closed = False
        self._thread.start()
        ready.result(timeout=10)  # raises the LabError when setns failed

    def _main(self, ready: Future[None]) -> None:
        try:
            _enter_namespace(self.namespace)
        except BaseException as error:
            ready.set_exception(error)
            return
        ready.set_result(None)
        while True:
            item = self._work.get()
            if item is None:
                return
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as error:
                future.set_exception(error)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Schedule ``fn`` on the namespace thread; return its future."""
        if self._closed:
            raise LabError(f"the namespace thread for {self.namespace} is closed")
        future: Future[T] = Future()
        self._work.put((fn, future))  # type: ignore[arg-type]
        return future

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` inside the namespace and return its value (its exception propagates)."""
        return self.submit(fn).result()

    def run_async(self, factory: Callable[[], Awaitable[T]]) -> T:
        """``asyncio.run(factory())`` on the namespace thread; return the coroutine's value."""

        async def main() -> T:
            return await factory()

        return self.call(lambda: asyncio.run(main()))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._work.put(None)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout=10)

    def __enter__(self) -> NamespaceThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def namespace_thread(namespace: str) -> NamespaceThread:
    """Start a ``NamespaceThread`` inside the named network namespace."""
    return NamespaceThread(namespace)


_libc: ctypes.CDLL | None = None


def _enter_namespace(namespace: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    path = NETNS_DIR / namespace
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise LabError(f"network namespace {namespace} cannot be opened: {error.strerror}") from error
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise LabError(f"setns into {namespace} failed: {os.strerror(errno)} (the lab needs root)")
    finally:
        os.close(fd)
