"""The MID's side of its lifecycle: its key pair, waiting for validation, rekeys, the operator's
pause and drain, sealed credentials, and the issues it raises.

The agent calls :meth:`MidLifecycle.check` after registering and after every heartbeat. The queue
itself refuses work to a MID that is not validated, is paused or draining, or runs a version the
instance does not accept; this side says so in the log, shows the status the operator asked for
(Paused, Draining, then Drained), opens the credentials the instance sealed to its key (its own,
and those of each discovery whose work it holds: kept in memory only), and raises issues: nmap
missing, a growing spool, repeated probe failures, its clock off the queue's.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from midprobe.capabilities.errors import MidprobeError
from midprobe.runner.agent.logs import get_logger
from midprobe.runner.agent.probe_runner import ProbeRunner
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.lifecycle import (
    ISSUE_CLOCK_SKEW,
    ISSUE_NMAP_MISSING,
    ISSUE_PROBE_FAILURES,
    ISSUE_SPOOL_GROWING,
    SETTING_ACCEPTED_MAJOR,
    version_refusal,
    work_refusal,
)

if TYPE_CHECKING:  # an agent without keys or sealed credentials (`scan`'s) never loads cryptography
    from midprobe.probes.credentials import CredentialStore
    from midprobe.probes.credentials.sealing import MidKeyPair

log = get_logger("midprobe.agent")

#: A clock this far off the queue's (beyond the round trip) raises a clock_skew issue.
CLOCK_SKEW_SECONDS: Final = 30.0
#: This many probe runs in a row answered with an error raise a probe_failures issue.
PROBE_FAILURES_IN_A_ROW: Final = 10
#: This many results waiting in the spool raise a spool_growing issue.
SPOOL_BACKLOG: Final = 100
#: The credentials of this many discoveries are kept in memory (the oldest asked for goes first).
REMEMBERED_DISCOVERIES: Final = 32


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class MidLifecycle:
    """What one agent process knows of its lifecycle; ``keys`` is None for an agent without a state folder."""

    keys: MidKeyPair | None = None
    #: Where ``keys`` is kept (a rekey writes the new pair there).
    state_dir: Path | None = None
    #: The agent's own credentials file was given: sealed credentials are not asked for.
    local_credentials: bool = False
    clock: Callable[[], datetime] = _utc_now
    #: Whether this MID raises its own issues (an agent embedded in one command, such as `scan`'s,
    #: raises none: no operator watches it).
    raises_issues: bool = True
    #: Whether the last check found this MID allowed to work (validated, not paused or draining, of
    #: an accepted version); the agent claims only then, after taking its credentials.
    may_claim: bool = field(default=False, init=False)
    #: The version the instance pins this MID to, as the last check read it ("" = not pinned).
    pinned_version: str = field(default="", init=False)
    _said: str = field(default="", init=False)
    _sealed: str = field(default="", init=False)
    _failures: int = field(default=0, init=False)
    _raised: set[str] = field(default_factory=set, init=False)
    #: Per discovery (status id): its credentials opened in memory, or None when it brings none.
    _discoveries: OrderedDict[str, CredentialStore | None] = field(default_factory=OrderedDict, init=False)
    _discoveries_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def public_key(self) -> str:
        return "" if self.keys is None else self.keys.public_key

    # -- called by the agent (from a worker thread) ------------------------------------------------

    def started(self, queue: EccQueue, registration: AgentRegistration) -> None:
        """After the first registration: the nmap issue, raised or resolved."""
        if registration.nmap_installed:
            self._clear(queue, registration.name, ISSUE_NMAP_MISSING)
        else:
            self._raise(
                queue,
                registration.name,
                ISSUE_NMAP_MISSING,
                "nmap was not found: the Nmap capability is not advertised",
            )

    def check(
        self,
        queue: EccQueue,
        registration: AgentRegistration,
        runner: ProbeRunner,
        *,
        in_flight: int,
        instance: str,
        before: datetime | None = None,
    ) -> tuple[AgentRegistration, str | None]:
        """Read the registration back and act on it; returns the registration (a rekey changes it)
        and the status the agent should show now (``None``: leave it).

        ``before``: when the heartbeat (or registration) just written was sent, for the clock check.
        """
        sent = before or self.clock()
        found = queue.get_agent(registration.name)
        answered = self.clock()
        if found is None:
            return registration, None
        self._check_clock(queue, registration.name, found, sent, answered)
        if found.rekey_requested and self.keys is not None:
            registration = self._rekey(queue, registration, instance)
            found = queue.get_agent(registration.name) or found
        refusal = self._say(found, queue)
        self.pinned_version = found.pinned_version
        self._take_credentials(queue, found, runner)
        self.may_claim = refusal is None
        self._check_spool(queue, registration.name)
        if found.admin_state == "paused":
            return registration, "Paused"
        if found.admin_state == "draining":
            return registration, "Draining" if in_flight else "Drained"
        if found.status in ("Paused", "Draining", "Drained"):
            return registration, "Up"
        return registration, None

    def answered(self, *, failed: bool) -> Callable[[EccQueue, str], None] | None:
        """Count a probe run's outcome (no I/O); what to tell the queue, when there is something.

        Many failures in a row raise an issue, the next success resolves it.
        """
        if not failed:
            self._failures = 0
            if ISSUE_PROBE_FAILURES in self._raised:
                return lambda queue, agent: self._clear(queue, agent, ISSUE_PROBE_FAILURES)
            return None
        self._failures += 1
        if self._failures != PROBE_FAILURES_IN_A_ROW:
            return None
        message = f"{self._failures} probe runs in a row failed"
        return lambda queue, agent: self._raise(queue, agent, ISSUE_PROBE_FAILURES, message)

    # -- the parts ----------------------------------------------------------------------------------

    def _say(self, found: AgentRegistration, queue: EccQueue) -> str | None:
        """Log each change of what keeps this MID from working (once, not at every heartbeat); returns it."""
        accepted = queue.get_setting(SETTING_ACCEPTED_MAJOR)
        refused = version_refusal(found.version, found.pinned_version, accepted)
        if not found.validated:
            said = (
                "waiting for validation: on the instance run `midprobe mid validate " + found.short_name + "`"
            )
        elif refused is not None:
            said = f"the instance refuses work to this MID: {refused}"
        elif found.admin_state:
            said = f"{found.admin_state} by the operator: claiming nothing new"
        else:
            said = "validated: claiming work"
        if said != self._said:
            self._said = said
            (log.info if said.startswith("validated") else log.warning)(said, agent=found.name)
        return work_refusal(found, accepted)

    def _rekey(self, queue: EccQueue, registration: AgentRegistration, instance: str) -> AgentRegistration:
        """The instance asked for a new key pair: make it, keep it, register its public key."""
        from midprobe.probes.credentials.sealing import MidKeyPair

        keys = MidKeyPair.generate()
        if self.state_dir is not None:
            keys.save(self.state_dir)
        self.keys = keys
        self._sealed = ""
        renewed = dataclasses.replace(registration, public_key=keys.public_key)
        queue.register_agent(renewed, instance=instance)
        log.info("rekeyed: a new key pair, the old one opens nothing more", agent=registration.name)
        return renewed

    def _take_credentials(self, queue: EccQueue, found: AgentRegistration, runner: ProbeRunner) -> None:
        if self.keys is None or self.local_credentials or not found.validated:
            return
        sealed = queue.get_sealed_credentials(found.name)
        if sealed is None or sealed == self._sealed:
            return
        from midprobe.probes.credentials import CredentialStore
        from midprobe.probes.credentials.sealing import open_credentials

        try:
            credentials = open_credentials(sealed, self.keys)
        except MidprobeError as error:
            log.warning("sealed credentials could not be opened", agent=found.name, error=str(error))
            return
        from midprobe.runner.agent.affinity import QueueAffinityStore

        runner.credentials = CredentialStore.from_file(credentials, affinity=QueueAffinityStore(queue))
        self._sealed = sealed
        log.info(
            "credentials received sealed to this MID", agent=found.name, count=len(credentials.credentials)
        )

    def remembered_discovery_credentials(self, output: EccRecord) -> tuple[bool, CredentialStore | None]:
        """``(True, what discovery_credentials returns)`` when that needs no question to the instance
        (no discovery, no key pair, or the discovery's answer remembered), else ``(False, None)``.

        No I/O: the agent asks this on its event loop and goes to a thread only when it must.
        """
        correlator = output.agent_correlator
        if not correlator or self.keys is None:
            return True, None
        with self._discoveries_lock:
            if correlator in self._discoveries:
                self._discoveries.move_to_end(correlator)
                return True, self._discoveries[correlator]
        return False, None

    def discovery_credentials(self, queue: EccQueue, agent: str, output: EccRecord) -> CredentialStore | None:
        """The credentials of the discovery ``output`` belongs to (its ``agent_correlator``), or None.

        Asked of the instance once per discovery, with the output this MID holds; they come sealed
        to this MID's key and are opened in memory only. ``QueueError`` when the instance cannot
        be asked (the output is left to run again), ``CredentialError`` when they do not open.
        """
        known, store = self.remembered_discovery_credentials(output)
        if known or self.keys is None:  # no key pair is one of the known cases (for the type checker)
            return store
        correlator = output.agent_correlator
        sealed = queue.get_discovery_credentials(agent, output.sys_id)
        store = None
        if sealed is not None:
            from midprobe.probes.credentials import CredentialStore
            from midprobe.probes.credentials.sealing import open_credentials

            opened = open_credentials(sealed, self.keys, source=f"discovery {correlator}")
            from midprobe.runner.agent.affinity import QueueAffinityStore

            store = CredentialStore.from_file(opened, affinity=QueueAffinityStore(queue))
            log.info(
                "discovery credentials received sealed to this MID",
                agent=agent,
                discovery=correlator,
                count=len(opened.credentials),
            )
        with self._discoveries_lock:
            self._discoveries[correlator] = store
            while len(self._discoveries) > REMEMBERED_DISCOVERIES:
                self._discoveries.popitem(last=False)
        return store

    def _check_clock(
        self, queue: EccQueue, agent: str, found: AgentRegistration, sent: datetime, answered: datetime
    ) -> None:
        if found.last_heartbeat is None:
            return
        round_trip = (answered - sent).total_seconds()
        middle = sent + (answered - sent) / 2
        skew = (found.last_heartbeat - middle).total_seconds()
        if abs(skew) > CLOCK_SKEW_SECONDS + round_trip:
            self._raise(
                queue, agent, ISSUE_CLOCK_SKEW, f"this MID's clock is {skew:+.0f} s off the queue's clock"
            )
        elif ISSUE_CLOCK_SKEW in self._raised:
            self._clear(queue, agent, ISSUE_CLOCK_SKEW)

    def _check_spool(self, queue: EccQueue, agent: str) -> None:
        backlog = getattr(queue, "spool_backlog", None)
        if backlog is None:
            return
        waiting = int(backlog())
        if waiting >= SPOOL_BACKLOG:
            self._raise(
                queue, agent, ISSUE_SPOOL_GROWING, f"{waiting} results wait in the spool for the instance"
            )
        elif ISSUE_SPOOL_GROWING in self._raised:
            self._clear(queue, agent, ISSUE_SPOOL_GROWING)

    def _raise(self, queue: EccQueue, agent: str, kind: str, message: str) -> None:
        if not self.raises_issues:
            return
        try:
            queue.raise_issue(agent, kind, message)
            self._raised.add(kind)
            log.warning("MID issue raised", agent=agent, issue=kind, message=message)
        except MidprobeError as error:
            log.warning("could not raise a MID issue", agent=agent, issue=kind, error=str(error))

    def _clear(self, queue: EccQueue, agent: str, kind: str) -> None:
        try:
            queue.clear_issue(agent, kind)
            self._raised.discard(kind)
        except MidprobeError as error:
            log.warning("could not resolve a MID issue", agent=agent, issue=kind, error=str(error))


__all__ = [
    "CLOCK_SKEW_SECONDS",
    "PROBE_FAILURES_IN_A_ROW",
    "REMEMBERED_DISCOVERIES",
    "SPOOL_BACKLOG",
    "MidLifecycle",
]
