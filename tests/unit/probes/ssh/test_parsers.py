"""The pure parsers of the SSH classify run, on transcripts recorded from a real sshd session."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.probes.classify import Classifier
from midprobe.probes.ssh.classify import CLASSIFY_COMMANDS
from midprobe.probes.ssh.parsers import (
    InterfaceAddress,
    ci_class_for_kernel,
    classify_uname,
    parse_addresses,
    parse_cpuinfo,
    parse_hostname,
    parse_meminfo,
    parse_os_release,
    parse_uname,
    unix_facts,
)

RECORDED = Path(__file__).resolve().parents[4] / "fixtures" / "ssh" / "debian12"


def recorded(name: str) -> str:
    return (RECORDED / f"{name}.txt").read_text()


def test_every_classify_command_has_a_recording() -> None:
    assert sorted(path.stem for path in RECORDED.glob("*.txt")) == sorted(
        name for name, _ in CLASSIFY_COMMANDS
    )


def test_recorded_debian_host_becomes_typed_facts() -> None:
    facts = unix_facts({name: recorded(name) for name, _ in CLASSIFY_COMMANDS})
    assert facts.ci_class == "cmdb_ci_linux_server"
    assert facts.evidence == ("uname says Linux",)
    assert facts.kernel_name == "Linux"
    assert facts.kernel_release == "6.18.44-fc-v782"
    assert facts.machine == "x86_64"
    assert facts.os_name == "Debian GNU/Linux"
    assert facts.os_version == "12"
    assert facts.os_id == "debian"
    assert facts.os_pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert facts.hostname == "sshtest"
    assert facts.cpu_count == 2
    assert facts.cpu_model == "AMD EPYC"
    assert facts.memory_mb == 24683656 // 1024
    assert InterfaceAddress("198.18.0.10", 24, "eth0", "global") in facts.addresses
    assert InterfaceAddress("127.0.0.1", 8, "lo", "host") in facts.addresses
    assert InterfaceAddress("::1", 128, "lo", "host") in facts.addresses
    assert len(facts.addresses) == 5


def test_missing_outputs_leave_facts_unknown_but_still_classify_as_unix() -> None:
    facts = unix_facts({})
    assert facts.ci_class == "cmdb_ci_unix_server"
    assert facts.evidence == ("logged in over SSH, but `uname -a` answered nothing: a UNIX-like host",)
    assert facts.hostname is None
    assert facts.cpu_count is None
    assert facts.addresses == ()


@pytest.mark.parametrize(
    ("line", "kernel", "nodename", "release", "machine", "ci_class"),
    [
        (
            "Linux web1 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01) x86_64 GNU/Linux",
            "Linux", "web1", "6.1.0-18-amd64", "x86_64", "cmdb_ci_linux_server",
        ),
        (
            "Linux rhel9 5.14.0-362.8.1.el9_3.x86_64 #1 SMP PREEMPT_DYNAMIC Tue Oct 3 11:12:36 EDT 2023 "
            "x86_64 x86_64 x86_64 GNU/Linux",
            "Linux", "rhel9", "5.14.0-362.8.1.el9_3.x86_64", "x86_64", "cmdb_ci_linux_server",
        ),
        ("Linux pi 6.1.21-v8+ #1642 SMP PREEMPT Mon Apr  3 17:24:16 BST 2023 aarch64 GNU/Linux",
         "Linux", "pi", "6.1.21-v8+", "aarch64", "cmdb_ci_linux_server"),
        ("SunOS sol11 5.11 11.4.0.15.0 i86pc i386 i86pc", "SunOS", "sol11", "5.11", "i86pc",
         "cmdb_ci_solaris_server"),
        ("AIX aix72 2 7 00F84C0C4C00", "AIX", "aix72", "2", None, "cmdb_ci_aix_server"),
        ("HP-UX hpux1 B.11.31 U ia64 3253521385 unlimited-user license", "HP-UX", "hpux1", "B.11.31", "ia64",
         "cmdb_ci_hpux_server"),
        (
            "Darwin mac.local 23.1.0 Darwin Kernel Version 23.1.0: Mon Oct  9 21:27:27 PDT 2023; "
            "root:xnu-10002.41.9~6/RELEASE_ARM64_T6000 arm64",
            "Darwin", "mac.local", "23.1.0", "arm64", "cmdb_ci_osx_server",
        ),
        ("FreeBSD fbsd 14.0-RELEASE FreeBSD 14.0-RELEASE #0 releng/14.0-n265380-f9716eee8ab4: GENERIC amd64",
         "FreeBSD", "fbsd", "14.0-RELEASE", "amd64", "cmdb_ci_unix_server"),
    ],
)  # fmt: skip
def test_uname_of_each_unix(
    line: str, kernel: str, nodename: str, release: str, machine: str | None, ci_class: str
) -> None:
    parsed = parse_uname(line + "\n")
    assert parsed is not None
    assert (parsed.kernel_name, parsed.nodename, parsed.kernel_release, parsed.machine) == (
        kernel,
        nodename,
        release,
        machine,
    )
    assert ci_class_for_kernel(parsed.kernel_name) == ci_class


@pytest.mark.parametrize("text", ["", "\n\n", "sh: 1: uname: not found", "'quoted' stuff"])
def test_uname_that_is_not_uname(text: str) -> None:
    parsed = parse_uname(text)
    assert parsed is None or ci_class_for_kernel(parsed.kernel_name) == "cmdb_ci_unix_server"
    # Whatever a host we logged in to printed, it stays a UNIX-like host.
    assert unix_facts({"uname": text}).ci_class == "cmdb_ci_unix_server"


def test_the_first_non_empty_line_of_uname_decides() -> None:
    verdict = classify_uname("\n  SunOS sol11 5.11 11.4.0.15.0 i86pc i386 i86pc\nLinux later line\n")
    assert (verdict.ci_class, verdict.evidence) == ("cmdb_ci_solaris_server", ("uname says SunOS",))


def test_a_custom_rules_table_reaches_the_facts() -> None:
    table = Classifier.from_toml(
        '[[rule]]\nclass = "cmdb_ci_linux_server"\nweight = 1\nwhen.uname = "^Linux"\nevidence = "mine"\n'
    )
    assert unix_facts({"uname": "Linux a 6.1"}, classifier=table).evidence == ("mine",)
    assert unix_facts({"uname": "AIX a 2 7"}, classifier=table).ci_class is None


def test_os_release_quoting_and_comments() -> None:
    text = '# comment\nNAME=\'Red Hat Enterprise Linux\'\nVERSION_ID="9.3"\nID=rhel\nPRETTY_NAME="A \\"q\\" b"\nbad line\n'
    parsed = parse_os_release(text)
    assert parsed is not None
    assert parsed.name == "Red Hat Enterprise Linux"
    assert parsed.version_id == "9.3"
    assert parsed.id == "rhel"
    assert parsed.pretty_name == 'A "q" b'


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True),
        # no control characters and no line or paragraph separators: os-release is one value a line
        st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30),
        max_size=8,
    )
)
def test_os_release_reads_back_what_shell_quoting_wrote(fields: dict[str, str]) -> None:
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in fields.items())
    parsed = parse_os_release(text)
    if not fields:
        assert parsed is None
        return
    assert parsed is not None
    assert dict(parsed.fields) == fields


def test_hostname_and_hostname_dash_capital_i() -> None:
    assert parse_hostname("\nlinux1.lab.example.test\n") == "linux1.lab.example.test"
    assert parse_hostname("") is None
    assert parse_addresses("198.18.0.10 10.0.0.5 fe80::1%eth0 \n") == (
        InterfaceAddress("198.18.0.10"),
        InterfaceAddress("10.0.0.5"),
        InterfaceAddress("fe80::1"),
    )


def test_cpuinfo_of_other_architectures() -> None:
    arm = "processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\nBogoMIPS\t: 108.00\nHardware\t: BCM2835\n"
    power = "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n"
    arm_info = parse_cpuinfo(arm)
    assert arm_info is not None
    assert (arm_info.count, arm_info.model) == (2, "BCM2835")
    power_info = parse_cpuinfo(power)
    assert power_info is not None
    assert power_info.model == "POWER9 (architected), altivec supported"
    assert parse_cpuinfo("cat: /proc/cpuinfo: No such file or directory") is None


def test_meminfo() -> None:
    assert parse_meminfo("MemTotal:        2048000 kB\nMemFree: 1 kB\n") == 2000
    assert parse_meminfo("") is None
