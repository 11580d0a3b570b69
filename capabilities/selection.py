"""MID server selection, ServiceNow's algorithm: filters status > application > IP range > capabilities,
then the capability steps exact > wildcard > ``ALL``, the first step that finds a MID winning.

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


class Tier(enum.StrEnum):
    """Which group of MID servers the choice came from (only ``up`` unless a fallback is configured)."""

    UP = "up"
    DEFAULT = "default"
    UPGRADING_OR_PAUSED = "upgrading_or_paused"


#: ``ALL`` stands in for every capability except these (a MID must really have nmap).
NOT_IMPLIED_BY_ALL = frozenset({NMAP_CAPABILITY})
_FALLBACK_STATUSES = frozenset({MidStatus.UPGRADING, MidStatus.PAUSED})


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
    """Which MID statuses may be chosen. The default is the issue's rule: only ``Up`` and validated.

    With ``default_mid_server`` or ``include_upgrading_and_paused`` set, selection follows ServiceNow's
    auto-selection order: suitable Up MIDs, then the default MID (if Up, validated and serving the
    application; IP ranges and capabilities other than ``Nmap`` are not checked for it), then suitable
    Upgrading or Paused MIDs.
    """

    default_mid_server: str | None = None
    include_upgrading_and_paused: bool = False

    @property
    def has_fallback(self) -> bool:
        return self.default_mid_server is not None or self.include_upgrading_and_paused


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

        tiers = [Tier.UP]
        if self._policy.default_mid_server is not None:
            tiers.append(Tier.DEFAULT)
        if self._policy.include_upgrading_and_paused:
            tiers.append(Tier.UPGRADING_OR_PAUSED)
        for tier in tiers:
            if tier is Tier.DEFAULT:
                chosen = tuple(mid for mid in mids if self._is_usable_default(mid, request))
                step = None
            else:
                pool = {mid.name: verdicts[mid.name].step for mid in mids if self._tier_of(mid) is tier}
                found = [candidate for candidate in pool.values() if candidate is not None]
                if not found:
                    continue
                step = min(found, key=_STEP_ORDER.__getitem__)
                chosen = tuple(mid for mid in mids if mid.name in pool and pool[mid.name] is step)
            if chosen:
                return self._result(mids, verdicts, tier, step, chosen)
        return self._result(mids, verdicts, None, None, ())

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

    def _tier_of(self, mid: MidServer) -> Tier | None:
        if not mid.validated:
            return None
        if mid.status is MidStatus.UP:
            return Tier.UP
        if self._policy.include_upgrading_and_paused and mid.status in _FALLBACK_STATUSES:
            return Tier.UPGRADING_OR_PAUSED
        return None

    def _is_usable_default(self, mid: MidServer, request: SelectionRequest) -> bool:
        if mid.name != self._policy.default_mid_server or self._tier_of(mid) is not Tier.UP:
            return False
        if self._filter_reason(mid, SelectionRequest(application=request.application)) is not None:
            return False
        names = mid.capability_names()
        return all(w.name in names for w in request.capabilities if w.name in NOT_IMPLIED_BY_ALL)

    def _status_reason(self, mid: MidServer) -> str:
        allowed = "Up"
        if self._policy.include_upgrading_and_paused:
            allowed = "Up, or Upgrading/Paused when no Up MID server fits"
        if not mid.validated:
            return f"not validated (only validated MID servers are selected; status {mid.status})"
        return f"status is {mid.status} (selectable statuses: {allowed})"

    def _result(
        self,
        mids: tuple[MidServer, ...],
        verdicts: dict[str, _Verdict],
        tier: Tier | None,
        step: Step | None,
        chosen: tuple[MidServer, ...],
    ) -> SelectionResult:
        chosen_names = {mid.name for mid in chosen}
        rejections = tuple(
            Rejection(mid.name, self._reason(mid, verdicts[mid.name], tier, step, len(chosen)))
            for mid in mids
            if mid.name not in chosen_names
        )
        return SelectionResult(step, tier, chosen, rejections)

    def _reason(
        self, mid: MidServer, verdict: _Verdict, tier: Tier | None, step: Step | None, found: int
    ) -> str:
        own_tier = self._tier_of(mid)
        if own_tier is None:
            return self._status_reason(mid)
        if own_tier is Tier.UPGRADING_OR_PAUSED and tier in (Tier.UP, Tier.DEFAULT):
            return f"status is {mid.status}: Upgrading/Paused MID servers are used only when no Up MID server fits"
        if verdict.filter_reason is not None:
            return verdict.filter_reason
        if verdict.step is None:
            return verdict.detail
        # Same tier as the winner, matching at a later step (an earlier one would have won).
        winners = f"the {step} step found {found} MID server{'s' if found != 1 else ''}"
        if verdict.step is Step.WILDCARD:
            return f"{verdict.detail}, and exact matches come first ({winners})"
        return (
            f"{verdict.detail}; its ALL capability counts only when no step before it finds a MID ({winners})"
        )


__all__ = [
    "NOT_IMPLIED_BY_ALL",
    "MidSelector",
    "Rejection",
    "SelectionPolicy",
    "SelectionRequest",
    "SelectionResult",
    "Step",
    "Tier",
]
