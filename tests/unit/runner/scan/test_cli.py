"""``midprobe scan`` refuses bad input with one line and exit status 2, before any packet is sent.

Every case here must fail validation: none may reach the scan (these tests run in the machine's
own network namespace, where a scan is not allowed). Validation includes the port scan stage's
preparation (the Shazzam probe resolving and checking the targets); running the prepared scan is
what may never happen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.cli.main import main
from midprobe.runner.scan.pipeline import ScanPipeline


def _no_scan(*args: object, **kwargs: object) -> None:
    """Stands in for running the scan: reaching it means validation let bad input through."""
    raise AssertionError("the scan started although the input should have been refused")


@pytest.fixture(autouse=True)
def _never_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScanPipeline, "reports", _no_scan)


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", *args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert message
    assert "Traceback" not in message
    return message


def _one_line(message: str) -> str:
    assert "\n" not in message, message
    assert message.startswith("midprobe: error: "), message
    return message


def test_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "198.18.0.300"))
    assert "bad target '198.18.0.300'" in message


def test_bad_target_range(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "198.18.0.20-10"))
    assert "198.18.0.20-10" in message
    assert "backwards" in message


def test_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "-p", "22,70000", "198.18.0.10"))
    assert "bad port '70000'" in message


def test_udp_ports_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "-p", "U:161", "198.18.0.10"))
    assert "'U:161'" in message
    assert "TCP ports only" in message


def test_no_targets(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n"))
    assert "no targets given" in message


def test_huge_range_needs_yes_or_rate(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "10.0.0.0/8"))
    assert "16,777,216 addresses" in message
    assert "--yes" in message
    assert "--rate" in message


def test_huge_range_counts_after_exclusions(capsys: pytest.CaptureFixture[str]) -> None:
    # 198.18.0.0/15 minus a /24 is still 130,816 addresses.
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.0/15", "--exclude", "198.18.0.0/24"))
    assert "130,816 addresses" in message


def test_target_outside_the_lab(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.10", "10.0.0.1"))
    assert "target 10.0.0.1 is outside the allowed networks" in message
    assert "198.18.0.0/15" in message


def test_a_refused_target_leaves_no_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = tmp_path / "scan.json"
    message = _one_line(_refused(capsys, "-n", "--lab", "10.0.0.1", "-o", str(output)))
    assert "target 10.0.0.1 is outside the allowed networks" in message
    assert not output.exists()


def test_range_reaching_outside_the_lab(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "--lab", "198.17.255.250-198.18.0.5"))
    assert "target 198.17.255.250 is outside" in message


@pytest.mark.parametrize("target", ["2001:db9::1", "::ffff:198.18.0.10", "fe80::1"])
def test_ipv6_outside_the_lab(capsys: pytest.CaptureFixture[str], target: str) -> None:
    message = _one_line(_refused(capsys, "-n", "--lab", target))
    assert "is outside the allowed networks" in message  # a mapped address is named as Python spells it
    assert "2001:db8::/32" in message


def test_host_name_in_the_lab_needs_a_lab_dns_server(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "-n", "--lab", "linux1.sandiego.lab.example.test"))
    assert "'linux1.sandiego.lab.example.test'" in message
    assert "--dns-server" in message


def test_dns_server_that_is_not_an_address(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "--dns-server", "dns1.example", "198.18.0.10"))
    assert "bad --dns-server 'dns1.example'" in message


def test_dns_server_outside_the_lab(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line(_refused(capsys, "--lab", "--dns-server", "9.9.9.9", "198.18.0.10"))
    assert "DNS server 9.9.9.9 is outside the allowed networks" in message


def test_missing_target_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    message = _one_line(_refused(capsys, "-n", "-iL", str(missing)))
    assert str(missing) in message
    assert "cannot read the target list" in message


def test_bad_entry_in_target_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("# lab hosts\n198.18.0.10 198.18.0.11\n198.18.0.999\n")
    message = _one_line(_refused(capsys, "-n", "--lab", "-iL", str(targets)))
    assert "bad target '198.18.0.999'" in message


def test_missing_credentials_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "creds.toml"
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.10", "--credentials", str(missing)))
    assert str(missing) in message
    assert "cannot read the file" in message


def test_broken_credential_entry(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    creds = tmp_path / "creds.toml"
    creds.write_text('[[credential]]\nid = "ops"\ntype = "ssh_password"\nuser = "ops"\n')
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.10", "--credentials", str(creds)))
    assert str(creds) in message
    assert '"ops"' in message
    assert "password" in message


def test_ssh_credentials_file_without_ssh_credentials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    creds = tmp_path / "snmp.toml"
    creds.write_text('[[credential]]\nid = "ro"\ntype = "snmp"\ncommunity = "s3cret-community"\n')
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.10", "--ssh-credentials", str(creds)))
    assert "holds no SSH credential" in message
    assert "s3cret-community" not in message


def test_output_file_that_cannot_be_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "scan.json"
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.10", "-o", str(target)))
    assert str(target) in message


def test_nmap_option_without_a_working_nmap(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIDPROBE_NMAP", str(tmp_path / "no-nmap-here"))
    message = _one_line(_refused(capsys, "-n", "--lab", "198.18.0.10", "--nmap"))
    assert "--nmap needs the Nmap capability" in message


def test_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    message = _refused(capsys, "-n", "--format", "yaml", "198.18.0.10")
    assert "'yaml'" in message


def test_a_config_file_sets_the_defaults_and_the_command_line_wins(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "scan.toml"
    config.write_text('[scan]\nports = "22,70000"\nlab = true\n', encoding="utf-8")
    message = _one_line(_refused(capsys, "--config", str(config), "-n", "198.18.0.10"))
    assert "bad port '70000'" in message  # the file's ports were used
    message = _one_line(_refused(capsys, "--config", str(config), "-n", "-p", "22,80000", "198.18.0.10"))
    assert "bad port '80000'" in message  # the command line's replace them
    config.write_text('[scan]\nports = "22"\nlab = true\n', encoding="utf-8")
    monkeypatch.setenv("MIDPROBE_SCAN_CONFIG", str(config))
    message = _one_line(_refused(capsys, "-n", "10.0.0.1"))
    assert "target 10.0.0.1 is outside the allowed networks" in message  # lab = true, from the env's file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[scan]\nportz = "22"\n', "has no setting 'portz' (settings: "),
        ('ports = "22"\n', "unknown table 'ports' (only [scan])"),
        ("[scan\n", "is not valid TOML"),
        ('[scan]\nports = "22,x"\n', "bad port"),
    ],
)
def test_a_bad_config_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "scan.toml"
    config.write_text(text, encoding="utf-8")
    message = _one_line(_refused(capsys, "--config", str(config), "-n", "198.18.0.10"))
    assert expected in message
    missing = tmp_path / "missing.toml"
    assert "cannot read" in _one_line(_refused(capsys, "--config", str(missing), "-n", "198.18.0.10"))
