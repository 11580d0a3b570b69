"""Nmap detection: the real nmap on this machine, recorded output, and fake missing or broken binaries.

Every nmap run here is a list scan (``-sL -n``) of 127.0.0.1, which sends no packets.
"""

from __future__ import annotations

import shutil
import stat
import time
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ProtocolError
from midprobe.capabilities.model import Capability, MidServer
from midprobe.capabilities.nmap import (
    NmapDetection,
    advertised_capabilities,
    detect_nmap,
    parse_list_scan_xml,
    parse_nmap_version,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"
RECORDED_XML = (FIXTURES / "nmap-7.93-list-scan.xml").read_bytes()
RECORDED_VERSION = (FIXTURES / "nmap-7.93-version.txt").read_text()


def fake_nmap(directory: Path, script: str, *, executable: bool = True) -> Path:
    path = directory / "nmap"
    path.write_text(script)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# -- pure parsing of recorded output -------------------------------------------------------------------------


def test_the_version_is_parsed_from_recorded_nmap_version_output() -> None:
    assert parse_nmap_version(RECORDED_VERSION) == "7.93"
    assert parse_nmap_version("Nmap version 7.95SVN ( https://nmap.org )\n") == "7.95SVN"
    assert parse_nmap_version("nmap: command not found") is None


def test_a_recorded_list_scan_parses() -> None:
    scan = parse_list_scan_xml(RECORDED_XML)
    assert (scan.version, scan.exit_status, scan.addresses) == ("7.93", "success", ("127.0.0.1",))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"does not parse"),
        (b"<nmaprun", r"does not parse"),
        (b"<html/>", r"root <html>, expected <nmaprun>"),
        (b'<nmaprun version="7.93"><host/></nmaprun>', r"did not complete"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><nmaprun>&a;</nmaprun>', r"does not parse"),
    ],
)
def test_output_that_is_not_a_finished_nmap_run_is_a_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_list_scan_xml(data)


# -- the real nmap ------------------------------------------------------------------------------------------------


def test_the_nmap_installed_on_this_machine_is_detected_as_working() -> None:
    installed = shutil.which("nmap")
    assert installed is not None, "the Makefile installs nmap; this test needs it"
    detection = detect_nmap()
    assert detection.found, detection.reason
    assert detection.path == installed
    assert detection.version is not None
    assert detection.version[0].isdigit()
    assert detection.reason == f"nmap {detection.version} at {installed} ran a list scan of 127.0.0.1"
    assert detection.capabilities == (Capability("Nmap"),)


def test_an_explicit_path_to_the_real_nmap_works_too() -> None:
    installed = shutil.which("nmap")
    assert installed is not None
    assert detect_nmap(installed).found


# -- missing and broken nmap ---------------------------------------------------------------------------------------


def test_no_nmap_on_the_search_path_is_reported_as_not_installed(tmp_path: Path) -> None:
    detection = detect_nmap(search_path=str(tmp_path))
    assert detection == NmapDetection(False, None, None, "nmap not installed: no 'nmap' on PATH")
    assert detection.capabilities == ()


def test_a_missing_explicit_path_is_reported_as_not_installed(tmp_path: Path) -> None:
    detection = detect_nmap(tmp_path / "bin" / "nmap")
    assert not detection.found
    assert detection.reason == f"nmap not installed: no {tmp_path / 'bin' / 'nmap'}"


def test_a_binary_that_is_not_executable_is_found_but_broken(tmp_path: Path) -> None:
    path = fake_nmap(tmp_path, "#!/bin/sh\necho 'Nmap version 7.93'\n", executable=False)
    detection = detect_nmap(search_path=None, executable=path)
    assert (detection.found, detection.path) == (False, str(path))
    assert detection.reason == f"nmap at {path} does not work: cannot run it: Permission denied"


def test_a_binary_that_is_not_a_program_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "nmap"
    path.write_bytes(b"\x7fELF not really")
    path.chmod(0o755)
    detection = detect_nmap(path)
    assert not detection.found
    assert detection.reason.startswith(f"nmap at {path} does not work: cannot run it: ")


def test_a_binary_whose_version_cannot_be_parsed_is_broken(tmp_path: Path) -> None:
    path = fake_nmap(tmp_path, "#!/bin/sh\necho 'Network Mapper, build unknown'\n")
    detection = detect_nmap(path)
    assert (detection.found, detection.version) == (False, None)
    assert detection.reason.endswith("'nmap --version' printed no version: 'Network Mapper, build unknown'")


def test_a_binary_that_fails_its_version_check_is_broken(tmp_path: Path) -> None:
    path = fake_nmap(
        tmp_path, "#!/bin/sh\necho 'libpcap.so.0.8: cannot open shared object file' >&2\nexit 127\n"
    )
    detection = detect_nmap(path)
    assert not detection.found
    assert detection.reason.endswith(
        "'nmap --version' exited with status 127: libpcap.so.0.8: cannot open shared object file"
    )


def test_a_binary_that_names_a_version_but_cannot_scan_is_broken(tmp_path: Path) -> None:
    script = (
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "Nmap version 7.93 ( https://nmap.org )"; exit 0; fi\n'
        "echo 'Unable to find nmap-services!  Resorting to /etc/services' >&2\nexit 1\n"
    )
    detection = detect_nmap(fake_nmap(tmp_path, script))
    assert (detection.found, detection.version) == (False, "7.93")
    assert detection.reason.endswith(
        "the list scan exited with status 1: Unable to find nmap-services!  Resorting to /etc/services"
    )


def test_a_binary_whose_scan_output_is_not_nmap_xml_is_broken(tmp_path: Path) -> None:
    script = "#!/bin/sh\necho 'Nmap version 7.93 ( https://nmap.org )'\n"
    detection = detect_nmap(fake_nmap(tmp_path, script))
    assert not detection.found
    assert "the list scan's output is not usable: nmap XML does not parse" in detection.reason


def test_a_scan_that_does_not_list_the_target_is_broken(tmp_path: Path) -> None:
    xml = '<nmaprun version="7.93"><runstats><finished exit="error"/></runstats></nmaprun>'
    script = (
        f"#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'Nmap version 7.93'; else echo '{xml}'; fi\n"
    )
    detection = detect_nmap(fake_nmap(tmp_path, script))
    assert not detection.found
    assert detection.reason.endswith("the list scan reported exit='error', hosts []")


def test_a_binary_that_hangs_is_broken_after_the_timeout(tmp_path: Path) -> None:
    # The shell forks sleep, which would keep the pipes open: the whole process group must go.
    path = fake_nmap(tmp_path, "#!/bin/sh\nsleep 30\necho done\n")
    started = time.monotonic()
    detection = detect_nmap(path, timeout=0.3)
    assert not detection.found
    assert detection.reason.endswith("'nmap --version' did not finish within 0.3 s")
    assert time.monotonic() - started < 10


def test_a_fake_that_behaves_like_nmap_is_accepted(tmp_path: Path) -> None:
    # Proves the checks are the contract (version + list scan XML), not a path or name comparison.
    script = (
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo \'Nmap version 9.1 ( https://nmap.org )\'; exit 0; fi\n'
        f"cat '{FIXTURES / 'nmap-7.93-list-scan.xml'}'\n"
    )
    detection = detect_nmap(fake_nmap(tmp_path, script))
    assert (detection.found, detection.version) == (True, "9.1")


# -- what a MID on this host advertises -----------------------------------------------------------------------------


def test_advertised_capabilities_add_nmap_only_for_a_working_nmap() -> None:
    mid = MidServer("mid-a", capabilities=(Capability("SSH"),), nmap_installed=True)
    working = NmapDetection(True, "/usr/bin/nmap", "7.93", "ok")
    broken = NmapDetection(False, "/usr/bin/nmap", None, "broken")
    assert [str(c) for c in advertised_capabilities(mid, working)] == ["SSH", "Nmap"]
    assert [str(c) for c in advertised_capabilities(mid, broken)] == ["SSH"]
    assert [str(c) for c in advertised_capabilities(None, working)] == ["Nmap"]
