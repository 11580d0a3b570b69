"""Detects a working nmap, which is what gives a MID server the ``Nmap`` capability.

Working means: the binary is found, ``nmap --version`` names a version, and a list scan of 127.0.0.1
(``-sL -n``: lists the target, sends no packets, no DNS) runs and reports success in its XML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import defusedxml.ElementTree as DefusedET

from midprobe.capabilities.errors import ProtocolError
from midprobe.capabilities.model import NMAP_CAPABILITY, Capability, MidServer

#: The list scan used to prove nmap runs: no packets leave the host.
LIST_SCAN_ARGS = ("-sL", "-n", "127.0.0.1", "-oX", "-")
DEFAULT_TIMEOUT_S = 10.0

_VERSION = re.compile(r"^Nmap version (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class NmapDetection:
    """The outcome of looking for nmap on this host.

    ``found`` is true only for a working nmap (binary, version and list scan all fine); ``path`` and
    ``version`` are filled in as far as detection got, and ``reason`` says in words what happened.
    """

    found: bool
    path: str | None
    version: str | None
    reason: str

    @property
    def capabilities(self) -> tuple[Capability, ...]:
        """``(Nmap,)`` for a working nmap, else nothing."""
        return (Capability(NMAP_CAPABILITY),) if self.found else ()


@dataclass(frozen=True)
class ListScan:
    """What the XML of ``nmap -sL`` says: the version that ran, its exit status and the listed addresses."""

    version: str
    exit_status: str
    addresses: tuple[str, ...]


def parse_nmap_version(output: str) -> str | None:
    """The version in ``nmap --version`` output (``Nmap version 7.93 ( https://nmap.org )`` -> ``7.93``)."""
    found = _VERSION.search(output)
    return found.group(1) if found else None


def parse_list_scan_xml(data: bytes) -> ListScan:
    """Parse ``nmap -oX -`` output of a list scan (pure); raises ``ProtocolError`` if it is not nmap XML."""
    try:
        root = DefusedET.fromstring(data)
    except (ET.ParseError, ValueError) as error:  # defusedxml raises ValueError subclasses on forbidden XML
        raise ProtocolError(f"nmap XML does not parse: {error}") from None
    if root.tag != "nmaprun":
        raise ProtocolError(f"nmap XML has root <{root.tag}>, expected <nmaprun>")
    finished = root.find("runstats/finished")
    if finished is None:
        raise ProtocolError("nmap XML has no <runstats><finished>: the scan did not complete")
    addresses = tuple(
        address.get("addr", "")
        for address in root.iterfind("host/address")
        if address.get("addrtype") != "mac"
    )
    return ListScan(root.get("version", ""), finished.get("exit", ""), addresses)


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` in its own process group, so a time-out also ends anything it started."""
    environment = {**os.environ, "LC_ALL": "C"}  # a fixed locale keeps nmap's messages parseable
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "no output"


def detect_nmap(
    executable: str | os.PathLike[str] = "nmap",
    *,
    search_path: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> NmapDetection:
    """Look for a working nmap: ``executable`` is a name searched on ``search_path`` (default ``$PATH``)
    or a path to a file. Never raises for a missing or broken nmap: that is a normal answer.
    """
    executable = os.fspath(executable)
    if os.sep in executable:
        path: str | None = executable if Path(executable).is_file() else None
        where = executable
    else:
        path = shutil.which(executable, path=search_path)
        where = f"{executable!r} on PATH"
    if path is None:
        return NmapDetection(False, None, None, f"nmap not installed: no {where}")

    def broken(version: str | None, why: str) -> NmapDetection:
        return NmapDetection(False, path, version, f"nmap at {path} does not work: {why}")

    try:
        answer = _run([path, "--version"], timeout)
    except subprocess.TimeoutExpired:
        return broken(None, f"'nmap --version' did not finish within {timeout:g} s")
    except OSError as error:  # not executable, bad interpreter, exec format error
        return broken(None, f"cannot run it: {error.strerror or error}")
    version = parse_nmap_version(answer.stdout.decode("utf-8", "replace"))
    if answer.returncode != 0:
        return broken(
            version, f"'nmap --version' exited with status {answer.returncode}: {_first_line(answer.stderr)}"
        )
    if version is None:
        return broken(None, f"'nmap --version' printed no version: {_first_line(answer.stdout)!r}")

    try:
        scan = _run([path, *LIST_SCAN_ARGS], timeout)
    except subprocess.TimeoutExpired:
        return broken(version, f"the list scan of 127.0.0.1 did not finish within {timeout:g} s")
    except OSError as error:
        return broken(version, f"cannot run the list scan: {error.strerror or error}")
    if scan.returncode != 0:
        return broken(
            version, f"the list scan exited with status {scan.returncode}: {_first_line(scan.stderr)}"
        )
    try:
        listed = parse_list_scan_xml(scan.stdout)
    except ProtocolError as error:
        return broken(version, f"the list scan's output is not usable: {error}")
    if listed.exit_status != "success" or "127.0.0.1" not in listed.addresses:
        return broken(
            version, f"the list scan reported exit={listed.exit_status!r}, hosts {list(listed.addresses)}"
        )
    return NmapDetection(True, path, version, f"nmap {version} at {path} ran a list scan of 127.0.0.1")


def advertised_capabilities(mid: MidServer | None, detection: NmapDetection) -> tuple[Capability, ...]:
    """What a MID on this host advertises: its assigned capabilities, plus ``Nmap`` iff nmap works here."""
    if mid is None:
        return detection.capabilities
    return dataclasses.replace(mid, nmap_installed=detection.found).effective_capabilities


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "LIST_SCAN_ARGS",
    "ListScan",
    "NmapDetection",
    "advertised_capabilities",
    "detect_nmap",
    "parse_list_scan_xml",
    "parse_nmap_version",
]
