"""The real channel, command and sudo logic of ``probes/ssh/channel.py`` over replayed conversations.

The transcripts in ``fixtures/ssh/sudo/`` were recorded off the Debian sudo of the SSH test bed
(``fixtures/ssh/record_sudo.py``); the password is ``<secret>`` in them and the replay stands
``PASSWORD`` in for it. No server, no root, no network, no real time: the replay's clock moves
only when the driver waits.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from midprobe.capabilities.errors import NetworkError, ReadTimeout, SudoFailed
from midprobe.probes.ssh.channel import CommandLimits, CommandOutput, Sudo, compose_command, run_on_channel
from midprobe.probes.ssh.replay import REDACTED, Event, ReplayChannel, ReplayClock, Transcript

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "ssh" / "sudo"
PASSWORD = "replayed-pass-9f3c"


def transcript(name: str) -> Transcript:
    return Transcript.load(FIXTURES / f"{name}.json")


def sudo_for(recorded: Transcript, *, with_password: bool | None = None) -> Sudo | None:
    if not recorded.events[0].data.startswith("sudo "):
        return None
    use_password = recorded.credential == "password" if with_password is None else with_password
    return Sudo(recorded.user, recorded.host, PASSWORD if use_password else None)


def drive(
    channel: ReplayChannel,
    sudo: Sudo | None,
    *,
    timeout: float = 20.0,
    channel_timeout: float = 20.0,
    max_output: int = 65536,
    line: str | None = None,
) -> CommandOutput:
    """``run_on_channel`` over the replay, with the line ``compose_command`` makes unless ``line``."""
    command = channel.transcript.command
    if line is None:
        with_password = sudo is not None and sudo.password is not None
        line = compose_command(
            command, set_path=None, must_sudo=sudo is not None, sudo_with_password=with_password
        )
    limits = CommandLimits(timeout, channel_timeout, max_output)
    return run_on_channel(channel, command, line, sudo=sudo, limits=limits, clock=channel.clock)


def replay(
    recorded: Transcript, *, sudo: Sudo | None, channel_timeout: float = 20.0, max_output: int = 65536
) -> tuple[CommandOutput, ReplayChannel]:
    channel = ReplayChannel(recorded, secret=PASSWORD)
    return drive(channel, sudo, channel_timeout=channel_timeout, max_output=max_output), channel


def refusal(name: str) -> tuple[str, ReplayChannel]:
    recorded = transcript(name)
    channel = ReplayChannel(recorded, secret=PASSWORD)
    with pytest.raises(SudoFailed) as raised:
        drive(channel, sudo_for(recorded))
    return str(raised.value), channel


def sent(channel: ReplayChannel) -> list[str]:
    return [event.data for event in channel.client_log if event.kind == "send"]


def test_transcripts_hold_the_marker_never_a_password() -> None:
    names = sorted(path.stem for path in FIXTURES.glob("*.json"))
    assert len(names) >= 7
    texts = [(FIXTURES / f"{name}.json").read_text() for name in names]
    assert sum(REDACTED in text for text in texts) >= 3  # every password answer is redacted
    assert not any(PASSWORD in text for text in texts)


def test_a_plain_command_gives_stdout_stderr_and_exit_status() -> None:
    output, channel = replay(transcript("plain"), sudo=None)
    assert (output.stdout, output.stderr, output.exit_status, output.truncated) == (
        "out\n",
        "err\n",
        3,
        False,
    )
    assert channel.unexpected == []
    # Input is closed at once (as ssh -n) and the channel closed at the end.
    assert [event.kind for event in channel.client_log] == ["exec", "eof", "close"]


def test_sudo_prompt_is_answered_once_and_the_password_shows_nowhere() -> None:
    output, channel = replay(transcript("password_prompt"), sudo=sudo_for(transcript("password_prompt")))
    assert (output.stdout, output.stderr, output.exit_status) == ("0\n", "", 0)
    assert sent(channel) == [f"{REDACTED}\n"]
    assert channel.unexpected == []
    assert PASSWORD not in output.stdout + output.stderr


def test_nopasswd_with_a_password_credential_sends_nothing_and_keeps_the_commands_stderr() -> None:
    output, channel = replay(transcript("nopasswd_password"), sudo=sudo_for(transcript("nopasswd_password")))
    assert (output.stdout, output.stderr, output.exit_status) == ("0\n", "warn\n", 0)
    assert sent(channel) == []
    assert channel.unexpected == []


def test_nopasswd_with_a_key_runs_under_sudo_n() -> None:
    recorded = transcript("nopasswd_key")
    assert recorded.events[0].data.startswith("sudo -n ")
    output, channel = replay(recorded, sudo=sudo_for(recorded))
    assert (output.stdout, output.stderr, output.exit_status) == ("0\n", "", 0)
    assert channel.unexpected == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "targetpw_refused",
            r"the password was not accepted \(Sorry, try again\.; .*1 incorrect password attempt\)$",
        ),
        ("not_in_sudoers", r"mpsshnone is not in the sudoers file\.$"),
        (
            "key_needs_password",
            r"sudo: a password is required \(a key login has no password to give sudo: it takes a NOPASSWD rule\)$",
        ),
    ],
)
def test_a_sudo_refusal_is_sudo_failed_with_sudos_words(name: str, reason: str) -> None:
    message, channel = refusal(name)
    recorded = transcript(name)
    assert re.match(
        rf"sudo refused to run 'id -u' as root for {recorded.user} on 127\.0\.0\.1: {reason}", message
    )
    assert len(sent(channel)) == (1 if recorded.credential == "password" else 0)  # never a second answer
    assert PASSWORD not in message
    assert channel.unexpected == []


def test_the_replay_notices_a_client_that_departs_from_the_recording() -> None:
    """Replaying the password conversation without a password: the client closes input instead."""
    recorded = transcript("password_prompt")
    channel = ReplayChannel(recorded, secret=PASSWORD)
    line = recorded.events[0].data  # the recorded line, as the password client sent it
    with pytest.raises(ReadTimeout):
        drive(channel, Sudo(recorded.user, recorded.host, None), timeout=5.0, line=line)
    assert channel.unexpected
    assert channel.unexpected[0].startswith("client eof ''")


def scripted(*events: dict[str, object], command: str = "id -u", credential: str = "password") -> Transcript:
    return Transcript(
        "written for this test",
        command,
        credential,
        "ops",
        "198.18.0.10",
        tuple(map(Event.from_json, events)),
    )


def exec_line(command: str, *, with_password: bool) -> dict[str, object]:
    line = compose_command(command, set_path=None, must_sudo=True, sudo_with_password=with_password)
    return {"client": "exec", "data": line}


def test_a_prompt_midprobe_cannot_answer_times_out_saying_so() -> None:
    """A PAM module's own prompt (a one-time code) is not ours: nothing is sent, the command times out."""
    recorded = scripted(
        exec_line("id -u", with_password=True), {"server": "stderr", "data": "Verification code: "}
    )
    channel = ReplayChannel(recorded, secret=PASSWORD)
    started = channel.clock()
    with pytest.raises(
        ReadTimeout, match=r"sudo had not started it, nor shown the password prompt midprobe answers"
    ):
        drive(channel, Sudo("ops", "198.18.0.10", PASSWORD), timeout=30.0, channel_timeout=300.0)
    assert channel.clock() - started >= 30.0
    assert sent(channel) == []


def test_silence_longer_than_the_channel_timeout_is_a_read_timeout() -> None:
    recorded = scripted(
        {"client": "exec", "data": "sleep 100"},
        {"client": "eof"},
        {"server": "silence", "seconds": 100},
        {"server": "eof"},
        command="sleep 100",
    )
    channel = ReplayChannel(recorded)
    with pytest.raises(ReadTimeout, match=r"^waiting for output of 'sleep 100' timed out after 10 s"):
        drive(channel, None, timeout=300.0, channel_timeout=10.0)


def test_output_between_silences_keeps_the_command_alive() -> None:
    recorded = scripted(
        {"client": "exec", "data": "slow"},
        {"client": "eof"},
        {"server": "silence", "seconds": 8},
        {"server": "stdout", "data": "a\n"},
        {"server": "silence", "seconds": 8},
        {"server": "stdout", "data": "b\n"},
        {"server": "exit", "status": 0},
        {"server": "close"},
        {"client": "close"},
        command="slow",
    )
    output, channel = replay(recorded, sudo=None, channel_timeout=10.0)
    assert (output.stdout, output.exit_status) == ("a\nb\n", 0)
    assert output.elapsed_ms >= 16_000.0  # the replayed clock, not real time
    assert channel.unexpected == []


def test_output_past_the_cap_is_cut_and_has_no_exit_status() -> None:
    recorded = scripted(
        {"client": "exec", "data": "yes"},
        {"client": "eof"},
        {"server": "stdout", "data": "y\n" * 1000},
        {"server": "stderr", "data": "e" * 100},
        command="yes",
    )
    output, channel = replay(recorded, sudo=None, max_output=1024)
    assert output.truncated
    assert output.exit_status is None
    assert len(output.stdout) + len(output.stderr) == 1024
    assert channel.client_log[-1].kind == "close"


def test_a_channel_error_is_translated_and_the_channel_still_closed() -> None:
    class Dropping(ReplayChannel):
        def read_stderr(self) -> bytes:
            raise EOFError

    recorded = scripted({"client": "exec", "data": "true"}, {"client": "eof"}, command="true")
    channel = Dropping(recorded, clock=ReplayClock())
    with pytest.raises(NetworkError, match=r"^command 'true': the server closed the connection$"):
        drive(channel, None, timeout=5.0)
    assert channel.client_log[-1].kind == "close"
