"""nmap's flags on ``midprobe scan``: the common ones mean what they mean in nmap, the rest get a hint.

The command runs for real up to the port scan, whose reports are replaced by a recorder of the
settings the command line made: these tests run in the machine's own network namespace, where no
scan may be sent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from midprobe.probes.tcpscan.syn import raw_sockets_allowed
from midprobe.runner.cli.main import main
from midprobe.runner.scan.pipeline import PreparedScan, ScanPipeline, ScanSettings, ScanStats
from midprobe.runner.scan.report import HostReport


@dataclass
class _Recorder:
    settings: list[ScanSettings] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    recorded = _Recorder()

    async def reports(pipeline: ScanPipeline, scan: PreparedScan) -> AsyncGenerator[HostReport, None]:
        recorded.settings.append(pipeline.settings)
        recorded.engines.append(scan.engine)
        pipeline.stats = ScanStats(scanned=scan.hosts_scanned, alive=0, engine=scan.engine)
        for _ in ():
            yield _

    monkeypatch.setattr(ScanPipeline, "reports", reports)
    return recorded


def _scan(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["scan", "-n", "-p", "22", *args, "198.18.0.10"])
    code = exited.value.code
    assert isinstance(code, int)
    return code


def _settings(recorder: _Recorder, *args: str) -> ScanSettings:
    assert _scan(*args) == 0
    return recorder.settings[-1]


def test_connect_scan_flag_chooses_the_connect_engine(recorder: _Recorder) -> None:
    assert _settings(recorder, "-sT").engine == "connect"
    assert recorder.engines == ["connect"]


@pytest.mark.skipif(not raw_sockets_allowed(), reason="SYN scans need raw sockets")
def test_syn_scan_flag_chooses_the_syn_engine(recorder: _Recorder) -> None:
    assert _settings(recorder, "-sS").engine == "syn"
    assert recorder.engines == ["syn"]


def test_two_engines_are_refused(recorder: _Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    assert _scan("-sS", "-sT") == 2
    assert _scan("-sT", "--engine", "syn") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2, err
    assert "--engine syn and -sT ask for different scan engines" in err
    assert recorder.settings == []


def test_version_flag_is_nmap_service_detection(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIDPROBE_NMAP", "/nonexistent/nmap")
    assert _scan("-sV") == 2
    assert "--nmap needs the Nmap capability" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "wait", "retries", "rate"),
    [
        ((), 1.0, 2, None),
        (("-T4",), 0.5, 2, None),
        (("-T", "insane"), 0.25, 1, None),
        (("-T2",), 1.0, 2, 2.5),
        (("-T4", "--wait", "800"), 0.8, 2, None),
        (("-T5", "--retries", "3", "--rate", "50"), 0.25, 3, 50.0),
    ],
)
def test_timing_templates_set_the_scan_knobs_options_do_not_give(
    recorder: _Recorder, flags: tuple[str, ...], wait: float, retries: int, rate: float | None
) -> None:
    settings = _settings(recorder, *flags)
    assert settings.connect_wait_ms == round(wait * 1000)
    assert settings.retries == retries
    assert settings.rate == (None if rate is None else pytest.approx(rate))


def test_slow_timing_templates_count_as_a_rate_for_huge_ranges(recorder: _Recorder) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scan", "-n", "-p", "22", "-T1", "10.0.0.0/8"])
    assert exited.value.code == 0
    assert recorder.settings[-1].rate == pytest.approx(1 / 15)


def test_no_ping_turns_host_discovery_off_and_changes_nothing_else(recorder: _Recorder) -> None:
    with_pn, without = _settings(recorder, "-Pn", "-sT"), _settings(recorder, "-sT")
    assert without.ping
    assert not with_pn.ping
    assert replace(with_pn, classifier=without.classifier, ping=True) == without


def test_verbose_says_what_is_scanned_and_the_summary(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _scan("-v", "-T4", "-sT", "--format", "json") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "midprobe: scanning 1 address(es), 1 TCP port(s) with the connect engine, "
        "timing T4 aggressive (wait 500 ms, 2 retries, no rate limit)"
    )
    assert err[1].startswith("midprobe: 0 host(s) up, 1 address scanned in ")
    assert _scan("-sT", "--format", "json") == 0  # without -v: the summary only
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("midprobe: 0 host(s) up, 1 address scanned in ")
    assert _scan("-v", "-T4", "--wait", "800", "--rate", "20", "-sT", "--format", "json") == 0
    assert "timing T4 aggressive (wait 800 ms, 2 retries, at most 20 probes/s)" in capsys.readouterr().err


def test_json_or_a_file_keeps_the_summary_on_stderr(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "scan.json"
    assert _scan("-sT", "--format", "json", "-o", str(output)) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert re.fullmatch(
        rf"midprobe: 0 host\(s\) up, 1 address scanned in [0-9.]+ s \(connect scan\), results in {re.escape(str(output))}",
        line,
    )
    assert _scan("-sT", "-o", str(output)) == 0  # a table in a file: the terminal gets the summary too
    assert capsys.readouterr().err.startswith("midprobe: 0 host(s) up, 1 address scanned in ")
    assert output.read_text(encoding="utf-8").splitlines()[-1].startswith("0 host(s) up, 1 address")


def test_a_table_on_stdout_ends_with_the_summary_and_stderr_stays_empty(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _scan("-sT") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines()[-1].startswith("0 host(s) up, 1 address scanned in ")


@pytest.mark.parametrize("quiet", ["-q", "--quiet"])
def test_quiet_prints_only_the_results(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str], quiet: str
) -> None:
    assert _scan(quiet, "-sT", "--format", "json") == 0
    assert capsys.readouterr().err == ""
    assert _scan(quiet, "-sT") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [captured.out.splitlines()[0]]  # the header, no summary
    assert captured.out.startswith("ADDRESS ")


def test_quiet_and_verbose_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert _scan("-q", "-v", "-sT") == 2
    assert capsys.readouterr().err.strip() == (
        "midprobe: error: --quiet: -v/--verbose and -q/--quiet ask for opposite things: give one"
    )


@pytest.mark.parametrize(
    ("flag", "hint"),
    [
        ("-sU", "--snmp-public or --credentials"),
        ("-sn", "midprobe sweep"),
        ("-sA", "--engine syn"),
        ("-oX", "--format table|json|ecc with -o FILE"),
        ("-A", "--nmap --os"),
        ("--top-ports", "-p"),
    ],
)
def test_other_nmap_flags_get_a_one_line_hint(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str], flag: str, hint: str
) -> None:
    assert _scan(flag) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"midprobe: error: midprobe scan: nmap's {flag} is not a midprobe option: ")
    assert hint in err
    assert recorder.settings == []


def test_a_target_after_double_dash_is_never_a_flag(
    recorder: _Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scan", "-n", "-p", "22", "--", "-A"])
    assert exited.value.code == 2
    assert "bad target '-A'" in capsys.readouterr().err
