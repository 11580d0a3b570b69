"""The credentials file: the issue's exact shape, secrets from the environment, and errors that name
the file, entry and field without ever showing a secret."""

from __future__ import annotations

import copy
import ipaddress
import pickle
import subprocess
from pathlib import Path

import pytest

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials import (
    CredentialStore,
    Secret,
    SNMPCommunityCredential,
    SNMPv3Credential,
    SSHPasswordCredential,
    SSHPrivateKeyCredential,
    load_credential_file,
    parse_credentials,
)
from midprobe.probes.credentials.model import normalise_protocol_name

SECRET = "S3cret-Value-that-must-never-show"
KEY_PASSPHRASE = "key-passphrase-never-shown"


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "", fmt: str | None = None) -> Path:
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", "test", "-f", str(path)]
    if fmt:
        argv += ["-m", fmt]
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    return {
        "ed25519": keygen(folder / "id_ed25519"),
        "ecdsa_encrypted": keygen(folder / "id_ecdsa", "ecdsa", KEY_PASSPHRASE),
        "rsa_pem_encrypted": keygen(folder / "id_rsa_pem", "rsa", KEY_PASSPHRASE, "PEM"),
        "rsa_pkcs8": keygen(folder / "id_rsa_pkcs8", "rsa", "", "PKCS8"),
    }


def issue_example(key_file: Path) -> str:
    return f"""
[[credential]]
id = "linux-admin"
type = "ssh_password"          # ssh_password | ssh_private_key | snmp | snmpv3
user = "admin"
password_env = "MP_TEST_ADMIN_PASSWORD"
[[credential]]
id = "ops-key"
type = "ssh_private_key"
user = "ops"
private_key_file = "{key_file}"
[[credential]]
id = "ro"
type = "snmp"
community = "{SECRET}"
version = "2c"                 # 1 | 2c
[[credential]]
id = "v3"
type = "snmpv3"
user = "monitor"
auth_protocol = "SHA"          # MD5 | SHA | SHA224 | SHA256 | SHA384 | SHA512
auth_key = "{SECRET}-auth"
priv_protocol = "AES"          # DES | AES | AES192 | AES256
priv_key = "{SECRET}-priv"
ip_ranges = ["198.18.0.0/24"]  # optional scope, on any credential
"""


def test_the_issue_example_loads_into_typed_credentials(tmp_path: Path, keys: dict[str, Path]) -> None:
    path = tmp_path / "credentials.toml"
    path.write_text(issue_example(keys["ed25519"]))
    loaded = load_credential_file(path, environ={"MP_TEST_ADMIN_PASSWORD": SECRET})
    admin, ops, ro, v3 = loaded.credentials
    assert isinstance(admin, SSHPasswordCredential)
    assert (admin.id, admin.user, admin.password.reveal(), admin.order) == (
        "linux-admin",
        "admin",
        SECRET,
        100,
    )
    assert isinstance(ops, SSHPrivateKeyCredential)
    assert (ops.user, ops.key_type, ops.private_key_file) == ("ops", "ssh-ed25519", keys["ed25519"])
    public = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{keys['ed25519']}.pub"], capture_output=True, text=True, check=True
    )
    assert ops.key_fingerprint == public.stdout.split()[1]
    assert isinstance(ro, SNMPCommunityCredential)
    assert (ro.community.reveal(), ro.version) == (SECRET, "2c")
    assert isinstance(v3, SNMPv3Credential)
    assert (v3.user, v3.auth_protocol, v3.priv_protocol, v3.security_level) == (
        "monitor",
        "SHA",
        "AES",
        "authPriv",
    )
    assert v3.ip_ranges == (ipaddress.ip_network("198.18.0.0/24"),)
    assert loaded.snmp_public_fallback is True
    everything = repr(loaded) + str(loaded) + "".join(f"{c}" for c in loaded.credentials)
    assert SECRET not in everything


@pytest.mark.parametrize(
    ("key", "passphrase", "key_type"),
    [
        ("ecdsa_encrypted", KEY_PASSPHRASE, "ecdsa-sha2-nistp256"),
        ("rsa_pem_encrypted", KEY_PASSPHRASE, "ssh-rsa"),
        ("rsa_pkcs8", None, "ssh-rsa"),
    ],
)
def test_private_key_formats_and_passphrases(
    keys: dict[str, Path], key: str, passphrase: str | None, key_type: str
) -> None:
    lines = ['[[credential]]', 'id = "k"', 'type = "ssh_private_key"', 'user = "u"',
             f'private_key_file = "{keys[key]}"']  # fmt: skip
    if passphrase:
        lines.append('passphrase_env = "MP_TEST_PASSPHRASE"')
    loaded = parse_credentials("\n".join(lines), environ={"MP_TEST_PASSPHRASE": KEY_PASSPHRASE})
    credential = loaded.credentials[0]
    assert isinstance(credential, SSHPrivateKeyCredential)
    assert credential.key_type == key_type
    assert KEY_PASSPHRASE not in repr(credential)


def test_inline_private_key_from_the_environment(keys: dict[str, Path]) -> None:
    text = '[[credential]]\nid = "k"\ntype = "ssh_private_key"\nuser = "u"\nprivate_key_env = "MP_KEY"\n'
    loaded = parse_credentials(text, environ={"MP_KEY": keys["ed25519"].read_text()})
    credential = loaded.credentials[0]
    assert isinstance(credential, SSHPrivateKeyCredential)
    assert credential.key_type == "ssh-ed25519"
    assert credential.private_key_file is None


def test_relative_key_file_is_read_next_to_the_credentials_file(tmp_path: Path) -> None:
    keygen(tmp_path / "id_ed25519")
    path = tmp_path / "credentials.toml"
    path.write_text(
        '[[credential]]\nid = "k"\ntype = "ssh_private_key"\nuser = "u"\nprivate_key_file = "id_ed25519"\n'
    )
    credential = load_credential_file(path).credentials[0]
    assert isinstance(credential, SSHPrivateKeyCredential)
    assert credential.private_key_file == tmp_path / "id_ed25519"


def test_defaults_and_optional_keys() -> None:
    text = f"""
snmp_public_fallback = false
[[credential]]
id = "v1"
type = "snmp"
community = "{SECRET}"
version = 1
order = 5
tags = ["lab", "printers"]
failure_budget = 3
[[credential]]
id = "noauth"
type = "snmpv3"
user = "watcher"
[[credential]]
id = "authonly"
type = "snmpv3"
user = "watcher"
auth_protocol = "sha-256"
auth_key = "{SECRET}"
priv_protocol = "3des"
priv_key = "{SECRET}"
context_name = "vlan-10"
"""
    loaded = parse_credentials(text)
    v1, noauth, authonly = loaded.credentials
    assert loaded.snmp_public_fallback is False
    assert isinstance(v1, SNMPCommunityCredential)
    assert (v1.version, v1.order, v1.tags, v1.failure_budget) == ("1", 5, frozenset({"lab", "printers"}), 3)
    assert isinstance(noauth, SNMPv3Credential)
    assert noauth.security_level == "noAuthNoPriv"
    assert isinstance(authonly, SNMPv3Credential)
    assert (authonly.auth_protocol, authonly.priv_protocol, authonly.context_name) == (
        "SHA256",
        "3DES",
        "vlan-10",
    )


def entry(kind: str, *lines: str, id_: str = "ops-key") -> str:
    return "\n".join(["[[credential]]", f'id = "{id_}"', f'type = "{kind}"', *lines]) + "\n"


FIRST = entry("snmp", f'community = "{SECRET}"', id_="ro")


@pytest.mark.parametrize(
    ("second", "field", "fragment"),
    [
        (entry("ssh_password", 'user = "u"'), "password", "is required (or password_env"),
        (entry("ssh_password", 'user = "u"', f'password = "{SECRET}"', 'password_env = "X"'), "password",
         "not both"),
        (entry("ssh_password", 'user = "u"', 'password_env = "MP_TEST_UNSET_VARIABLE"'), "password_env",
         "names an environment variable that is not set"),
        (entry("ssh_password", 'user = "u"', 'password_env = "MP_TEST_EMPTY"'), "password_env", "is empty"),
        (entry("ssh_password", 'user = "u"', "password = 12345678"), "password", "must be a string"),
        (entry("ssh_password", f'password = "{SECRET}"'), "user", "is required"),
        (entry("ssh_password", 'user = "u"', f'password = "{SECRET}"', f'pasword = "{SECRET}"'), "pasword",
         "unknown key (did you mean 'password'?): not a key of a ssh_password credential"),
        (entry("ssh_pasword", 'user = "u"'), "type", "must be one of ssh_password, ssh_private_key, snmp, snmpv3 (did you mean 'ssh_password'?)"),
        (entry("ssh_password", 'user = "u"', f'password = "{SECRET}"', 'order = "first"'), "order",
         "must be an integer"),
        (entry("ssh_password", 'user = "u"', f'password = "{SECRET}"', 'ip_ranges = ["198.18.0.0/33"]'),
         "ip_ranges", "holds an item that is not an address or a CIDR network"),
        (entry("ssh_password", 'user = "u"', f'password = "{SECRET}"', 'tags = "lab"'), "tags",
         "must be a list"),
        (entry("snmp", f'community = "{SECRET}"', 'version = "3"'), "version", 'must be "1" or "2c"'),
        (entry("snmp", f'community = "{SECRET}"', id_="ro"), "id", "is used by an earlier credential"),
        (entry("snmpv3", 'user = "m"', 'auth_protocol = "SHA"'), "auth_key", "is required with auth_protocol SHA"),
        (entry("snmpv3", 'user = "m"', 'auth_protocol = "SHA1024"', f'auth_key = "{SECRET}"'), "auth_protocol",
         "must be one of MD5, SHA, SHA224"),
        (entry("snmpv3", 'user = "m"', 'auth_protocol = "MD5"', 'auth_key = "short"'), "auth_key",
         "at least 8 characters"),
        (entry("snmpv3", 'user = "m"', 'priv_protocol = "AES"', f'priv_key = "{SECRET}"'), "priv_protocol",
         "privacy needs authentication"),
        (entry("ssh_private_key", 'user = "u"', 'private_key_file = "/nonexistent/id_ed25519"'),
         "private_key_file", "cannot read /nonexistent/id_ed25519: No such file or directory"),
        (entry("ssh_private_key", 'user = "u"'), "private_key_file", "give exactly one of"),
        (entry("ssh_private_key", 'user = "u"', f'private_key = "{SECRET}"'), "private_key",
         "is not a readable private key"),
    ],
)  # fmt: skip
def test_errors_name_file_entry_and_field_but_no_secret(second: str, field: str, fragment: str) -> None:
    with pytest.raises(CredentialError) as caught:
        parse_credentials(FIRST + second, source="creds.toml", environ={"MP_TEST_EMPTY": ""})
    message = str(caught.value)
    assert message.startswith("creds.toml: credential[2]"), message
    assert f": {field}: " in message, message
    assert fragment in message, message
    assert SECRET not in message
    assert "\n" not in message
    assert caught.value.field == field


def test_encrypted_key_errors(keys: dict[str, Path]) -> None:
    base = entry("ssh_private_key", 'user = "u"', f'private_key_file = "{keys["ecdsa_encrypted"]}"')
    with pytest.raises(CredentialError, match=r'credential\[1\] "ops-key": private_key_file: is encrypted'):
        parse_credentials(base, source="f")
    with pytest.raises(CredentialError, match="passphrase: does not decrypt the private key") as caught:
        parse_credentials(base + 'passphrase = "wrong-passphrase-value"\n', source="f")
    assert "wrong-passphrase-value" not in str(caught.value)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match=r"missing\.toml: cannot read the file: No such file"):
        load_credential_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[credential]]\nid = "x"\npassword = "{SECRET}\n')
    with pytest.raises(CredentialError, match=r"bad\.toml: is not valid TOML: .*line 3") as caught:
        load_credential_file(bad)
    assert SECRET not in str(caught.value)
    with pytest.raises(CredentialError, match=r"credentials: unknown key \(did you mean 'credential'\?\)"):
        parse_credentials('[[credentials]]\nid = "x"\n')
    with pytest.raises(CredentialError, match="credential: must be an array of tables"):
        parse_credentials('[credential]\nid = "x"\n')


def test_an_empty_file_is_an_empty_store() -> None:
    assert CredentialStore.from_file(parse_credentials("")).credentials == ()


def test_protocol_name_spellings() -> None:
    assert [normalise_protocol_name(n) for n in ("sha-256", "SHA1", "aes-128", "3des", "AES_256", "md5")] == [
        "SHA256",
        "SHA",
        "AES",
        "3DES",
        "AES256",
        "MD5",
    ]


def test_secret_never_shows_itself() -> None:
    secret = Secret(SECRET)
    credential = SSHPasswordCredential(id="a", user="u", password=secret)
    for rendering in (
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret:>40}",
        repr(credential),
        str(credential),
    ):
        assert SECRET not in rendering
    assert "********" in repr(credential)
    assert secret.reveal() == SECRET
    assert secret == Secret(SECRET)
    assert secret != Secret("other")
    assert copy.deepcopy(credential).password.reveal() == SECRET
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(credential)
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_constructing_a_credential_in_code_is_validated_too() -> None:
    with pytest.raises(CredentialError, match="credential 'v3': priv_protocol: privacy needs authentication"):
        SNMPv3Credential(id="v3", user="m", priv_protocol="AES", priv_key=Secret(SECRET))


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (entry("snmpv3", 'user = "u"', f'auth_protocol = "{SECRET}"'), "auth_protocol"),
        (entry("snmpv3", 'user = "u"', f'priv_protocol = "{SECRET}"'), "priv_protocol"),
        (f'[[credential]]\nid = "ops-key"\ntype = "{SECRET}"\n', "type"),
        (entry("ssh_password", 'user = "u"', 'password = "p"', f'"{SECRET}" = true'), None),
        (entry("ssh_password", 'user = "u"', f'password_env = "{SECRET}"'), "password_env"),
        (entry("snmp", 'community = "c"', f'ip_ranges = ["{SECRET}"]'), "ip_ranges"),
        (entry("snmp", 'community = "c"', 'version = ["2c"]'), "version"),
        (entry("snmp", 'community = "c"', "version = true"), "version"),
        (entry("snmp", 'community = "c"', "version = 2.0"), "version"),
    ],
)
def test_a_secret_typed_into_the_wrong_place_is_never_echoed(second: str, field: str | None) -> None:
    with pytest.raises(CredentialError) as caught:
        parse_credentials(FIRST + second, source="creds.toml", environ={})
    message = str(caught.value)
    assert SECRET not in message
    assert message.startswith('creds.toml: credential[2] "ops-key": ')
    assert caught.value.field == field


def test_a_secret_as_a_top_level_key_is_counted_not_shown() -> None:
    with pytest.raises(CredentialError) as caught:
        parse_credentials(f'"{SECRET}" = 1\n', source="creds.toml")
    assert SECRET not in str(caught.value)
    assert "key number 1" in str(caught.value)


def test_a_file_that_is_not_utf8_is_a_credential_error(tmp_path: Path) -> None:
    path = tmp_path / "creds.toml"
    path.write_bytes(b'[[credential]]\nid = "\xff"\n')
    with pytest.raises(CredentialError, match=r"creds\.toml: is not UTF-8 text"):
        load_credential_file(path)
