"""``midprobe instance``: serve the Table API over HTTPS, and manage the users who may call it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cli.options import TextType, queue_option
from midprobe.runner.ecc.record import AGENT_PREFIX
from midprobe.runner.instance.auth import ROLES
from midprobe.runner.instance.client_certs import CLIENT_CERT_MODES, ClientCertMode

if TYPE_CHECKING:
    from midprobe.probes.credentials.sealing import MidKeyPair

PASSWORD_VARIABLE = "MIDPROBE_INSTANCE_PASSWORD"  # noqa: S105  (the variable's name, not a password)


class ListenType(TextType):
    """``HOST:PORT`` (``[IPv6]:PORT``), checked as the option is read."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from midprobe.runner.instance.serve import parse_listen

        text = super().convert(value, param, ctx)
        try:
            return parse_listen(text)
        except ConfigError as error:
            self.fail(error.message.removeprefix("--listen: "), param, ctx)


@click.group("instance")
def instance() -> None:
    """The instance: the ECC queue served over HTTPS as ServiceNow's Table API (docs/instance.md)."""


@instance.command("serve")
@queue_option
@click.option(
    "--listen",
    type=ListenType(),
    default="127.0.0.1:8443",
    show_default=True,
    help="HOST:PORT to listen on ([IPv6]:PORT; port 0 picks a free one).",
)
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the instance's CA and server certificate, made on first start "
    "(default: next to a SQLite database, NAME-tls).",
)
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve this PEM certificate (with --key) instead of the instance's own.",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The unencrypted PEM private key of --cert.",
)
@click.option(
    "--capabilities",
    "capabilities_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Capabilities TOML whose [[cluster]], [[application]] and [selection] rules apply to the "
    "discoveries this instance runs (unless one brings its own).",
)
@click.option(
    "--client-certs",
    type=click.Choice(CLIENT_CERT_MODES),
    default="off",
    show_default=True,
    help="Client certificates the instance issued (instance cert issue): optional, or required of "
    "every connection; a certificate logs its user in without a password.",
)
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Credentials TOML kept on the instance: each validated MID gets it sealed to its own key.",
)
@click.option(
    "--wire-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append every agent request and answer, as they travel inside TLS, to this file (JSON lines).",
)
@click.option(
    "--wheels",
    "wheels_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of midprobe wheels served to the MIDs for their upgrades (those of the accepted "
    "major version; mid upgrade NAME).",
)
def serve_command(
    queue_url: str,
    listen: Any,
    tls_dir: Path | None,
    cert: Path | None,
    key: Path | None,
    capabilities_file: Path | None,
    client_certs: ClientCertMode,
    credentials_file: Path | None,
    wire_log: Path | None,
    wheels_dir: Path | None,
) -> None:
    """Serve the Table API over HTTPS until SIGTERM; prints the base URL and the CA file agents pin.

    The instance also runs the discoveries started with ``discover run --queue https://...``.
    """
    from midprobe.capabilities.config import load_config
    from midprobe.probes.credentials.sealing import portable_document
    from midprobe.runner.instance.serve import ListenAddress, default_tls_folder, serve
    from midprobe.runner.instance.tls import (
        check_certificate_pair,
        ensure_certificates,
        fingerprint,
        read_certificate,
        read_private_key,
    )

    assert isinstance(listen, ListenAddress)
    capabilities = load_config(capabilities_file) if capabilities_file is not None else None
    from midprobe.runner.instance.agent_api import WireLog

    credentials = None if credentials_file is None else portable_document(credentials_file)
    wire = None if wire_log is None else WireLog(wire_log)
    from midprobe.runner.instance.wheels import WheelShelf

    wheels = None if wheels_dir is None else WheelShelf(wheels_dir)
    if cert is not None:
        read_certificate(cert)
    if key is not None:
        read_private_key(key)
    if (cert is None) != (key is None):
        raise ConfigError("--cert and --key go together")
    if cert is not None and key is not None:
        if tls_dir is not None:
            raise ConfigError("--tls-dir holds the instance's own certificate; give it or --cert/--key")
        tls = check_certificate_pair(cert, key)
    else:
        tls = ensure_certificates(tls_dir or default_tls_folder(queue_url), listen.certificate_hosts)
    credentials_key = _credentials_key(queue_url, tls_dir if cert is None else None)

    def announce(url: str) -> None:
        click.echo(url)
        if tls.ca is not None:
            click.echo(f"CA: {tls.ca.resolve()}")
            click.echo(f"CA fingerprint (SHA-256): {fingerprint(read_certificate(tls.ca))}")

    serve(
        queue_url,
        listen,
        tls,
        announce=announce,
        capabilities=capabilities,
        client_certs=client_certs,
        credentials=credentials,
        wire_log=wire,
        credentials_key=credentials_key,
        wheels=wheels,
    )


def _credentials_key(queue_url: str, tls_dir: Path | None) -> MidKeyPair:
    """The instance's key pair for the discovery credentials it keeps: in its TLS folder (made once).

    With a certificate given by hand and a queue that is no database file there is no folder of
    the instance's own: the pair is held in memory, and a discovery resumed after a restart has
    no credentials (said on stderr).
    """
    from midprobe.probes.credentials.sealing import MidKeyPair
    from midprobe.runner.instance.schedule_credentials import INSTANCE_KEY_FILE
    from midprobe.runner.instance.serve import default_tls_folder

    try:
        folder = tls_dir or default_tls_folder(queue_url)
    except ConfigError:
        click.echo(
            "note: the discovery credentials are sealed to a key held in memory: a discovery resumed "
            "after a restart has none (without --cert/--key the key is kept in --tls-dir)",
            err=True,
        )
        return MidKeyPair.generate()
    return MidKeyPair.load_or_create(folder, INSTANCE_KEY_FILE)


@instance.group("user")
def user() -> None:
    """Users of the Table API (basic auth); passwords come from MIDPROBE_INSTANCE_PASSWORD only."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role", "roles", type=click.Choice(ROLES), multiple=True, required=True, help="A role (repeatable)."
)
@click.option(
    "--mid",
    "mids",
    multiple=True,
    metavar="MIDNAME",
    help="A mid_server user may act only as this MID (repeatable; none given: any MID).",
)
@queue_option
def user_add(name: str, roles: tuple[str, ...], mids: tuple[str, ...], queue_url: str) -> None:
    """Create user NAME (or replace its password, roles and MIDs), password from MIDPROBE_INSTANCE_PASSWORD."""
    from midprobe.runner.instance.auth import check_mid_name, check_password, check_user_name, open_users

    check_user_name(name)
    for mid in mids:
        check_mid_name(mid)
    if mids and "mid_server" not in roles:
        raise ConfigError("only a mid_server user is bound to MIDs", field="--mid")
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is None:
        raise ConfigError(f"set {PASSWORD_VARIABLE} to the password (it is never read from the command line)")
    check_password(password)
    with open_users(queue_url) as users:
        added = users.add(name, password, roles, mids=mids)
    click.echo(f"user {added.name}: {', '.join(added.roles)}{_bound(added.mids)}")


def _bound(mids: tuple[str, ...]) -> str:
    return f" (MID {', '.join(mid.removeprefix(AGENT_PREFIX) for mid in mids)})" if mids else ""


@user.command("list")
@queue_option
def user_list(queue_url: str) -> None:
    """List the users and their roles (never a password)."""
    from midprobe.runner.instance.auth import open_users

    with open_users(queue_url) as users:
        for found in users.list():
            mids = ",".join(mid.removeprefix(AGENT_PREFIX) for mid in found.mids) or "*"
            click.echo(f"{found.name}\t{','.join(found.roles)}\t{mids}")


@instance.group("cert")
def cert() -> None:
    """Client certificates from the instance's CA, for mutual TLS (serve --client-certs)."""


@cert.command("issue")
@click.argument("name")
@queue_option
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The instance's TLS folder (its CA) [next to a SQLite database, NAME-tls].",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write NAME.pem, NAME-key.pem (0600) and ca.pem into.",
)
def cert_issue(name: str, queue_url: str, tls_dir: Path | None, out: Path) -> None:
    """Issue a client certificate for user NAME, signed by the instance's CA (valid 397 days)."""
    from midprobe.runner.instance.auth import check_user_name, open_users
    from midprobe.runner.instance.serve import default_tls_folder
    from midprobe.runner.instance.tls import issue_client_certificate, read_ca

    check_user_name(name)
    folder = tls_dir or default_tls_folder(queue_url)
    read_ca(folder)
    if out.exists() and not out.is_dir():
        raise ConfigError("not a folder", field="--out", source=str(out))
    with open_users(queue_url) as users:
        if users.get(name) is None:
            raise ConfigError(f"no user {name} (add it first: midprobe instance user add)", field="NAME")
    files = issue_client_certificate(folder, name, out)
    click.echo(f"certificate: {files.certificate}")
    click.echo(f"key: {files.key}")
    click.echo(f"CA: {files.ca}")
