"""The pure halves of the SSH probes: parameters, the command line, result XML, known_hosts, errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import paramiko
import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import (
    NetworkError,
    ProbeError,
    ProbeParameterError,
    ProtocolError,
    ReadTimeout,
    TargetNotAllowed,
)
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SSHPasswordCredential
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.ssh.channel import (
    DEFAULT_PATH,
    SUDO_PROMPT,
    SUDO_STARTED,
    CommandOutput,
    compose_command,
    split_sudo_stderr,
    sudo_failure_reason,
)
from midprobe.probes.ssh.command import (
    PROBE,
    SSHCommandProbe,
    encode_command_output,
    parse_command_params,
    xml_text,
)
from midprobe.probes.ssh.known_hosts import (
    FileKnownHosts,
    HostKey,
    InMemoryKnownHosts,
    format_known_hosts_line,
    parse_known_hosts,
)
from midprobe.probes.ssh.session import ConnectionInfo
from midprobe.probes.ssh.transport import translate_error

KEY = HostKey("ssh-ed25519", base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode())
OTHER = HostKey("ssh-ed25519", base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"j" * 36).decode())


def test_defaults_follow_ecc_section_4() -> None:
    params = parse_command_params("198.18.0.10", {"name": "uname -a"})
    assert params.command == "uname -a"
    assert params.options.port == 22
    assert params.must_sudo is False
    assert params.options.command_timeout_ms == 300_000
    assert params.options.channel_timeout_ms == 300_000
    assert params.set_path == DEFAULT_PATH == "/usr/sbin:/usr/bin:/bin:/sbin"
    assert params.options.credential_id is None
    assert params.options.credential_tag is None


def test_parameters_are_read() -> None:
    params = parse_command_params(
        "198.18.0.10",
        {
            "command": "df -k",
            "port": "2222",
            "must_sudo": "TRUE",
            "command_timeout_ms": "1000",
            "channel_timeout_ms": "500",
            "set_path": "false",
            "credential_id": "ops-key",
            "credential_tag": "lab",
            "strict_host_key_checking": "yes",
            "max_output_bytes": "4096",
        },
    )
    assert (params.command, params.options.port, params.must_sudo, params.set_path) == (
        "df -k",
        2222,
        True,
        None,
    )
    assert params.options.timeouts().command == 1.0
    assert params.options.timeouts().channel == 0.5
    assert (params.options.credential_id, params.options.credential_tag) == ("ops-key", "lab")
    assert params.options.strict_host_key_checking is True
    assert params.max_output_bytes == 4096
    assert parse_command_params("198.18.0.10", {"name": "x", "set_path": "/opt/bin"}).set_path == "/opt/bin"


@pytest.mark.parametrize(
    ("source", "parameters", "parameter"),
    [
        ("linux1", {"name": "x"}, "source"),
        ("198.18.0.10", {}, "name"),
        ("198.18.0.10", {"name": "x", "port": "0"}, "port"),
        ("198.18.0.10", {"name": "x", "port": "ssh"}, "port"),
        ("198.18.0.10", {"name": "x", "must_sudo": "maybe"}, "must_sudo"),
        ("198.18.0.10", {"name": "x", "command_timeout_ms": "-1"}, "command_timeout_ms"),
        ("198.18.0.10", {"name": "x", "set_path": "/bin;rm -rf /"}, "set_path"),
    ],
)
def test_bad_parameters_name_the_parameter(source: str, parameters: dict[str, str], parameter: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        parse_command_params(source, parameters)
    assert caught.value.parameter == parameter


def test_command_line_with_path_and_sudo() -> None:
    assert compose_command("id", set_path=None, must_sudo=False, sudo_with_password=False) == "id"
    assert (
        compose_command("id", set_path=DEFAULT_PATH, must_sudo=False, sudo_with_password=False)
        == "PATH=/usr/sbin:/usr/bin:/bin:/sbin:$PATH; export PATH; id"
    )
    with_key = compose_command("cat /etc/shadow", set_path=None, must_sudo=True, sudo_with_password=False)
    assert with_key.startswith("sudo -n -- sh -c ")
    with_password = compose_command("echo 'a b'", set_path=None, must_sudo=True, sudo_with_password=True)
    assert with_password.startswith(f"sudo -S -p '{SUDO_PROMPT}' -- sh -c ")
    # the quoted script runs in a shell exactly as given: the start marker, then (with a password,
    # which sudo reads from our stdin) the command's stdin from /dev/null
    started = f"printf '%s\\n' '{SUDO_STARTED}' >&2; "
    assert shown_script(with_key) == f"{started}cat /etc/shadow"
    assert shown_script(with_password) == f"{started}exec </dev/null; echo 'a b'"
    with pytest.raises(ValueError, match="set_path"):
        compose_command("id", set_path="/bin; reboot", must_sudo=False, sudo_with_password=False)


def shown_script(line: str) -> str:
    """The script ``sudo ... -- sh -c SCRIPT`` hands to the root shell, unquoted by a real shell."""
    script = line.split(" -- sh -c ", 1)[1]
    shown = subprocess.run(["sh", "-c", f"printf %s {script}"], capture_output=True, text=True, check=True)
    return shown.stdout


def test_the_root_shell_marks_the_start_and_only_the_command_output_is_kept() -> None:
    """The script sudo would run, run by a real sh: the marker splits sudo's stderr from the command's."""
    line = compose_command(
        "cat; echo out; echo err >&2", set_path=DEFAULT_PATH, must_sudo=True, sudo_with_password=True
    )
    ran = subprocess.run(["sh", "-c", shown_script(line)], input=b"secret\n", capture_output=True, check=True)
    assert ran.stdout == b"out\n"  # cat read /dev/null, not what came after the password
    sudo_text, command_stderr = split_sudo_stderr(SUDO_PROMPT.encode() + ran.stderr)
    assert (sudo_text, command_stderr) == (b"", b"err\n")


def test_split_sudo_stderr() -> None:
    prompt, started = SUDO_PROMPT.encode(), SUDO_STARTED.encode() + b"\n"
    assert split_sudo_stderr(prompt + started + b"warn\n") == (b"", b"warn\n")
    # a refused password: the second prompt read end of input and sudo ended its line
    refused = prompt + b"Sorry, try again.\n" + prompt + b"\nsudo: 1 incorrect password attempt\n"
    assert split_sudo_stderr(refused) == (b"Sorry, try again.\nsudo: 1 incorrect password attempt\n", None)
    # sudo's own warnings before the start stay; what the command prints after it is never touched
    assert split_sudo_stderr(b"sudo: unable to resolve host x\n" + started + prompt + b"\n") == (
        b"sudo: unable to resolve host x\n",
        prompt + b"\n",
    )
    assert split_sudo_stderr(b"") == (b"", None)


SUDO_LINES = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="[\n"), min_size=1, max_size=20),
    max_size=3,
)


@given(SUDO_LINES, st.binary(max_size=60))
def test_split_sudo_stderr_keeps_any_command_stderr(sudo_lines: list[str], command_says: bytes) -> None:
    """Whatever sudo printed around its prompt is sudo's; whatever follows the start marker, the command's."""
    sudo_says = "".join(f"{line}\n" for line in sudo_lines).encode()
    stderr = SUDO_PROMPT.encode() + sudo_says + SUDO_STARTED.encode() + b"\n" + command_says
    assert split_sudo_stderr(stderr) == (sudo_says, command_says)


def test_sudo_failure_reasons() -> None:
    assert (
        sudo_failure_reason("ops is not in the sudoers file.\n", with_password=True, prompts=1, exit_status=1)
        == "ops is not in the sudoers file."
    )
    assert sudo_failure_reason(
        "Sorry, try again.\nsudo: 1 incorrect password attempt\n",
        with_password=True,
        prompts=2,
        exit_status=1,
    ) == ("the password was not accepted (Sorry, try again.; sudo: 1 incorrect password attempt)")
    assert sudo_failure_reason(
        "sudo: a password is required\n", with_password=False, prompts=0, exit_status=1
    ).endswith("(a key login has no password to give sudo: it takes a NOPASSWD rule)")
    assert sudo_failure_reason(
        "sh: 1: sudo: not found\n", with_password=False, prompts=0, exit_status=127
    ) == ("sh: 1: sudo: not found")
    assert (
        sudo_failure_reason("", with_password=True, prompts=0, exit_status=1)
        == "sudo ended with exit status 1 and said nothing"
    )


def connection_info() -> ConnectionInfo:
    return ConnectionInfo(
        host="198.18.0.10",
        port=22,
        credential_id="linux-admin",
        user="admin",
        host_key=KEY,
        host_key_status="known",
        server_version="SSH-2.0-OpenSSH_9.2p1",
        credentials_tried=("wrong", "linux-admin"),
    )


def test_result_shape() -> None:
    output = CommandOutput("uname -a", "Linux x\n", "", 0, False, 12.5)
    element = encode_command_output(output, connection_info())
    assert element.tag == "result"
    assert element.get("command") == "uname -a"
    assert element.get("exit_status") == "0"
    assert element.get("credential_id") == "linux-admin"
    assert element.get("host_key") == f"ssh-ed25519 {KEY.fingerprint}"
    assert element.get("credentials_tried") is None
    assert [child.tag for child in element] == ["stdout", "stderr"]
    assert element.findtext("stdout") == "Linux x\n"
    debug = encode_command_output(output, connection_info(), credentials_debug=True)
    assert debug.get("credentials_tried") == "wrong,linux-admin"


@given(st.text(max_size=50))
def test_any_output_makes_well_formed_xml(text: str) -> None:
    output = CommandOutput(text, text, text, None, False, 1.0)
    encoded = ET.tostring(encode_command_output(output, connection_info()))
    parsed = ET.fromstring(encoded)
    # element text goes through XML end-of-line normalisation; attributes are escaped exactly
    assert parsed.findtext("stdout") == xml_text(text).replace("\r\n", "\n").replace("\r", "\n")
    assert parsed.get("command") == xml_text(text)


def test_xml_text_replaces_control_characters() -> None:
    assert xml_text("a\x1b[31mred\x00\tok\n") == "a\ufffd[31mred\ufffd\tok\n"


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    key_type, key_base64 = (tmp_path / "k.pub").read_text().split()[:2]
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True
    )
    assert HostKey(key_type, key_base64).fingerprint == listed.stdout.split()[1]


def test_known_hosts_lines_plain_port_hashed_and_markers() -> None:
    salt = b"0123456789abcdefghij"
    hashed = hmac.new(salt, b"[198.18.0.11]:2222", hashlib.sha1).digest()
    text = "\n".join(
        [
            "# comment",
            f"198.18.0.10,linux1 {KEY.key_type} {KEY.key_base64}",
            f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(hashed).decode()} {KEY.key_type} {KEY.key_base64}",
            f"@revoked 198.18.0.12 {KEY.key_type} {KEY.key_base64}",
            f"198.18.0.* {OTHER.key_type} {OTHER.key_base64}",
            "broken line",
            "198.18.0.13 ssh-ed25519 !!notbase64!!",
        ]
    )
    lines = parse_known_hosts(text)
    assert len(lines) == 4
    assert lines[0].matches("198.18.0.10")
    assert lines[0].matches("linux1")
    assert not lines[0].matches("198.18.0.1")
    assert lines[1].matches("[198.18.0.11]:2222")
    assert not lines[1].matches("198.18.0.11")
    assert lines[2].marker == "@revoked"
    assert lines[3].matches("198.18.0.99")


def test_file_known_hosts_round_trip_and_replacement(tmp_path: Path) -> None:
    store = FileKnownHosts(tmp_path / "sub" / "known_hosts")
    assert store.lookup("198.18.0.10", 22) == ()
    store.remember("198.18.0.10", 22, KEY)
    store.remember("198.18.0.10", 2222, OTHER)
    assert store.lookup("198.18.0.10", 22) == (KEY,)
    assert store.lookup("198.18.0.10", 2222) == (OTHER,)
    store.remember("198.18.0.10", 22, OTHER)  # a changed key replaces the old one of its type
    assert store.lookup("198.18.0.10", 22) == (OTHER,)
    text = (tmp_path / "sub" / "known_hosts").read_text()
    assert text.count("\n") == 2
    assert format_known_hosts_line("198.18.0.10", 2222, OTHER) in text
    memory = InMemoryKnownHosts()
    memory.remember("198.18.0.10", 22, KEY)
    assert memory.lookup("198.18.0.10", 22) == (KEY,)
    assert memory.lookup("198.18.0.10", 23) == ()


def test_foreign_exceptions_are_translated() -> None:
    assert isinstance(
        translate_error(ConnectionRefusedError(111, "Connection refused"), "x", 1), NetworkError
    )
    assert isinstance(translate_error(TimeoutError(), "x", 1), ReadTimeout)
    assert isinstance(translate_error(EOFError(), "x", 1), NetworkError)
    assert isinstance(
        translate_error(paramiko.SSHException("Error reading SSH protocol banner"), "x", 1), ProtocolError
    )
    assert isinstance(
        translate_error(paramiko.ssh_exception.IncompatiblePeer("no kex"), "x", 1), ProtocolError
    )
    already = ReadTimeout("y", 2)
    assert translate_error(already, "x", 1) is already


def test_paramikos_own_banner_timeout_is_a_read_timeout() -> None:
    """paramiko raises SSHException from the socket timeout when its banner wait fires before ours."""
    try:
        try:
            raise TimeoutError
        except TimeoutError as timeout:
            raise paramiko.SSHException("Error reading SSH protocol banner") from timeout
    except paramiko.SSHException as error:
        translated = translate_error(error, "SSH handshake with h:22", 1.5)
    assert isinstance(translated, ReadTimeout)
    assert "timed out after 1.5 s" in str(translated)


def test_a_target_outside_the_policy_is_refused_before_any_connection() -> None:
    store = CredentialStore([SSHPasswordCredential(id="a", user="u", password=Secret("pw"))])
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)
    params = PROBE.parse_params("192.0.2.10", {"name": "true"})
    with pytest.raises(TargetNotAllowed, match=r"target 192\.0\.2\.10 is outside the allowed networks"):
        asyncio.run(PROBE.run(params, context))


def test_no_credentials_is_a_probe_error() -> None:
    params = SSHCommandProbe().parse_params("127.0.0.1", {"name": "true"})
    with pytest.raises(ProbeError, match="no credentials were given"):
        asyncio.run(SSHCommandProbe().run(params, ProbeContext(policy=TargetPolicy.lab())))


def test_both_ssh_topics_are_registered() -> None:
    registry = default_registry()
    assert "SSHCommand" in registry
    assert "SSHClassify" in registry
