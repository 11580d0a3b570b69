"""``midprobe mid setup``: the guided setup of a MID Server on this machine (a systemd service).

Asks for (or takes as flags) the instance URL, the user and the MID name; pins the instance's
CA (``--ca FILE``, or fetched from the instance and trusted once its SHA-256 fingerprint is
confirmed); checks that the instance answers over TLS with that CA and lets the user act as
that MID; then writes the agent's config, the CA, the password file (0600) and the systemd
unit, and prints how to start it. Nothing is written until every check passed.
"""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path
from typing import Any

import click

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.queue.url import INSTANCE_PASSWORD_VARIABLE

DEFAULT_CONFIG_ROOT = Path("/etc/midprobe")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_STATE_ROOT = Path("/var/lib/midprobe")
TIMEOUT_SECONDS = 15.0
AGENT_PATH = "/api/midprobe/v1"


def _fetch_ca(url: str) -> str:
    """The CA the instance serves, read over TLS not verified yet (it is checked by its fingerprint next)."""
    import httpx

    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        with httpx.Client(base_url=url, verify=unverified, timeout=TIMEOUT_SECONDS) as client:
            response = client.get(f"{AGENT_PATH}/ca")
    except httpx.TransportError as error:
        raise QueueError(f"{url}: cannot reach the instance ({' '.join(str(error).split())})") from None
    try:
        pem = response.json()["result"]["certificate"]
    except (ValueError, KeyError, TypeError):
        pem = None
    if response.status_code != 200 or not isinstance(pem, str):
        raise ConfigError(f"{url}: the instance serves no CA of its own (give --ca FILE)", field="--ca")
    return pem


def _check_connection(url: str, user: str, password: str, name: str, context: ssl.SSLContext) -> None:
    """Log in over TLS verified against the pinned CA and ask for this MID's work (a read: nothing changes)."""
    import httpx

    try:
        with httpx.Client(base_url=url, verify=context, timeout=TIMEOUT_SECONDS) as client:
            response = client.get(
                f"{AGENT_PATH}/agents/{name}/work", params={"wait": "0"}, auth=(user, password)
            )
    except httpx.TransportError as error:
        text = " ".join(str(error).split())
        if "CERTIFICATE_VERIFY_FAILED" in text:
            raise ConfigError(
                f"{url}: the instance's certificate is not signed by this CA", field="--ca"
            ) from None
        raise QueueError(f"{url}: cannot reach the instance ({text})") from None
    if response.status_code == 200:
        return
    try:
        detail = str(response.json()["error"]["detail"])
    except (ValueError, KeyError, TypeError):
        detail = f"HTTP {response.status_code}"
    if response.status_code == 401:
        raise ConfigError(
            f"{url}: the instance refused user {user!r} (wrong name or password)", field="--user"
        )
    raise ConfigError(f"{url}: the instance refused MID {name} for user {user!r}: {detail}", field="--name")


def _pinned_ca(url: str, ca: Path | None, expected: str | None, assume_yes: bool) -> str:
    """The CA to pin, as PEM: ``--ca``'s, or the instance's once its fingerprint is confirmed."""
    from cryptography import x509

    from midprobe.runner.instance.tls import fingerprint

    if ca is not None:
        return ca.read_text(encoding="ascii")
    pem = _fetch_ca(url)
    try:
        found = fingerprint(x509.load_pem_x509_certificate(pem.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError(f"{url}: the CA the instance sent is not a PEM certificate", field="--ca") from None
    click.echo(f"The instance's CA has the SHA-256 fingerprint\n  {found}")
    if expected is not None:
        if expected.replace(":", "").upper() != found.replace(":", ""):
            raise ConfigError(
                f"the instance's CA is {found}, not the fingerprint given: do not trust it",
                field="--ca-fingerprint",
            )
    elif assume_yes or not click.confirm(
        "Is this the fingerprint `midprobe instance serve` printed on the instance?", default=False
    ):
        raise ConfigError(
            "the CA was not confirmed (compare the fingerprint, or give --ca-fingerprint or --ca)",
            field="--ca-fingerprint",
        )
    return pem


def _write(path: Path, text: str, *, private: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None


@click.command("setup")
@click.option(
    "--url", default=None, metavar="https://HOST:PORT", help="The instance's URL (asked if not given)."
)
@click.option("--user", default=None, help="The instance user of this MID (asked if not given).")
@click.option("--name", default=None, help="This MID's name (asked if not given).")
@click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The instance's CA file; without it the CA is fetched from the instance and its fingerprint confirmed.",
)
@click.option(
    "--ca-fingerprint",
    default=None,
    metavar="SHA256",
    help="Trust the fetched CA only with this SHA-256 fingerprint (what instance serve printed), without asking.",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where the config, CA and password file go [{DEFAULT_CONFIG_ROOT}/NAME].",
)
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_UNIT_DIR,
    show_default=True,
    help="Where the systemd unit goes.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"The agent's state: its key pair and upgrades [{DEFAULT_STATE_ROOT}/NAME].",
)
@click.option(
    "--spool-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The agent's result spool [STATE_DIR/spool].",
)
@click.option(
    "--lab",
    "lab_mode",
    is_flag=True,
    help="Write lab_mode = true: the agent refuses targets outside the lab.",
)
@click.option(
    "--raw-sockets",
    is_flag=True,
    help="Give the agent CAP_NET_RAW (and nothing else): SYN port scans, ARP/ICMP sweeps, nmap -sS/-O; "
    "without it they fall back to TCP connect.",
)
@click.option("-y", "--yes", "assume_yes", is_flag=True, help="Ask nothing: every value comes from flags.")
def setup(
    url: str | None,
    user: str | None,
    name: str | None,
    ca: Path | None,
    ca_fingerprint: str | None,
    config_dir: Path | None,
    unit_dir: Path,
    state_dir: Path | None,
    spool_dir: Path | None,
    lab_mode: bool,
    raw_sockets: bool,
    assume_yes: bool,
) -> None:
    """Set this machine up as a MID Server: config, pinned CA, password file and systemd unit.

    The password comes from MIDPROBE_INSTANCE_PASSWORD, or is asked (hidden); never from the
    command line. Nothing is written until the instance accepted the user as this MID.
    """
    from midprobe.runner.agent.service import MidService, agent_config, environment_file, systemd_unit
    from midprobe.runner.ecc.record import normalize_agent_name
    from midprobe.runner.instance.auth import check_password, check_user_name
    from midprobe.runner.instance.tls import read_certificate
    from midprobe.runner.queue.url import InstanceLocation, parse_queue_url

    for flag, folder_given in (
        ("--config-dir", config_dir),
        ("--unit-dir", unit_dir),
        ("--state-dir", state_dir),
        ("--spool-dir", spool_dir),
    ):
        if folder_given is not None and folder_given.exists() and not folder_given.is_dir():
            raise ConfigError("not a folder", field=flag, source=str(folder_given))
    if ca is not None:
        read_certificate(ca)

    def ask(value: str | None, prompt: str, flag: str, **options: Any) -> str:
        if value is not None:
            return value
        if assume_yes:
            raise ConfigError("missing (--yes asks nothing)", field=flag)
        return str(click.prompt(prompt, **options))

    location = parse_queue_url(ask(url, "Instance URL (https://HOST:PORT)", "--url"))
    if not isinstance(location, InstanceLocation):
        raise ConfigError("the instance URL is https://HOST:PORT", field="--url")
    base = location.url
    user = check_user_name(ask(user, "Instance user", "--user"))
    mid = normalize_agent_name(ask(name, "MID name", "--name")).removeprefix("mid.server.")
    if mid == "*":
        raise ConfigError("a MID has a name of its own, not *", field="--name")
    password = os.environ.get(INSTANCE_PASSWORD_VARIABLE) or ask(
        None, f"Password of {user}", INSTANCE_PASSWORD_VARIABLE, hide_input=True
    )
    check_password(password)

    pem = _pinned_ca(base, ca, ca_fingerprint, assume_yes)
    folder = config_dir or DEFAULT_CONFIG_ROOT / mid
    state = (state_dir or DEFAULT_STATE_ROOT / mid).absolute()
    service = MidService(
        name=mid,
        url=base,
        user=user,
        ca_file=folder / "ca.pem",
        config_file=folder / "agent.toml",
        environment_file=folder / "agent.env",
        spool_dir=(spool_dir or state / "spool").absolute(),
        state_dir=state,
        program=(_interpreter(state), "-m", "midprobe.runner"),
        lab_mode=lab_mode,
        raw_sockets=raw_sockets,
    )
    try:
        pinned = ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise ConfigError("not a PEM CA certificate", field="--ca") from None
    _check_connection(base, user, password, mid, pinned)
    _write(service.ca_file, pem)
    _write(service.environment_file, environment_file(password), private=True)
    _write(service.config_file, agent_config(service))
    unit = unit_dir / service.unit_name
    _write(unit, systemd_unit(service))
    if _through_current():  # the unit starts whatever `current` points at: this environment, for now
        from midprobe.runner.agent.upgrade import point_current, running_python, venvs_folder

        point_current(venvs_folder(state), Path(running_python()))
    click.echo(f"MID {mid}: the instance {base} accepts user {user}")
    for what, path in [
        ("config", service.config_file),
        ("CA", service.ca_file),
        ("password", service.environment_file),
        ("unit", unit),
    ]:
        click.echo(f"  {what}: {path}")
    click.echo("Start it:")
    click.echo(f"  systemctl daemon-reload && systemctl enable --now {service.unit_name}")
    click.echo(f"  journalctl -u {service.unit_name} -f    # its log")


def _through_current() -> bool:
    """Whether the unit starts the agent through ``STATE/upgrades/venvs/current``: when midprobe
    is installed in a virtual environment (the kind an upgrade makes and switches to)."""
    return sys.prefix != sys.base_prefix


def _interpreter(state: Path) -> str:
    """The Python the unit starts: installed in a virtual environment, the one ``STATE/upgrades/
    venvs/current`` points at (this one until the instance upgrades the MID, which re-points it),
    so a restart keeps the version the MID upgraded to; else this interpreter."""
    from midprobe.runner.agent.upgrade import venvs_folder

    if not _through_current():
        return sys.executable
    return str(venvs_folder(state) / "current" / "bin" / Path(sys.executable).name)


__all__ = ["setup"]
