"""MID server selection, ServiceNow's algorithm: filters status > application > IP range > capabilities,
then the capability steps exact > wildcard > ``ALL``, the first step that finds a MID winning, on each
rung of the status ladder in turn (Up, the default MID, Upgrading/Paused, ...).

The selector takes any sequence of :class:`MidServer` records and the capability definitions; where the
records came from (a TOML file, the ECC queue's agent table) is not its concern.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from midprobe.capabilities.errors import BadArgumentException, ConfigError
from midprobe.capabilities.ipranges import IPAddress, first_containing, parse_address
from midprobe.capabilities.model import (
    ALL_CAPABILITY,
    BUILTIN_CAPABILITY_NAMES,
    NMAP_CAPABILITY,
    Application,
    Capability,
    CapabilityDefinition,
    MidServer,
    MidStatus,
    suggest,
)
from midprobe.capabilities.value_tests import ValueTestRegistry


class Step(enum.StrEnum):
    """The capability step that found the chosen MID servers, in the order they are tried."""

    EXACT = "exact"
    WILDCARD = "wildcard"
    ALL = "all"


_STEP_ORDER = {step: index for index, step in enumerate(Step)}


class Level(enum.IntEnum):
    """The status levels of ServiceNow's ladder, best first; the selector goes down them in order."""

    UP = 1  # Up (and Degraded, for an application that accepts it)
    UPGRADING_OR_PAUSED = 2
    OTHER = 3  # Upgrade Failed, Draining, Drained, Drain Failed, Down (and Degraded elsewhere)


class Tier(enum.StrEnum):
    """Which rung of the ladder the choice came from (only ``up`` unless a fallback is configured)."""

    UP = "up"
    DEFAULT = "default"
    UPGRADING_OR_PAUSED = "upgrading_or_paused"
    DEFAULT_UPGRADING_OR_PAUSED = "default_upgrading_or_paused"
    OTHER_STATUSES = "other_statuses"
    DEFAULT_ANY_STATUS = "default_any_status"


#: The ladder, in order: each rung's status level and whether it is the default MID's rung.
_LADDER: tuple[tuple[Tier, Level, bool], ...] = (
    (Tier.UP, Level.UP, False),
    (Tier.DEFAULT, Level.UP, True),
    (Tier.UPGRADING_OR_PAUSED, Level.UPGRADING_OR_PAUSED, False),
    (Tier.DEFAULT_UPGRADING_OR_PAUSED, Level.UPGRADING_OR_PAUSED, True),
    (Tier.OTHER_STATUSES, Level.OTHER, False),
    (Tier.DEFAULT_ANY_STATUS, Level.OTHER, True),
)
_TIER_LEVEL = {tier: level for tier, level, _ in _LADDER}

#: ``ALL`` stands in for every capability except these (a MID must really have nmap).
NOT_IMPLIED_BY_ALL = frozenset({NMAP_CAPABILITY})
_UPGRADING_OR_PAUSED = frozenset({MidStatus.UPGRADING, MidStatus.PAUSED})
_LEVEL_WORDS = {
    Level.UPGRADING_OR_PAUSED: "Upgrading/Paused MID servers are used only when no Up MID server fits",
    Level.OTHER: "MID servers that are not Up, Upgrading or Paused are used only when no other MID server fits",
}


@dataclass(frozen=True)
class SelectionRequest:
    """What a probe needs: capability name/value pairs, optionally an application and a target address."""

    capabilities: tuple[Capability, ...] = ()
    application: str | None = None
    ip: IPAddress | None = None

    @classmethod
    def build(
        cls,
        capabilities: Iterable[Capability | str] = (),
        *,
        application: str | None = None,
        ip: str | IPAddress | None = None,
    ) -> SelectionRequest:
        """A request from loose input: ``"SSH"`` / ``"Resolve DNS=host.example.com"`` strings and an IP string."""
        wanted = tuple(
            item if isinstance(item, Capability) else Capability.parse_request(item) for item in capabilities
        )
        address = parse_address(ip) if isinstance(ip, str) else ip
        return cls(wanted, application, address)


@dataclass(frozen=True)
class SelectionPolicy:
    """How far down ServiceNow's status ladder selection may go, and the default MID servers.

    The ladder: suitable Up MIDs; then the default MID if it is Up; then suitable Upgrading or Paused
    MIDs (``include_upgrading_and_paused``); then the default MID if it is Upgrading or Paused; then
    suitable MIDs of any other status (``include_other_statuses``, which implies the level before it);
    then the default MID whatever its status. The first rung that finds a MID ends the search; only
    validated MIDs are ever chosen. The default MID is the requested application's
    (``applications``), or when that one is not usable, ``default_mid_server`` (the default of the
    application ``ALL``); it need not meet the application, IP range or capability criteria, except
    that it must really have ``Nmap`` when ``Nmap`` is requested. An application that accepts Degraded
    MIDs (Discovery, unless configured otherwise) treats them as Up.
    """

    default_mid_server: str | None = None
    include_upgrading_and_paused: bool = False
    include_other_statuses: bool = False
    applications: tuple[Application, ...] = ()

    @property
    def lowest_level(self) -> Level:
        if self.include_other_statuses:
            return Level.OTHER
        return Level.UPGRADING_OR_PAUSED if self.include_upgrading_and_paused else Level.UP

    @property
    def has_fallback(self) -> bool:
        defaults = (self.default_mid_server, *(app.default_mid_server for app in self.applications))
        return self.lowest_level is not Level.UP or any(name is not None for name in defaults)

    def application(self, name: str) -> Application:
        """The configured application called ``name``, or one with the built-in rules."""
        for application in self.applications:
            if application.name == name:
                return application
        return Application(name)

    def default_candidates(self, application: str | None) -> tuple[str, ...]:
        """The default MIDs to try for ``application``: its own, then the ``ALL`` application's."""
        own = self.application(application).default_mid_server if application is not None else None
        return tuple(dict.fromkeys(name for name in (own, self.default_mid_server) if name is not None))


@dataclass(frozen=True)
class Rejection:
    """A MID server that was not chosen and why, in words a person can act on."""

    mid_server: str
    reason: str


@dataclass(frozen=True)
class SelectionResult:
    """The chosen MID servers, the step (and tier) that found them, and a reason for every other one."""

    step: Step | None
    tier: Tier | None
    mid_servers: tuple[MidServer, ...]
    rejections: tuple[Rejection, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(mid.name for mid in self.mid_servers)

    @property
    def rejected(self) -> dict[str, str]:
        return {rejection.mid_server: rejection.reason for rejection in self.rejections}

    def to_json(self, *, include_tier: bool = False) -> dict[str, object]:
        """``{"step", "mid_servers", "rejected"}`` as the CLI prints it (plus ``tier`` when asked)."""
        document: dict[str, object] = {
            "step": None if self.step is None else self.step.value,
            "mid_servers": list(self.names),
            "rejected": self.rejected,
        }
        if include_tier:
            document["tier"] = None if self.tier is None else self.tier.value
        return document


@dataclass(frozen=True)
class _Verdict:
    """One MID judged against one request, before the tiers and steps are compared."""

    filter_reason: str | None  # application or IP range; None when both pass
    step: Step | None  # the earliest capability step this MID satisfies
    detail: str  # why it does not match exactly (or why it matches at all)


class MidSelector:
    """Chooses MID servers for a request, given the defined capabilities and their value tests."""

    def __init__(
        self,
        definitions: Iterable[CapabilityDefinition],
        *,
        value_tests: ValueTestRegistry | None = None,
        policy: SelectionPolicy | None = None,
    ) -> None:
        self._value_tests = value_tests if value_tests is not None else ValueTestRegistry()
        self._policy = policy if policy is not None else SelectionPolicy()
        self._definitions: dict[str, CapabilityDefinition] = {
            name: CapabilityDefinition(name) for name in BUILTIN_CAPABILITY_NAMES
        }
        seen: set[str] = set()
        for definition in definitions:
            if definition.name in seen:
                raise ConfigError(f"capability {definition.name!r} is defined twice")
            seen.add(definition.name)
            if definition.value_test is not None:
                self._value_tests.get(definition.value_test)  # an unknown name fails here, not mid-selection
            self._definitions[definition.name] = definition

    @property
    def policy(self) -> SelectionPolicy:
        return self._policy

    @property
    def defined_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._definitions))

    def check_request(self, request: SelectionRequest) -> None:
        """Raise ``BadArgumentException`` if a requested capability name is not defined (no ``ALL`` fallback)."""
        undefined = [wanted.name for wanted in request.capabilities if wanted.name not in self._definitions]
        if undefined:
            described = "; ".join(
                f"{name!r}{suggest(name, self._definitions)}" for name in dict.fromkeys(undefined)
            )
            raise BadArgumentException(
                f"BadArgumentException: requested capability not defined: {described} "
                f"(defined: {', '.join(self.defined_names)}); there is no fallback to ALL"
            )

    def select(self, mid_servers: Iterable[MidServer], request: SelectionRequest) -> SelectionResult:
        """Run the filters and steps over ``mid_servers``; their input order is kept in the result."""
        self.check_request(request)
        mids = tuple(mid_servers)
        duplicates = sorted(name for name, count in Counter(mid.name for mid in mids).items() if count > 1)
        if duplicates:
            raise ConfigError(f"MID server names must be unique; repeated: {', '.join(duplicates)}")
        verdicts = {mid.name: self._judge(mid, request) for mid in mids}
        levels = {mid.name: self._level_of(mid, request) for mid in mids}

        for tier, level, is_default in _LADDER:  # rungs below the policy's lowest level hold nobody
            step: Step | None = None
            if is_default:
                chosen = self._usable_default(mids, levels, level, request)
            else:
                pool = {mid.name: verdicts[mid.name].step for mid in mids if levels[mid.name] is level}
                found = [candidate for candidate in pool.values() if candidate is not None]
                if not found:
                    continue
                step = min(found, key=_STEP_ORDER.__getitem__)
                chosen = tuple(mid for mid in mids if mid.name in pool and pool[mid.name] is step)
            if chosen:
                return self._result(mids, verdicts, levels, request, tier, step, chosen)
        return self._result(mids, verdicts, levels, request, None, None, ())

    def match_step(self, mid: MidServer, capabilities: Sequence[Capability]) -> Step | None:
        """The earliest capability step at which ``mid`` satisfies ``capabilities`` (no filters applied)."""
        self.check_request(SelectionRequest(tuple(capabilities)))
        return self._capability_verdict(mid, capabilities)[0]

    # -- one MID against one request -------------------------------------------------------------

    def _judge(self, mid: MidServer, request: SelectionRequest) -> _Verdict:
        filter_reason = self._filter_reason(mid, request)
        if filter_reason is not None:
            return _Verdict(filter_reason, None, "")
        step, detail = self._capability_verdict(mid, request.capabilities)
        return _Verdict(None, step, detail)

    @staticmethod
    def _filter_reason(mid: MidServer, request: SelectionRequest) -> str | None:
        application = request.application
        if (
            application is not None
            and not mid.serves_all_applications
            and application not in mid.applications
        ):
            serves = ", ".join(mid.applications) or "none"
            return f"does not serve application {application!r} (its applications: {serves})"
        if request.ip is not None:
            if first_containing(mid.ip_ranges, request.ip) is None:
                ranges = ", ".join(str(item) for item in mid.ip_ranges) or "none"
                return f"{request.ip} is outside its IP ranges ({ranges})"
            excluded = first_containing(mid.excluded_ip_ranges, request.ip)
            if excluded is not None and not mid.serves_all_applications:
                return f"{request.ip} is in its excluded IP range {excluded}"
        return None

    def _value_matches(self, have: Capability, wanted: Capability, *, wildcard: bool) -> bool:
        if have.name != wanted.name:
            return False
        if have.is_wildcard:
            return wildcard and not wanted.is_blank
        value_test = self._definitions[wanted.name].value_test
        if value_test is not None:
            return self._value_tests.matches(value_test, have.value, wanted.value)
        return have.value == wanted.value

    def _capability_verdict(self, mid: MidServer, wanted: Sequence[Capability]) -> tuple[Step | None, str]:
        have = mid.effective_capabilities
        not_exact = [w for w in wanted if not any(self._value_matches(h, w, wildcard=False) for h in have)]
        if not not_exact:
            return Step.EXACT, "matches every requested capability exactly"
        not_wildcard = [
            w for w in not_exact if not any(self._value_matches(h, w, wildcard=True) for h in have)
        ]
        if not not_wildcard:
            return Step.WILDCARD, f"{', '.join(str(w) for w in not_exact)} matches only a * value"
        missing = "; ".join(self._describe_missing(mid, w) for w in not_wildcard)
        names = mid.capability_names()
        if ALL_CAPABILITY in names:
            unimplied = [w for w in wanted if w.name in NOT_IMPLIED_BY_ALL and w.name not in names]
            if not unimplied:
                return Step.ALL, missing
            return None, f"{missing}; it has ALL, but ALL does not imply {unimplied[0].name}"
        return None, f"{missing}, and no ALL capability"

    @staticmethod
    def _describe_missing(mid: MidServer, wanted: Capability) -> str:
        if wanted.name == NMAP_CAPABILITY and not mid.nmap_installed:
            return "no Nmap capability (nmap is not installed on it)"
        same_name = [str(h) for h in mid.effective_capabilities if h.name == wanted.name]
        if same_name:
            return f"no match for {wanted} (it has {', '.join(same_name)})"
        return f"no {wanted.name} capability"

    # -- tiers and reasons ---------------------------------------------------------------------------

    def _level_of(self, mid: MidServer, request: SelectionRequest) -> Level | None:
        """The ladder level of ``mid`` for this request; None when it may not be chosen at all."""
        if not mid.validated:
            return None
        degraded_as_up = mid.status is MidStatus.DEGRADED and self._takes_degraded(request)
        if mid.status is MidStatus.UP or degraded_as_up:
            level = Level.UP
        elif mid.status in _UPGRADING_OR_PAUSED:
            level = Level.UPGRADING_OR_PAUSED
        else:
            level = Level.OTHER
        return level if level <= self._policy.lowest_level else None

    def _takes_degraded(self, request: SelectionRequest) -> bool:
        return (
            request.application is not None and self._policy.application(request.application).takes_degraded
        )

    def _usable_default(
        self,
        mids: tuple[MidServer, ...],
        levels: dict[str, Level | None],
        level: Level,
        request: SelectionRequest,
    ) -> tuple[MidServer, ...]:
        """The first default MID (the application's, then ALL's) usable at ``level``; at most one.

        On the last rung that is the default MID whatever its status: every better one was tried.
        """
        by_name = {mid.name: mid for mid in mids}
        for name in self._policy.default_candidates(request.application):
            mid = by_name.get(name)
            if mid is None or levels[name] is not level:  # not validated: no level at all
                continue
            names = mid.capability_names()
            if all(w.name in names for w in request.capabilities if w.name in NOT_IMPLIED_BY_ALL):
                return (mid,)
        return ()

    def _status_reason(self, mid: MidServer, request: SelectionRequest) -> str:
        if not mid.validated:
            return f"not validated (only validated MID servers are selected; status {mid.status})"
        allowed = "Up or Degraded" if self._takes_degraded(request) else "Up"
        if self._policy.lowest_level is Level.UPGRADING_OR_PAUSED:
            allowed += ", or Upgrading/Paused when no Up MID server fits"
        return f"status is {mid.status} (selectable statuses: {allowed})"

    def _result(
        self,
        mids: tuple[MidServer, ...],
        verdicts: dict[str, _Verdict],
        levels: dict[str, Level | None],
        request: SelectionRequest,
        tier: Tier | None,
        step: Step | None,
        chosen: tuple[MidServer, ...],
    ) -> SelectionResult:
        chosen_names = {mid.name for mid in chosen}
        winning_level = _TIER_LEVEL[tier] if tier is not None else None
        rejections = tuple(
            Rejection(
                mid.name,
                self._reason(
                    mid, verdicts[mid.name], levels[mid.name], winning_level, request, step, len(chosen)
                ),
            )
            for mid in mids
            if mid.name not in chosen_names
        )
        return SelectionResult(step, tier, chosen, rejections)

    def _reason(
        self,
        mid: MidServer,
        verdict: _Verdict,
        level: Level | None,
        winning_level: Level | None,
        request: SelectionRequest,
        step: Step | None,
        found: int,
    ) -> str:
        if level is None:
            return self._status_reason(mid, request)
        if winning_level is not None and level > winning_level:
            return f"status is {mid.status}: {_LEVEL_WORDS[level]}"
        if verdict.filter_reason is not None:
            return verdict.filter_reason
        if verdict.step is None or step is None:
            return verdict.detail
        # Same level as the winner, matching at a later step (an earlier one would have won).
        winners = f"the {step} step found {found} MID server{'s' if found != 1 else ''}"
        if verdict.step is Step.WILDCARD:
            return f"{verdict.detail}, and exact matches come first ({winners})"
        return (
            f"{verdict.detail}; its ALL capability counts only when no step before it finds a MID ({winners})"
        )


__all__ = [
    "NOT_IMPLIED_BY_ALL",
    "Level",
    "MidSelector",
    "Rejection",
    "SelectionPolicy",
    "SelectionRequest",
    "SelectionResult",
    "Step",
    "Tier",
]
