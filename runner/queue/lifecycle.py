"""The MID lifecycle as data (pure): who may work, which versions the instance accepts, MID issues.

The queue enforces :func:`work_refusal` in every claim (SQLite, PostgreSQL, and the instance for
HTTPS agents), ``midprobe mid list`` shows it, and the ``mid.server.*`` broadcast copies work only
to the MIDs it lets through.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from midprobe.capabilities.errors import ConfigError

if TYPE_CHECKING:
    from midprobe.runner.queue.base import AgentRegistration, EccQueue

AdminState = Literal["", "paused", "draining"]
#: What an operator asked of a MID: nothing (``""``), ``paused`` (claims nothing until resumed),
#: ``draining`` (finishes in-flight work, claims nothing new, then shows Drained).
ADMIN_STATES: Final[tuple[AdminState, ...]] = ("", "paused", "draining")

IssueState = Literal["New", "Acknowledged", "Resolved"]
ISSUE_STATES: Final[tuple[IssueState, ...]] = ("New", "Acknowledged", "Resolved")
IssueSource = Literal["mid", "instance"]
ISSUE_SOURCES: Final[tuple[IssueSource, ...]] = ("mid", "instance")

#: The kinds of issue midprobe raises (another name is accepted: a MID may know more).
ISSUE_NMAP_MISSING: Final = "nmap_missing"
ISSUE_SPOOL_GROWING: Final = "spool_growing"
ISSUE_PROBE_FAILURES: Final = "probe_failures"
ISSUE_CLOCK_SKEW: Final = "clock_skew"
ISSUE_VERSION: Final = "version_incompatible"

#: ``midprobe_setting`` names.
SETTING_ACCEPTED_MAJOR: Final = "accepted_mid_major"
SETTING_AUTO_VALIDATE: Final = "auto_validate"
#: The version every unpinned MID upgrades to at its next upgrade check ("" = none asked).
SETTING_MID_VERSION: Final = "mid_version"
SETTINGS: Final = (SETTING_ACCEPTED_MAJOR, SETTING_AUTO_VALIDATE, SETTING_MID_VERSION)

UpgradeState = Literal["Requested", "Upgrading", "Succeeded", "Failed"]
#: An ``ecc_agent_upgrade`` row's state: asked for (``mid upgrade``), under way, then how it ended.
UPGRADE_STATES: Final[tuple[UpgradeState, ...]] = ("Requested", "Upgrading", "Succeeded", "Failed")


@functools.cache
def midprobe_version() -> str:
    """The installed midprobe's version (``0.1.0``): the ``Version:`` of the first
    ``midprobe-*.dist-info`` on ``sys.path``, as ``importlib.metadata.version`` finds it, read
    directly (importlib.metadata and its email parser cost a scan's start-up a tenth of its imports);
    importlib.metadata itself only where no such directory is found (an egg, a zip)."""
    version = _dist_info_version()
    if version is not None:
        return version
    import importlib.metadata

    try:
        return importlib.metadata.version("midprobe")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0.0.0"


def _dist_info_version() -> str | None:
    for entry in sys.path:
        try:
            names = sorted(name for name in os.listdir(entry or ".") if name.startswith("midprobe-"))
        except OSError:  # not a directory (a zip), or gone
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            try:
                with open(os.path.join(entry or ".", name, "METADATA"), encoding="utf-8") as metadata:
                    for line in metadata:
                        if not line.strip():  # the headers end: no Version field
                            break
                        if line.startswith("Version:"):
                            return line.partition(":")[2].strip()
            except OSError:
                continue
    return None


def major_version(version: str) -> str:
    """The major part of ``version`` (``"0"`` of ``0.1.0``); ``ConfigError`` for what is no version."""
    head = version.strip().split(".", 1)[0]
    if not head.isascii() or not head.isdigit():
        raise ConfigError(f"{version!r} is not a version (MAJOR.MINOR.PATCH)", field="version")
    return str(int(head))


def check_admin_state(state: str) -> AdminState:
    for known in ADMIN_STATES:
        if state == known:
            return known
    raise ConfigError(f"{state!r} is not an admin state (paused, draining, or empty)", field="admin_state")


def check_issue_state(state: str) -> IssueState:
    for known in ISSUE_STATES:
        if state == known:
            return known
    raise ConfigError(f"{state!r} is not an issue state ({', '.join(ISSUE_STATES)})", field="state")


def check_upgrade_state(state: str) -> UpgradeState:
    for known in UPGRADE_STATES:
        if state == known:
            return known
    raise ConfigError(f"{state!r} is not an upgrade state ({', '.join(UPGRADE_STATES)})", field="state")


def check_version(version: str, field: str = "version") -> str:
    """``version`` if it is a PEP 440 version midprobe can compare (``0.1.2``, ``0.2.0+local``)."""
    text = version.strip()
    if not text or not all(c.isascii() and (c.isalnum() or c in ".+-_!") for c in text):
        raise ConfigError(f"{version!r} is not a version (MAJOR.MINOR.PATCH)", field=field)
    major_version(text)
    return text


def wheel_version(filename: str) -> str | None:
    """The version of a midprobe wheel named ``filename`` (``midprobe-0.1.2-py3-none-any.whl``), else ``None``."""
    parts = filename.removesuffix(".whl").split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6) or parts[0] != "midprobe":
        return None
    try:
        return check_version(parts[1])
    except ConfigError:
        return None


def upgrade_refusal(version: str, pinned_version: str, wanted: str) -> str | None:
    """Why a MID running ``version`` does not upgrade to ``wanted`` (``None``: it does)."""
    if not wanted:
        return "no version is wanted"
    if pinned_version:
        return f"pinned to {pinned_version}: a pinned MID never upgrades"
    if wanted == version:
        return f"runs {version} already"
    return None


def check_issue_source(source: str) -> IssueSource:
    for known in ISSUE_SOURCES:
        if source == known:
            return known
    raise ConfigError(f"{source!r} is not an issue source (mid or instance)", field="source")


def version_refusal(version: str, pinned_version: str, accepted_major: str) -> str | None:
    """Why the instance refuses a MID of ``version`` (``None``: it accepts it).

    The instance accepts its own major version; a MID pinned to a version must run exactly that one.
    """
    if not version:
        return "registered no version"
    try:
        major = major_version(version)
    except ConfigError:
        return f"version {version!r} is not a version"
    if pinned_version and version != pinned_version:
        return f"version {version} is not the pinned version {pinned_version}"
    if accepted_major and major != accepted_major:
        return f"version {version} is not accepted (the instance accepts {accepted_major}.x)"
    return None


def work_refusal(agent: AgentRegistration, accepted_major: str) -> str | None:
    """Why ``agent`` may claim no work now (``None``: it may). The claim of every backend asks this."""
    if not agent.validated:
        return "not validated"
    if agent.admin_state == "paused":
        return "paused"
    if agent.admin_state == "draining":
        return "draining"
    return version_refusal(agent.version, agent.pinned_version, accepted_major)


def credentials_refusal(agent: AgentRegistration, accepted_major: str) -> str | None:
    """Why ``agent`` may receive no credentials (``None``: it may, sealed to ``agent.public_key``).

    A paused or draining MID keeps its credentials (it finishes work with them); an unvalidated
    or incompatible one, or one without a key, gets none.
    """
    if not agent.validated:
        return "not validated"
    if not agent.public_key:
        return "registered no public key"
    return version_refusal(agent.version, agent.pinned_version, accepted_major)


@dataclass(frozen=True)
class MidAction:
    """One thing an operator does to a MID (``midprobe mid VERB NAME``, the console's buttons)."""

    verb: str
    done: str
    """What the MID is afterwards, as ``mid VERB`` prints it (``validated``)."""
    summary: str
    validated: bool | None = None
    admin_state: AdminState | None = None
    rekey: bool | None = None

    def offered(self, agent: AgentRegistration) -> bool:
        """Whether the action would change ``agent`` (the console offers only those)."""
        if self.validated is not None:
            return agent.validated != self.validated
        if self.admin_state is not None:
            return agent.admin_state != self.admin_state
        return True

    def apply(self, queue: EccQueue, name: str) -> AgentRegistration:
        """Make the change to MID ``name`` on ``queue``; ``ConfigError`` when no such MID is registered."""
        registered_agent(queue, name)
        return queue.update_agent(
            name, validated=self.validated, admin_state=self.admin_state, rekey=self.rekey
        )


def registered_agent(queue: EccQueue, name: str) -> AgentRegistration:
    """MID ``name``'s registration on ``queue``; ``ConfigError`` (naming ``NAME``) when there is none."""
    found = queue.get_agent(name)
    if found is None:
        raise ConfigError(f"no MID named {name!r} is registered on {queue.url}", field="NAME")
    return found


MID_ACTIONS: Final = {
    action.verb: action
    for action in (
        MidAction(
            "validate",
            "validated",
            "Validate MID NAME: it may claim work and receive credentials sealed to its key.",
            validated=True,
        ),
        MidAction(
            "invalidate",
            "invalidated",
            "Invalidate MID NAME: no work, its credentials dropped, a new key pair at its next check.",
            validated=False,
        ),
        MidAction(
            "rekey",
            "rekey requested",
            "Ask MID NAME for a new key pair; what was sealed to the old one opens no more.",
            rekey=True,
        ),
        MidAction(
            "pause",
            "paused",
            "Pause MID NAME: it claims nothing until resumed (work in flight finishes).",
            admin_state="paused",
        ),
        MidAction(
            "resume",
            "resumed",
            "Resume a paused or drained MID NAME: it claims work again.",
            admin_state="",
        ),
        MidAction(
            "drain",
            "draining",
            "Drain MID NAME: it finishes its work in flight, claims nothing new, then shows Drained.",
            admin_state="draining",
        ),
    )
}
"""The operator's MID actions by verb, in the order ``midprobe mid --help`` and the console list them."""
CONSOLE_MID_ACTIONS: Final = ("validate", "invalidate", "pause", "resume", "drain")
"""The actions the console's MID page offers (a rekey stays a command)."""


@dataclass(frozen=True)
class AgentUpgrade:
    """One ``ecc_agent_upgrade`` row: one upgrade of a MID, asked for or started by its own check.

    ``started``: when it was asked for or began; ``ended``: when it succeeded or failed (``None``
    before); ``reason``: why it failed (or what it became).
    """

    sys_id: str
    agent: str
    from_version: str
    to_version: str
    state: UpgradeState
    reason: str
    started: datetime
    ended: datetime | None

    @property
    def short_agent(self) -> str:
        return self.agent.removeprefix("mid.server.")


@dataclass(frozen=True)
class AgentIssue:
    """One ``ecc_agent_issue`` row: something wrong with a MID, raised by the MID or the instance.

    One issue per MID and ``kind`` is open (New or Acknowledged) at a time; raising it again
    counts it (``count``) and updates its message.
    """

    sys_id: str
    agent: str
    kind: str
    source: IssueSource
    message: str
    state: IssueState
    count: int
    created: datetime
    updated: datetime

    @property
    def short_agent(self) -> str:
        return self.agent.removeprefix("mid.server.")


__all__ = [
    "ADMIN_STATES",
    "CONSOLE_MID_ACTIONS",
    "ISSUE_CLOCK_SKEW",
    "ISSUE_NMAP_MISSING",
    "ISSUE_PROBE_FAILURES",
    "ISSUE_SOURCES",
    "ISSUE_SPOOL_GROWING",
    "ISSUE_STATES",
    "ISSUE_VERSION",
    "MID_ACTIONS",
    "SETTINGS",
    "SETTING_ACCEPTED_MAJOR",
    "SETTING_AUTO_VALIDATE",
    "SETTING_MID_VERSION",
    "UPGRADE_STATES",
    "AdminState",
    "AgentIssue",
    "AgentUpgrade",
    "IssueSource",
    "IssueState",
    "MidAction",
    "UpgradeState",
    "check_admin_state",
    "check_issue_source",
    "check_issue_state",
    "check_upgrade_state",
    "check_version",
    "credentials_refusal",
    "major_version",
    "midprobe_version",
    "registered_agent",
    "upgrade_refusal",
    "version_refusal",
    "wheel_version",
    "work_refusal",
]
