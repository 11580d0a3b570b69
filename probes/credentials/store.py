"""The credential store probes receive as ``context.credentials``: ordering, affinity, failure budgets.

Order of attempts for a device (docs/ecc-reference.md section 5): the device's affinity (the
credential that last worked) first, then ascending ``order``, file order
breaking ties, each credential only inside its ``ip_ranges``; SNMP v1/v2c
finally tries the community ``public`` unless turned off.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.loader import CredentialFile, load_credential_file
from midprobe.probes.credentials.model import (
    PROTOCOL_SNMP,
    PROTOCOLS,
    Credential,
    SNMPCommunityCredential,
)
from midprobe.probes.credentials.secret import Secret
from midprobe.probes.credentials.tracker import FailureTracker
from midprobe.probes.safety import IPAddress

#: Id of the built-in ``public`` community tried last for SNMP v1/v2c.
PUBLIC_COMMUNITY_ID = "public"
PUBLIC_COMMUNITY = SNMPCommunityCredential(
    id=PUBLIC_COMMUNITY_ID, community=Secret("public"), version="2c", order=2**31 - 1
)


class AffinityStore(Protocol):
    """Where the credential that last worked per device and protocol is kept.

    The ECC queue implements this so that every agent shares affinities.
    """

    def get_affinity(self, address: str, protocol: str) -> str | None: ...

    def set_affinity(self, address: str, protocol: str, credential_id: str) -> None: ...


class InMemoryAffinityStore:
    """An ``AffinityStore`` for one process (standalone scans, tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._affinity: dict[tuple[str, str], str] = {}

    def get_affinity(self, address: str, protocol: str) -> str | None:
        with self._lock:
            return self._affinity.get((address, protocol))

    def set_affinity(self, address: str, protocol: str, credential_id: str) -> None:
        with self._lock:
            self._affinity[(address, protocol)] = credential_id


def order_candidates(
    credentials: Iterable[Credential],
    address: IPAddress | str,
    protocol: str,
    *,
    affinity_id: str | None = None,
    restrict_id: str | None = None,
    restrict_tag: str | None = None,
    snmp_public_fallback: bool = True,
) -> tuple[Credential, ...]:
    """The credentials to try on ``address`` for ``protocol``, in order (pure).

    ``credentials`` is in file order. ``restrict_id``/``restrict_tag`` (from the
    request) narrow the choice; they also leave out the ``public`` fallback unless
    ``restrict_id`` names it.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    addr = ipaddress.ip_address(address)
    chosen = [
        credential
        for credential in credentials
        if credential.protocol == protocol
        and credential.applies_to(addr)
        and (restrict_id is None or credential.id == restrict_id)
        and (restrict_tag is None or restrict_tag in credential.tags)
    ]
    if (
        protocol == PROTOCOL_SNMP
        and snmp_public_fallback
        and restrict_tag is None
        and restrict_id in (None, PUBLIC_COMMUNITY_ID)
        and not any(credential.id == PUBLIC_COMMUNITY_ID for credential in chosen)
        and not any(_is_public_v2c(credential) for credential in chosen)
    ):
        chosen.append(PUBLIC_COMMUNITY)
    # sorted() is stable, so equal orders keep the file order.
    ordered = sorted(chosen, key=lambda credential: credential.order)
    if affinity_id is not None:
        for position, credential in enumerate(ordered):
            if credential.id == affinity_id:
                ordered.insert(0, ordered.pop(position))
                break
    return tuple(ordered)


def _is_public_v2c(credential: Credential) -> bool:
    return (
        isinstance(credential, SNMPCommunityCredential)
        and credential.version == "2c"
        and credential.community.reveal() == "public"
    )


class CredentialStore:
    """Credentials in file order plus the affinity store and the failure tracker."""

    def __init__(
        self,
        credentials: Iterable[Credential] = (),
        *,
        snmp_public_fallback: bool = True,
        affinity: AffinityStore | None = None,
        tracker: FailureTracker | None = None,
        source: str = "<memory>",
    ) -> None:
        self._credentials = tuple(credentials)
        ids = [credential.id for credential in self._credentials]
        duplicates = sorted({credential_id for credential_id in ids if ids.count(credential_id) > 1})
        if duplicates:
            raise CredentialError(f"duplicate credential ids: {', '.join(duplicates)}", source=source)
        self._by_id = {credential.id: credential for credential in self._credentials}
        self.snmp_public_fallback = snmp_public_fallback
        self.affinity: AffinityStore = affinity if affinity is not None else InMemoryAffinityStore()
        self.tracker = tracker if tracker is not None else FailureTracker()
        self.source = source

    @classmethod
    def from_file(
        cls,
        credential_file: CredentialFile,
        *,
        affinity: AffinityStore | None = None,
        tracker: FailureTracker | None = None,
    ) -> CredentialStore:
        return cls(
            credential_file.credentials,
            snmp_public_fallback=credential_file.snmp_public_fallback,
            affinity=affinity,
            tracker=tracker,
            source=credential_file.source,
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        environ: Mapping[str, str] | None = None,
        affinity: AffinityStore | None = None,
        tracker: FailureTracker | None = None,
    ) -> CredentialStore:
        """Read a credentials file (see ``loader.py`` for its shape)."""
        return cls.from_file(load_credential_file(path, environ=environ), affinity=affinity, tracker=tracker)

    @property
    def credentials(self) -> tuple[Credential, ...]:
        return self._credentials

    def __len__(self) -> int:
        return len(self._credentials)

    def __repr__(self) -> str:
        return f"CredentialStore({self.source!r}, ids={[c.id for c in self._credentials]!r})"

    def get(self, credential_id: str) -> Credential:
        if credential_id == PUBLIC_COMMUNITY_ID and credential_id not in self._by_id:
            return PUBLIC_COMMUNITY
        try:
            return self._by_id[credential_id]
        except KeyError:
            raise CredentialError(f"no credential with id {credential_id!r}", source=self.source) from None

    def candidates(
        self,
        address: IPAddress | str,
        protocol: str,
        affinity_id: str | None = None,
        restrict_id: str | None = None,
        restrict_tag: str | None = None,
    ) -> tuple[Credential, ...]:
        """What to try on ``address``, in order; leaves out credentials whose failure budget is spent.

        ``affinity_id`` None means: ask the affinity store.
        """
        key = str(ipaddress.ip_address(address))
        if affinity_id is None:
            affinity_id = self.affinity.get_affinity(key, protocol)
        ordered = order_candidates(
            self._credentials,
            key,
            protocol,
            affinity_id=affinity_id,
            restrict_id=restrict_id,
            restrict_tag=restrict_tag,
            snmp_public_fallback=self.snmp_public_fallback,
        )
        return tuple(
            credential
            for credential in ordered
            if self.tracker.allows(key, credential.id, credential.failure_budget)
        )

    def skip_remaining(self, address: IPAddress | str, protocol: str) -> float:
        """Seconds this address stays skipped because every credential failed on it (0.0: not skipped)."""
        return self.tracker.skip_remaining(str(ipaddress.ip_address(address)), protocol)

    def record_success(self, address: IPAddress | str, protocol: str, credential_id: str) -> None:
        """The credential worked: it becomes the device's affinity and its failure counts restart."""
        key = str(ipaddress.ip_address(address))
        self.tracker.record_success(key, protocol, credential_id)
        if self.affinity.get_affinity(key, protocol) != credential_id:
            self.affinity.set_affinity(key, protocol, credential_id)

    def record_failure(self, address: IPAddress | str, protocol: str, credential_id: str) -> None:
        """The device rejected the credential (counted against its failure budget)."""
        self.tracker.record_failure(str(ipaddress.ip_address(address)), credential_id)

    def record_exhausted(self, address: IPAddress | str, protocol: str) -> None:
        """Every credential failed: skip the address for this protocol for a while."""
        self.tracker.record_exhausted(str(ipaddress.ip_address(address)), protocol)
