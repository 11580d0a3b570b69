"""``midprobe select`` and ``midprobe capabilities``: the command-line contract of issue 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from midprobe.runner.cli.main import main

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "fixtures" / "capabilities" / "example.toml"
ISSUE_SHAPE = ROOT / "fixtures" / "capabilities" / "issue-shape.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def select(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run(capsys, "select", "--config", str(EXAMPLE), *argv)


# -- select ---------------------------------------------------------------------------------------------------


def test_prints_the_chosen_mid_names_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = select(capsys, "--capability", "Resolve DNS=lnxlab01.sandiego.service-now.com")
    assert (code, out, err) == (0, "mid-sandiego\nmid-corp\n", "")


def test_the_seed_sandiego_example_finds_only_the_sandiego_mid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = select(capsys, "--capability", "Resolve DNS=dbsrv101.sanjose.service-now.com")
    assert (code, out) == (0, "mid-corp\n")


def test_json_output_has_step_mid_servers_and_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = select(capsys, "--capability", "Cloud Management=us-west", "--json")
    document = json.loads(out)
    assert code == 0
    assert set(document) == {"step", "mid_servers", "rejected"}
    assert (document["step"], document["mid_servers"]) == ("exact", ["mid-uswest"])
    assert document["rejected"]["mid-cloud-any"].startswith("Cloud Management:us-west matches only a * value")
    assert document["rejected"]["mid-down"] == "status is Down (selectable statuses: Up)"
    assert set(document["rejected"]) | {"mid-uswest"} == {
        "mid-sandiego",
        "mid-corp",
        "mid-catchall",
        "mid-uswest",
        "mid-useast",
        "mid-cloud-any",
        "mid-upgrading",
        "mid-down",
        "mid-new",
    }


def test_json_reports_the_wildcard_and_all_steps(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = select(capsys, "--capability", "Cloud Management=eu-central", "--json")
    assert json.loads(out)["step"] == "wildcard"
    assert json.loads(out)["mid_servers"] == ["mid-cloud-any"]
    _, out, _ = select(capsys, "--capability", "WMI", "--json")
    assert json.loads(out)["step"] == "all"
    assert json.loads(out)["mid_servers"] == ["mid-catchall"]


def test_application_and_ip_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        select(capsys, "--application", "Discovery", "--ip", "10.1.2.3", "--capability", "SSH")[1]
        == "mid-sandiego\n"
    )
    # 10.9/16 is excluded on mid-sandiego; mid-catchall excludes it too but serves ALL applications.
    assert (
        select(capsys, "--application", "Discovery", "--ip", "10.9.0.5", "--capability", "SSH")[1]
        == "mid-catchall\n"
    )
    assert select(capsys, "--ip", "2001:db8::7", "--capability", "SNMP")[1] == "mid-corp\n"


def test_no_match_is_exit_zero_with_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    # mid-catchall's ALL would take any request but Nmap (ALL does not imply it).
    assert select(capsys, "--application", "Cloud Management", "--capability", "Nmap") == (0, "", "")
    code, out, _ = select(capsys, "--application", "Cloud Management", "--capability", "Nmap", "--json")
    assert code == 0
    assert json.loads(out)["mid_servers"] == []
    assert json.loads(out)["step"] is None


def test_nmap_requests_go_only_to_mids_with_nmap(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = select(capsys, "--capability", "Nmap", "--json")
    document = json.loads(out)
    assert code == 0
    assert document["mid_servers"] == ["mid-corp"]
    assert document["rejected"]["mid-catchall"].endswith("it has ALL, but ALL does not imply Nmap")


def test_an_undefined_capability_is_a_bad_argument_exception_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = select(capsys, "--capability", "Telnet")
    assert (code, out) == (2, "")
    assert err.startswith("midprobe: error: BadArgumentException: requested capability not defined: 'Telnet'")
    assert err.count("\n") == 1


def test_explain_prints_the_step_and_the_reasons_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = select(capsys, "--capability", "SSH", "--application", "Discovery", "--explain")
    assert (code, out) == (0, "mid-sandiego\nmid-corp\n")
    assert err.splitlines()[0] == "step: exact"
    assert (
        "rejected mid-new: not validated (only validated MID servers are selected; status Up)"
        in err.splitlines()
    )


def test_fallback_flags_add_the_tier(capsys: pytest.CaptureFixture[str]) -> None:
    # No Up MID has both WMI and nmap (mid-catchall's ALL does not imply Nmap); mid-upgrading has both.
    _, out, _ = select(capsys, "--capability", "WMI", "--capability", "Nmap", "--include-upgrading", "--json")
    document = json.loads(out)
    assert (document["tier"], document["step"], document["mid_servers"]) == (
        "upgrading_or_paused",
        "exact",
        ["mid-upgrading"],
    )
    _, out, _ = select(capsys, "--capability", "WMI", "--capability", "Nmap", "--json")
    assert json.loads(out)["mid_servers"] == []
    assert "tier" not in json.loads(out)
    _, out, _ = select(
        capsys,
        "--capability",
        "WMI",
        "--ip",
        "10.1.1.1",
        "--application",
        "Discovery",
        "--default-mid",
        "mid-sandiego",
        "--json",
    )
    document = json.loads(out)
    # mid-catchall (ALL) still wins over the default: the default is only for when no Up MID fits.
    assert (document["tier"], document["mid_servers"]) == ("up", ["mid-catchall"])
    # 10.1.1.1 is outside mid-corp's ranges and mid-corp has no WMI, but as the default it is used anyway.
    _, out, _ = select(
        capsys,
        "--capability",
        "Nmap",
        "--capability",
        "WMI",
        "--application",
        "Discovery",
        "--ip",
        "10.1.1.1",
        "--default-mid",
        "mid-corp",
        "--json",
    )
    assert json.loads(out)["tier"] == "default"
    assert json.loads(out)["mid_servers"] == ["mid-corp"]


def test_the_other_statuses_flag_walks_the_ladder_past_upgrading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "caps.toml"
    config.write_text(
        '[[capability]]\nname = "SSH"\n'
        '[[mid_server]]\nname = "mid-drained"\nstatus = "Drained"\nvalidated = true\n'
        'applications = ["ALL"]\ncapabilities = [{ name = "SSH" }]\n',
        encoding="utf-8",
    )
    base = ("select", "--config", str(config), "--capability", "SSH", "--json")
    document = json.loads(run(capsys, *base, "--include-upgrading")[1])
    assert document["mid_servers"] == []
    assert document["rejected"]["mid-drained"].startswith("status is Drained (selectable statuses: Up, or")
    document = json.loads(run(capsys, *base, "--include-other-statuses")[1])
    assert (document["tier"], document["mid_servers"]) == ("other_statuses", ["mid-drained"])


def test_discovery_requests_take_degraded_mids(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "caps.toml"
    config.write_text(
        '[[capability]]\nname = "SSH"\n'
        '[[mid_server]]\nname = "mid-degraded"\nstatus = "Degraded"\nvalidated = true\n'
        'applications = ["ALL"]\ncapabilities = [{ name = "SSH" }]\n'
        '[[mid_server]]\nname = "mid-spare"\nstatus = "Up"\nvalidated = true\napplications = ["ALL"]\n'
        '[[application]]\nname = "Orchestration"\ndefault_mid_server = "mid-spare"\n',
        encoding="utf-8",
    )
    base = ("select", "--config", str(config), "--capability", "SSH")
    assert run(capsys, *base, "--application", "Discovery")[1] == "mid-degraded\n"
    # Orchestration takes only Up MIDs: the Degraded one is passed over for Orchestration's default.
    code, out, err = run(capsys, *base, "--application", "Orchestration", "--explain")
    assert (code, out) == (0, "mid-spare\n")
    assert "rejected mid-degraded: status is Degraded (selectable statuses: Up)" in err.splitlines()
    assert "step: none, tier default" in err.splitlines()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ip", "10.300.0.1"], "midprobe: error: --ip: '10.300.0.1' is not an IPv4 or IPv6 address\n"),
        (
            ["--capability", "=x"],
            "midprobe: error: --capability: expected NAME or NAME=VALUE with a non-empty NAME, got '=x'\n",
        ),
        (["--default-mid", "mid-nope"], "midprobe: error: "),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = select(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_a_bad_config_is_one_line_naming_file_entry_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(ISSUE_SHAPE.read_text().replace('{ name = "SSH" }', '{ name = "Nmap" }'))
    code, out, err = run(capsys, "select", "--config", str(bad), "--capability", "SSH")
    assert (code, out) == (2, "")
    assert err == (
        f"midprobe: error: {bad}: mid_server[1] \"mid-sandiego\": capabilities[1]: 'Nmap' cannot be assigned by hand: "
        "the Nmap capability is added automatically when nmap is installed (set nmap_installed = true) "
        "and removed when it is not\n"
    )


def test_a_missing_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "select", "--config", str(tmp_path / "none.toml"))
    assert code == 2
    assert (
        err == f"midprobe: error: {tmp_path / 'none.toml'}: cannot read the file: No such file or directory\n"
    )


def test_config_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "select", "--capability", "SSH")
    assert code == 2
    assert "give --config FILE, --queue URL, or both" in err


# -- capabilities ---------------------------------------------------------------------------------------------


def test_capabilities_reports_the_real_nmap_of_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    installed = shutil.which("nmap")
    assert installed is not None
    code, out, _ = run(capsys, "capabilities")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("nmap: found: nmap ")
    assert lines[0].endswith(f"at {installed} ran a list scan of 127.0.0.1")
    assert lines[1] == "advertises: Nmap"


def test_capabilities_for_a_configured_mid_without_nmap(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        "capabilities",
        "--config",
        str(EXAMPLE),
        "--mid",
        "mid-corp",
        "--nmap",
        str(tmp_path / "nmap"),
    )
    assert code == 0
    assert out.splitlines() == [
        "MID server: mid-corp (Up, validated)",
        f"nmap: not available: nmap not installed: no {tmp_path / 'nmap'}",
        "advertises: SSH, SNMP, Resolve DNS:service-now.com",
        f"note: {EXAMPLE} says nmap_installed = true for mid-corp; what this host advertises follows the detection above",
    ]


def test_capabilities_json_with_a_broken_nmap_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "nmap"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("MIDPROBE_NMAP", str(broken))
    code, out, _ = run(
        capsys, "capabilities", "--config", str(ISSUE_SHAPE), "--mid", "mid-sandiego", "--json"
    )
    document = json.loads(out)
    assert code == 0
    assert document["mid_server"] == "mid-sandiego"
    assert document["nmap"] == {
        "found": False,
        "path": str(broken),
        "version": None,
        "reason": f"nmap at {broken} does not work: 'nmap --version' exited with status 3: no output",
    }
    assert document["capabilities"] == ["SSH", "Resolve DNS:sandiego.service-now.com", "ALL"]


def test_capabilities_needs_config_and_mid_together(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "capabilities", "--config", str(EXAMPLE))
    assert code == 2
    assert "--config and --mid go together" in err


def test_capabilities_with_an_unknown_mid_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "capabilities", "--config", str(EXAMPLE), "--mid", "mid-sandiago")
    assert code == 2
    assert err.startswith(
        f"midprobe: error: {EXAMPLE}: no MID server named 'mid-sandiago' (did you mean 'mid-sandiego'?)"
    )


# -- the installed console script ----------------------------------------------------------------------------------


def test_the_installed_midprobe_command_selects_and_reports_bad_arguments() -> None:
    command = Path(sys.executable).parent / "midprobe"
    assert command.exists(), f"{command} missing: the editable install provides it"
    chosen = subprocess.run(
        [
            str(command),
            "select",
            "--config",
            str(EXAMPLE),
            "--capability",
            "Resolve DNS=service-now.com.example",
            "--capability",
            "Nmap",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (chosen.returncode, chosen.stdout, chosen.stderr) == (0, "", "")
    found = subprocess.run(
        [
            str(command),
            "select",
            "--config",
            str(EXAMPLE),
            "--capability",
            "Resolve DNS=LNXLAB01.SanDiego.service-now.com.",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (found.returncode, found.stdout) == (0, "mid-sandiego\nmid-corp\n")
    bad = subprocess.run(
        [str(command), "select", "--config", str(EXAMPLE), "--capability", "Nmapp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr == (
        "midprobe: error: BadArgumentException: requested capability not defined: 'Nmapp' (did you mean 'Nmap'?) "
        "(defined: ALL, Cloud Management, Nmap, Resolve DNS, SNMP, SSH, WMI); there is no fallback to ALL\n"
    )
