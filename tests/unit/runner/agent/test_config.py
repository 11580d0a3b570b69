"""Agent configuration: defaults < [agent] table < MIDPROBE_* environment < flags, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.agent.config import DEFAULT_QUEUE_URL, AgentConfig, load_agent_config
from midprobe.runner.cli import main


def test_defaults_are_the_mid_servers() -> None:
    config = load_agent_config(environ={})
    assert config == AgentConfig()
    assert (config.poll_idle_seconds, config.poll_busy_seconds) == (40.0, 5.0)
    assert config.result_size_cap == 5_000_000
    assert config.queue_url == DEFAULT_QUEUE_URL


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\nname = "from-file"\nconcurrency = 30\nlab_mode = true\npoll_idle_seconds = 10\n'
    )
    config = load_agent_config(
        path,
        environ={"MIDPROBE_CONCURRENCY": "40", "MIDPROBE_NAME": "from-env", "MIDPROBE_LAB_MODE": "no"},
        overrides={"name": "from-flag", "poll_busy_seconds": None},
    )
    assert config.name == "from-flag"
    assert config.concurrency == 40
    assert config.lab_mode is False
    assert config.poll_idle_seconds == 10.0
    assert config.poll_busy_seconds == 5.0  # a flag left out does not override


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[agent]\nconcurency = 3\n", {}, "agent.toml: agent: concurency: unknown key"),
        ("[agent]\nconcurrency = 'many'\n", {}, "agent.toml: concurrency: must be an integer"),
        ("[agent]\nconcurrency = 2\n", {}, "concurrency: must be an integer, at least 3"),
        ("[agent]\nlab_mode = 'perhaps'\n", {}, "lab_mode: not a boolean"),
        ("[agent\n", {}, "agent.toml: not valid TOML"),
        ("", {"MIDPROBE_POLL_IDLE_SECONDS": "-1"}, "poll_idle_seconds: must be a number, at least 0.05"),
        ("", {"MIDPROBE_LEASE_SECONDS": "soon"}, "MIDPROBE_LEASE_SECONDS: lease_seconds"),
    ],
)
def test_bad_values_name_the_source_and_field(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_agent_config(path, environ=environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "--config", str(tmp_path / "nope.toml"), "--once"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope.toml: file not found" in err
    assert "Traceback" not in err


def test_bad_credentials_file_stops_the_agent_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = tmp_path / "credentials.toml"
    credentials.write_text('[[credential]]\nid = "x"\ntype = "telepathy"\n')
    with pytest.raises(SystemExit) as exited:
        main(
            ["agent", "--queue", f"sqlite:///{tmp_path}/ecc.db", "--credentials", str(credentials), "--once"]
        )
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "credentials.toml" in err
    assert "Traceback" not in err


def test_bad_queue_url_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["ecc", "list", "--queue", "mysql://root:hunter2@db/ecc"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("midprobe: error:")
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (
            "registry_heartbeat_seconds = 0",
            "registry_heartbeat_seconds",
        ),  # would commit thousands of times a second
        ("lease_seconds = 1e-9", "lease_seconds"),
        ("queue_stats_seconds = 0.5", "queue_stats_seconds"),  # a queue.stats input twice a second
        ("page_items = 0", "page_items"),
        ("lease_seconds = 1e400", "lease_seconds"),  # TOML reads it as infinity
        ("lease_seconds = inf", "lease_seconds"),
        ("poll_busy_seconds = nan", "poll_busy_seconds"),
        ("probe_timeout_seconds = -1.0", "probe_timeout_seconds"),
        ("concurrency = [1]", "concurrency"),
        ("concurrency = 4.5", "concurrency"),
        ("concurrency = true", "concurrency"),
        ("result_size_cap = 0", "result_size_cap"),
        ("name = ['a']", "name"),
        ("capabilities_file = 3", "capabilities_file"),
    ],
)
def test_numbers_that_spin_or_never_end_are_refused(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f"[agent]\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        load_agent_config(path, environ={})
    assert raised.value.field == field
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("raw", ["nan", "inf", "1e400", "٣", "²", "1_0", "0x10"])
def test_environment_numbers_are_plain_finite_decimals(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^MIDPROBE_LEASE_SECONDS: lease_seconds: "):
        load_agent_config(None, environ={"MIDPROBE_LEASE_SECONDS": raw})


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"[agent]\nname = '\xff'\n")
    with pytest.raises(ConfigError, match=r"agent\.toml: not UTF-8 text"):
        load_agent_config(path, environ={})


def test_the_limits_are_inclusive(tmp_path: Path) -> None:
    config = load_agent_config(
        None, environ={"MIDPROBE_LEASE_SECONDS": "1", "MIDPROBE_REGISTRY_HEARTBEAT_SECONDS": "86400"}
    )
    assert (config.lease_seconds, config.registry_heartbeat_seconds) == (1.0, 86400.0)
    with pytest.raises(ConfigError, match="lease_seconds"):
        load_agent_config(None, environ={"MIDPROBE_LEASE_SECONDS": "0.999"})
    with pytest.raises(ConfigError, match="registry_heartbeat_seconds"):
        load_agent_config(None, environ={"MIDPROBE_REGISTRY_HEARTBEAT_SECONDS": "86400.5"})
