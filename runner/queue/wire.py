"""The JSON shapes the HTTPS queue and the instance's agent endpoints exchange (pure, no I/O).

Records travel as ``EccRecord.as_dict()``; registrations, affinities and leases as the
dictionaries below. Every decoder raises ``ConfigError`` naming the bad field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, CredentialAffinity
from midprobe.runner.queue.lifecycle import (
    AgentIssue,
    AgentUpgrade,
    check_admin_state,
    check_issue_source,
    check_issue_state,
    check_upgrade_state,
    check_version,
)

API_PREFIX = "/api/midprobe/v1"
"""Where the instance serves the agent endpoints (docs/instance.md)."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Carries the result's ``sys_id`` on an answer: a resend of the same result is recognised."""


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _read_time(raw: object, field: str) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{raw!r} is not an ISO 8601 time", field=field)
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{raw!r} is not an ISO 8601 time", field=field) from None


def _strings(raw: object, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError("must be a list of strings", field=field)
    return tuple(raw)


def record_to_json(record: EccRecord) -> dict[str, Any]:
    return dict(record.as_dict())


def answers_json(pairs: Sequence[tuple[str, EccRecord]]) -> str:
    """The JSON array of ``{"output", "result"}`` answers: the spool's entries and a ``/answers`` body's list.

    Encoded once for both, so a result is not turned into JSON twice on its way out.
    """
    return json.dumps([{"output": output, "result": record_to_json(result)} for output, result in pairs])


def record_from_json(raw: object) -> EccRecord:
    if not isinstance(raw, dict):
        raise ConfigError("an ECC record must be a JSON object", field="record")
    return EccRecord.from_dict(raw)


def registration_to_json(registration: AgentRegistration) -> dict[str, Any]:
    return {
        "name": registration.name,
        "status": registration.status,
        "validated": registration.validated,
        "applications": list(registration.applications),
        "ip_ranges": list(registration.ip_ranges),
        "excluded_ip_ranges": list(registration.excluded_ip_ranges),
        "capabilities": [[name, value] for name, value in registration.capabilities],
        "nmap_installed": registration.nmap_installed,
        "host": registration.host,
        "pid": registration.pid,
        "started_at": _time(registration.started_at),
        "last_heartbeat": _time(registration.last_heartbeat),
        "public_key": registration.public_key,
        "version": registration.version,
        "pinned_version": registration.pinned_version,
        "admin_state": registration.admin_state,
        "rekey_requested": registration.rekey_requested,
    }


def registration_from_json(raw: object) -> AgentRegistration:
    if not isinstance(raw, dict):
        raise ConfigError("an agent registration must be a JSON object", field="registration")
    text_fields = ("name", "status", "host", "public_key", "version", "pinned_version", "admin_state")
    for name in text_fields:
        if not isinstance(raw.get(name, ""), str):
            raise ConfigError("must be a string", field=name)
    for name in ("validated", "nmap_installed", "rekey_requested"):
        if not isinstance(raw.get(name, False), bool):
            raise ConfigError("must be true or false", field=name)
    pid = raw.get("pid", 0)
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise ConfigError("must be an integer", field="pid")
    capabilities = raw.get("capabilities", [])
    if not isinstance(capabilities, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
        for pair in capabilities
    ):
        raise ConfigError("must be a list of [name, value] pairs", field="capabilities")
    return AgentRegistration(
        name=str(raw.get("name", "")),
        status=str(raw.get("status", "Up")),
        validated=bool(raw.get("validated", False)),
        applications=_strings(raw.get("applications", ["ALL"]), "applications"),
        ip_ranges=_strings(raw.get("ip_ranges", ["ALL"]), "ip_ranges"),
        excluded_ip_ranges=_strings(raw.get("excluded_ip_ranges", []), "excluded_ip_ranges"),
        capabilities=tuple((name, value) for name, value in capabilities),
        nmap_installed=bool(raw.get("nmap_installed", False)),
        host=str(raw.get("host", "")),
        pid=pid,
        started_at=_read_time(raw.get("started_at"), "started_at"),
        last_heartbeat=_read_time(raw.get("last_heartbeat"), "last_heartbeat"),
        public_key=str(raw.get("public_key", "")),
        version=str(raw.get("version", "")),
        pinned_version=str(raw.get("pinned_version", "")),
        admin_state=check_admin_state(str(raw.get("admin_state", ""))),
        rekey_requested=bool(raw.get("rekey_requested", False)),
    )


def issue_to_json(issue: AgentIssue) -> dict[str, Any]:
    return {
        "sys_id": issue.sys_id,
        "agent": issue.agent,
        "kind": issue.kind,
        "source": issue.source,
        "message": issue.message,
        "state": issue.state,
        "count": issue.count,
        "created": issue.created.isoformat(),
        "updated": issue.updated.isoformat(),
    }


def _object_of_strings(raw: object, what: str, field: str, names: tuple[str, ...]) -> dict[str, Any]:
    """``raw`` as a JSON object whose ``names`` are strings (``ConfigError`` naming the first that is not)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} must be a JSON object", field=field)
    for name in names:
        if not isinstance(raw.get(name), str):
            raise ConfigError("must be a string", field=name)
    return raw


def issue_from_json(raw: object) -> AgentIssue:
    raw = _object_of_strings(
        raw, "a MID issue", "issue", ("sys_id", "agent", "kind", "source", "message", "state")
    )
    count = raw.get("count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise ConfigError("must be an integer", field="count")
    created, updated = _read_time(raw.get("created"), "created"), _read_time(raw.get("updated"), "updated")
    if created is None or updated is None:
        raise ConfigError("is missing", field="created")
    return AgentIssue(
        sys_id=raw["sys_id"],
        agent=raw["agent"],
        kind=raw["kind"],
        source=check_issue_source(raw["source"]),
        message=raw["message"],
        state=check_issue_state(raw["state"]),
        count=count,
        created=created,
        updated=updated,
    )


def upgrade_to_json(upgrade: AgentUpgrade) -> dict[str, Any]:
    return {
        "sys_id": upgrade.sys_id,
        "agent": upgrade.agent,
        "from_version": upgrade.from_version,
        "to_version": upgrade.to_version,
        "state": upgrade.state,
        "reason": upgrade.reason,
        "started": upgrade.started.isoformat(),
        "ended": _time(upgrade.ended),
    }


def upgrade_from_json(raw: object) -> AgentUpgrade:
    names = ("sys_id", "agent", "from_version", "to_version", "state", "reason")
    raw = _object_of_strings(raw, "a MID upgrade", "upgrade", names)
    started = _read_time(raw.get("started"), "started")
    if started is None:
        raise ConfigError("is missing", field="started")
    return AgentUpgrade(
        sys_id=raw["sys_id"],
        agent=raw["agent"],
        from_version=raw["from_version"],
        to_version=raw["to_version"],
        state=check_upgrade_state(raw["state"]),
        reason=raw["reason"],
        started=started,
        ended=_read_time(raw.get("ended"), "ended"),
    )


@dataclass(frozen=True)
class ServedWheel:
    """A midprobe wheel the instance serves: its file name, version, SHA-256 (hex) and size."""

    filename: str
    version: str
    sha256: str
    size: int


def wheel_to_json(wheel: ServedWheel) -> dict[str, Any]:
    return {"filename": wheel.filename, "version": wheel.version, "sha256": wheel.sha256, "size": wheel.size}


def wheel_from_json(raw: object) -> ServedWheel:
    raw = _object_of_strings(raw, "a served wheel", "wheel", ("filename", "version", "sha256"))
    size = raw.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigError("must be a size in bytes", field="size")
    digest = raw["sha256"].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError("must be 64 hex digits", field="sha256")
    filename = raw["filename"]
    if "/" in filename or "\\" in filename or not filename.endswith(".whl"):
        raise ConfigError(f"{filename!r} is not a wheel's file name", field="filename")
    return ServedWheel(filename, check_version(raw["version"]), digest, size)


def affinity_to_json(affinity: CredentialAffinity) -> dict[str, Any]:
    return {
        "address": affinity.address,
        "protocol": affinity.protocol,
        "credential_id": affinity.credential_id,
        "updated_at": affinity.updated_at.isoformat(),
    }


def affinity_from_json(raw: Mapping[str, object]) -> CredentialAffinity:
    values = {name: raw.get(name) for name in ("address", "protocol", "credential_id")}
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigError("must be a string", field=name)
    updated = _read_time(raw.get("updated_at"), "updated_at")
    if updated is None:
        raise ConfigError("is missing", field="updated_at")
    return CredentialAffinity(
        str(values["address"]), str(values["protocol"]), str(values["credential_id"]), updated
    )


__all__ = [
    "API_PREFIX",
    "IDEMPOTENCY_HEADER",
    "ServedWheel",
    "affinity_from_json",
    "affinity_to_json",
    "answers_json",
    "issue_from_json",
    "issue_to_json",
    "record_from_json",
    "record_to_json",
    "registration_from_json",
    "registration_to_json",
    "upgrade_from_json",
    "upgrade_to_json",
    "wheel_from_json",
    "wheel_to_json",
]
