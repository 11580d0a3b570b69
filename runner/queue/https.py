"""The ECC queue over HTTPS: a remote agent's view of an instance (``https://HOST:PORT``).

Every method is one call of the instance's agent endpoints (``/api/midprobe/v1``, see
docs/instance.md) through one httpx client: TLS verified against the instance's CA
(``--ca FILE``) or the system bundle, HTTP basic auth (the password only ever comes from
``MIDPROBE_INSTANCE_PASSWORD``), proxies from the standard environment variables
(``HTTPS_PROXY``, ``NO_PROXY``). Transport failures and 502/503/504 are retried with bounded
exponential back-off; what is left becomes a one-line ``QueueError`` (a refused request: a
``ConfigError``). With a spool, each result is on disk before it is sent and until the
instance confirmed it; what a crash or an outage left there is resent, with its idempotency
key, before the next claim. The user side of the interface (enqueue, listing records,
readdressing, attachments by id) is the Table API's job and is refused here.
"""

from __future__ import annotations

import builtins
import hashlib
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

from midprobe.capabilities.errors import ConfigError, MidprobeError, QueueError
from midprobe.runner.ecc.record import ECC_PAYLOAD_CAP, EccRecord, EccState, QueueSide, normalize_agent_name
from midprobe.runner.queue.base import (
    AgentNameInUse,
    AgentRegistration,
    CredentialAffinity,
    Lease,
    PoolClaim,
    claim_each,
)
from midprobe.runner.queue.lifecycle import AdminState, AgentIssue, AgentUpgrade, IssueSource, IssueState
from midprobe.runner.queue.spool import ResultSpool
from midprobe.runner.queue.wire import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    ServedWheel,
    affinity_from_json,
    answers_json,
    issue_from_json,
    record_from_json,
    record_to_json,
    registration_from_json,
    registration_to_json,
    upgrade_from_json,
    wheel_from_json,
)

ATTEMPTS: Final = 4
"""Tries of one call (the first and three retries)."""
FIRST_BACKOFF_SECONDS: Final = 0.25
MAX_BACKOFF_SECONDS: Final = 4.0
REQUEST_TIMEOUT_SECONDS: Final = 30.0
FIRST_FLUSH_BACKOFF_SECONDS: Final = 1.0
"""After a resend of the spool failed, the next waits this long (doubling up to ``MAX_FLUSH_BACKOFF_SECONDS``)."""
MAX_FLUSH_BACKOFF_SECONDS: Final = 60.0
MAX_ANSWERS: Final = 500
"""Most results sent in one ``/answers`` request (the instance's limit)."""
_RETRIED_STATUSES: Final = frozenset({502, 503, 504})
_URLS_KEPT: Final = 64
"""Request URLs remembered, built (most calls go to a few paths: ``/claims``, ``/answers``)."""
_JSON_HEADERS: Final = {"Content-Type": "application/json"}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _said(error: Mapping[str, object]) -> str:
    """What an error body (``{"message", "detail"}``) says, on one line."""
    return _one_line(": ".join(str(part) for part in (error.get("message"), error.get("detail")) if part))


def tls_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """Verify against ``ca_file`` (the instance's own CA, pinned) or, without one, the system's CAs;
    with ``cert_file`` and ``key_file``, present that client certificate (mutual TLS)."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except FileNotFoundError:
        raise ConfigError(f"{ca_file}: file not found", field="--ca") from None
    except (ssl.SSLError, ValueError):
        raise ConfigError(f"{ca_file}: not a PEM CA certificate", field="--ca") from None
    except OSError as error:
        raise ConfigError(f"{ca_file}: {error.strerror or error}", field="--ca") from None
    if (cert_file is None) != (key_file is None):
        raise ConfigError(
            "a client certificate needs its key: give --cert and --key together", field="--cert"
        )
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file))
        except FileNotFoundError as error:
            raise ConfigError(f"{error.filename or cert_file}: file not found", field="--cert") from None
        except (ssl.SSLError, ValueError):
            raise ConfigError(
                f"{cert_file}, {key_file}: not a PEM certificate and its unencrypted key", field="--cert"
            ) from None
        except OSError as error:
            raise ConfigError(f"{cert_file}: {error.strerror or error}", field="--cert") from None
    return context


class HttpsQueue:
    """An ``EccQueue`` served by a midprobe instance; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        user: str,
        password: str | None,
        verify: ssl.SSLContext | None = None,
        spool: ResultSpool | None = None,
        payload_cap: int = ECC_PAYLOAD_CAP,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = base_url.rstrip("/")
        #: The role the calls need, named when the instance refuses one (``discovery_admin`` for a user's client).
        self.role = "mid_server"
        self.payload_cap = payload_cap
        self._user = user
        self._spool = spool
        self._sleep = sleep
        self._closed = False
        self._flush_lock = threading.Lock()
        #: Whether the spool may hold results no request of this process is sending: at the start
        #: (an earlier run's) and after an outage. Only then does a claim read and resend it.
        self._spool_unsent = True
        #: After a failed resend: not before this time (``monotonic``), so claims do not resend in a loop.
        self._monotonic = monotonic
        self._flush_after = 0.0
        self._flush_backoff = FIRST_FLUSH_BACKOFF_SECONDS
        #: Whether the instance serves ``POST /claims`` (one that does not gets a claim per pool).
        self._claims_served = True
        self._client = client or httpx.Client(
            base_url=self.url, verify=verify or ssl.create_default_context(), timeout=REQUEST_TIMEOUT_SECONDS
        )
        #: No password: the client certificate in ``verify`` logs the user in.
        self._auth = httpx.BasicAuth(user, password) if password else None
        #: Per request path, its URL as the client builds it (parsed and merged with the base once, not per call).
        self._urls: dict[str, httpx.URL] = {}

    # -- the transport ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        prefix: str = API_PREFIX,
        encoded_body: str | None = None,
    ) -> Any:
        """One call; returns the ``result`` of the JSON answer, or raises (mapped, one line).

        ``encoded_body``: the JSON body as text already (instead of ``body``).
        """
        if self._closed:
            raise QueueError(f"queue {self.url}: the queue is closed")
        url = self._url(prefix + path)
        content = None if encoded_body is None else encoded_body.encode()
        if content is not None:
            headers = {**(headers or {}), **_JSON_HEADERS}
        delay = FIRST_BACKOFF_SECONDS
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            try:
                response = self._client.request(
                    method,
                    url,
                    content=content,
                    json=None if content is not None else body,
                    params=params,
                    headers=headers,
                    auth=self._auth,
                    timeout=timeout or REQUEST_TIMEOUT_SECONDS,
                )
            except httpx.TransportError as error:
                text = _one_line(str(error)) or type(error).__name__
                if "CERTIFICATE_VERIFY_FAILED" in text:
                    raise QueueError(
                        f"queue {self.url}: the instance's certificate is not trusted"
                        " (give --ca with the instance's CA file)"
                    ) from None
                if last:
                    raise QueueError(f"queue {self.url}: cannot reach the instance ({text})") from None
            else:
                if response.status_code not in _RETRIED_STATUSES or last:
                    return self._answer(response)
            self._sleep(delay)
            delay = min(MAX_BACKOFF_SECONDS, delay * 2)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = self._client.build_request("GET", path).url
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()  # paths naming records: a few calls each
            self._urls[path] = url
        return url

    def _answer(self, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if response.is_success and isinstance(data, dict) and "result" in data:
            return data["result"]
        message = _one_line(str(error.get("message", ""))) if isinstance(error, dict) else ""
        detail = _one_line(str(error.get("detail") or "")) if isinstance(error, dict) else ""
        said = ": ".join(part for part in (message, detail) if part) or f"HTTP {response.status_code}"
        status = response.status_code
        if status == 401:
            raise QueueError(
                f"queue {self.url}: the instance refused user {self._user!r} (wrong name or password)"
            )
        if status == 403:
            raise QueueError(
                f"queue {self.url}: user {self._user!r} may not do this ({detail or f'needs the {self.role} role'})"
            )
        if status == 429:
            raise QueueError(f"queue {self.url}: {detail or 'too many failed logins'}")
        if status == 409 and message == "Agent name in use":
            raise AgentNameInUse(detail or said)
        if 400 <= status < 500:
            raise ConfigError(f"the instance refused the request: {said}")
        raise QueueError(f"queue {self.url}: the instance failed: {said}")

    def call(
        self, method: str, path: str, *, body: object = None, prefix: str = API_PREFIX, **options: Any
    ) -> Any:
        """One request of the instance's API at ``prefix + path`` (retried, mapped as every call is)."""
        return self._request(method, path, body=body, prefix=prefix, **options)

    # -- records ------------------------------------------------------------------------------

    def enqueue(self, record: EccRecord) -> str:
        raise self._not_served("enqueue")

    def enqueue_many(self, records: Sequence[EccRecord]) -> builtins.list[str]:
        raise self._not_served("enqueue")

    def readdress(self, sys_id: str, from_agent: str, to_agent: str) -> bool:
        raise self._not_served("readdress")

    def get_attachment(self, sys_id: str) -> str | None:
        raise self._not_served("get_attachment")

    def get_lease(self, sys_id: str) -> Lease | None:
        found = self._request("GET", f"/outputs/{sys_id}/lease")
        if found is None:
            return None
        return Lease(
            str(found["sys_id"]), str(found["owner"]), datetime.fromisoformat(str(found["expires_at"]))
        )

    def list_agents(self, live_within_seconds: float | None = None) -> builtins.list[AgentRegistration]:
        params = {} if live_within_seconds is None else {"live_within_seconds": f"{live_within_seconds:g}"}
        return [registration_from_json(raw) for raw in self._request("GET", "/agents", params=params)]

    def results_of(self, output_sys_id: str) -> builtins.list[EccRecord]:
        raise self._not_served("results_of")

    def copies_of(self, sys_id: str) -> builtins.list[EccRecord]:
        raise self._not_served("copies_of")

    def send_input(self, record: EccRecord) -> bool:
        """Send an input of the agent's own (``queue.stats``) with its idempotency key: stored once."""
        answer = self._request(
            "POST",
            "/inputs",
            body={"record": record_to_json(record)},
            headers={IDEMPOTENCY_HEADER: record.sys_id},
        )
        return bool(answer["stored"])

    def _not_served(self, what: str) -> QueueError:
        return QueueError(
            f"queue {self.url}: {what} is not served to agents over HTTPS (use the instance's Table API)"
        )

    def claim(
        self,
        agent: str,
        limit: int,
        lease_seconds: float,
        *,
        include_own_processing: bool = False,
        priorities: Sequence[int] | None = None,
        instance: str | None = None,
    ) -> builtins.list[EccRecord]:
        self.flush_spool()
        body = {
            "agent": agent,
            "limit": limit,
            "lease_seconds": lease_seconds,
            "include_own_processing": include_own_processing,
            "priorities": None if priorities is None else list(priorities),
            "instance": instance,
        }
        return [record_from_json(raw) for raw in self._request("POST", "/claim", body=body)]

    def claim_pools(
        self, agent: str, claims: Sequence[PoolClaim], lease_seconds: float, *, instance: str | None = None
    ) -> builtins.list[builtins.list[EccRecord] | QueueError]:
        """The claim round in one ``/claims`` request (a pool's failed claim comes back as its ``QueueError``)."""
        if not claims:
            return []
        self.flush_spool()
        body = {
            "agent": agent,
            "lease_seconds": lease_seconds,
            "instance": instance,
            "pools": [
                {"priority": c.priority, "limit": c.limit, "include_own_processing": c.include_own_processing}
                for c in claims
            ],
        }
        if not self._claims_served:
            return claim_each(self, agent, claims, lease_seconds, instance=instance)
        try:
            answers = self._request("POST", "/claims", body=body)
        except ConfigError as refused:
            if "does not represent any resource" not in str(refused):
                raise
            self._claims_served = False  # an instance from before POST /claims: a request per pool
            return claim_each(self, agent, claims, lease_seconds, instance=instance)
        outcomes: builtins.list[builtins.list[EccRecord] | QueueError] = []
        for answer in answers:
            if isinstance(answer, dict):
                error = answer.get("error")
                said = _said(error) if isinstance(error, dict) else "no reason given"
                outcomes.append(QueueError(f"queue {self.url}: the instance failed: {said}"))
                break
            outcomes.append([record_from_json(raw) for raw in answer])
        return outcomes

    def renew(
        self, agent: str, sys_ids: Sequence[str], lease_seconds: float, *, instance: str | None = None
    ) -> builtins.list[str]:
        body = {
            "agent": agent,
            "sys_ids": list(sys_ids),
            "lease_seconds": lease_seconds,
            "instance": instance,
        }
        return [str(sys_id) for sys_id in self._request("POST", "/renew", body=body)]

    def release(self, agent: str, sys_ids: Sequence[str]) -> builtins.list[str]:
        body = {"agent": agent, "sys_ids": list(sys_ids)}
        return [str(sys_id) for sys_id in self._request("POST", "/release", body=body)]

    def complete(self, output_sys_id: str, result: EccRecord) -> bool:
        """Spool ``result``, send it with its idempotency key, and forget it once the instance has it."""
        if self._spool is not None:
            self._spool.put(output_sys_id, result)
        try:
            stored = self._send(output_sys_id, result)
        except QueueError:
            self._spool_unsent = True
            raise  # stays in the spool: resent before the next claim
        except ConfigError:
            if self._spool is not None:  # refused for good: resending would be refused again
                self._spool.remove(result.sys_id)
            raise
        if self._spool is not None:
            self._spool.remove(result.sys_id)
        return stored

    def complete_many(self, answers: Sequence[tuple[str, EccRecord]]) -> builtins.list[bool | MidprobeError]:
        """:meth:`complete` for each pair, up to ``MAX_ANSWERS`` in one request (the instance stores
        each result once, by its ``sys_id``). A refused pair never stops the others; an outage
        raises ``QueueError``: the results confirmed before it are out of the spool, the rest stay
        there and go out before the next claim."""
        # One request's answers (what the agent's batch of results is) are turned into JSON once,
        # for the spool and the request alike.
        encoded = answers_json(answers) if 0 < len(answers) <= MAX_ANSWERS else None
        if self._spool is not None:  # every result on disk before the first request
            self._spool.put_many(answers, encoded=encoded)
        outcomes: builtins.list[bool | MidprobeError] = []
        try:
            for start in range(0, len(answers), MAX_ANSWERS):
                outcomes += self._send_many(answers[start : start + MAX_ANSWERS], encoded)
        except QueueError:
            self._spool_unsent = True
            raise
        return outcomes

    def _send_many(
        self, pairs: Sequence[tuple[str, EccRecord]], encoded: str | None = None
    ) -> builtins.list[bool | MidprobeError]:
        """One ``/answers`` request (``encoded``: the pairs as ``answers_json`` has them, if done already);
        each confirmed or refused-for-good result leaves the spool."""
        text = '{"answers": ' + (answers_json(pairs) if encoded is None else encoded) + "}"
        try:
            answered = self._request("POST", "/answers", encoded_body=text)
        except ConfigError:
            return self._send_each(pairs)  # the batch was refused: find which pair it was
        outcomes: builtins.list[bool | MidprobeError] = []
        for (_, result), answer in zip(pairs, answered, strict=True):
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                outcomes.append(ConfigError(f"the instance refused the request: {_said(error)}"))
            else:
                outcomes.append(bool(answer["stored"]))
            if self._spool is not None:
                self._spool.remove(result.sys_id)
        return outcomes

    def _send_each(self, pairs: Sequence[tuple[str, EccRecord]]) -> builtins.list[bool | MidprobeError]:
        """One request per pair (what a refused batch falls back to)."""
        outcomes: builtins.list[bool | MidprobeError] = []
        for output_sys_id, result in pairs:
            try:
                outcomes.append(self._send(output_sys_id, result))
            except ConfigError as error:
                outcomes.append(error)  # refused for good: resending would be refused again
            if self._spool is not None:
                self._spool.remove(result.sys_id)
        return outcomes

    def _send(self, output_sys_id: str, result: EccRecord) -> bool:
        answer = self._request(
            "POST",
            f"/outputs/{output_sys_id}/answer",
            body={"result": record_to_json(result)},
            headers={IDEMPOTENCY_HEADER: result.sys_id},
        )
        return bool(answer["stored"])

    def spool_backlog(self) -> int:
        """Results in the spool still waiting for the instance (0 without a spool)."""
        return 0 if self._spool is None else self._spool.backlog()

    def flush_spool(self) -> int:
        """Resend what the spool holds (an earlier run's or an outage's); returns how many the instance confirmed.

        Called before every claim, so an agent's first claim after a start resends what its last
        run left; afterwards only after a send failed (what is in flight is its sender's to confirm).

        Best effort: an unreachable instance (or one failing what the spool holds) leaves the
        entries for the next try, which waits 1 s after a failed one, doubling up to 60 s.
        """
        if self._spool is None or not self._spool_unsent or self._monotonic() < self._flush_after:
            return 0
        if not self._flush_lock.acquire(blocking=False):
            return 0
        delivered = 0
        try:
            self._spool_unsent = False
            pending = list(self._spool.pending())
            for start in range(0, len(pending), MAX_ANSWERS):
                try:
                    # refused for good (e.g. the output is gone) counts too: nothing will ever take it
                    delivered += len(self._send_many(pending[start : start + MAX_ANSWERS]))
                except QueueError:
                    self._spool_unsent = True
                    self._flush_after = self._monotonic() + self._flush_backoff
                    self._flush_backoff = min(MAX_FLUSH_BACKOFF_SECONDS, self._flush_backoff * 2)
                    break
            else:
                self._flush_backoff = FIRST_FLUSH_BACKOFF_SECONDS
        finally:
            self._flush_lock.release()
        return delivered

    def wait_for_work(self, agent: str, timeout: float) -> bool:
        seconds = max(0.0, min(timeout, 60.0))
        answer = self._request(
            "GET",
            f"/agents/{normalize_agent_name(agent)}/work",
            params={"wait": f"{seconds:g}"},
            timeout=seconds + REQUEST_TIMEOUT_SECONDS,
        )
        return bool(answer["work"])

    def get(self, sys_id: str) -> EccRecord | None:
        try:
            return record_from_json(self._request("GET", f"/records/{sys_id}"))
        except ConfigError as error:
            if "No Record found" in str(error):
                return None
            raise

    def agents_of(self, sys_ids: Sequence[str]) -> dict[str, str]:
        raise self._not_served("agents_of")

    def answered_among(self, output_sys_ids: Sequence[str]) -> set[str]:
        raise self._not_served("answered_among")

    def read_payload(self, record: EccRecord) -> str:
        if not record.payload_is_attachment:
            return record.payload
        return str(self._request("GET", f"/outputs/{record.sys_id}/payload")["payload"])

    # -- agents -------------------------------------------------------------------------------

    def register_agent(
        self,
        registration: AgentRegistration,
        *,
        instance: str | None = None,
        live_within_seconds: float | None = None,
    ) -> None:
        body = {
            "registration": registration_to_json(registration),
            "instance": instance,
            "live_within_seconds": live_within_seconds,
        }
        self._request("POST", "/agents", body=body)

    def heartbeat_agent(self, name: str, *, instance: str | None = None) -> None:
        self._request("POST", f"/agents/{normalize_agent_name(name)}/heartbeat", body={"instance": instance})

    def set_agent_status(self, name: str, status: str, *, instance: str | None = None) -> None:
        body = {"status": status, "instance": instance}
        self._request("POST", f"/agents/{normalize_agent_name(name)}/status", body=body)

    def get_agent(self, name: str) -> AgentRegistration | None:
        try:
            found = self._request("GET", f"/agents/{normalize_agent_name(name)}")
        except ConfigError as error:
            if "No Record found" in str(error):
                return None
            raise
        return registration_from_json(found)

    # -- the MID lifecycle --------------------------------------------------------------------

    def _agent_path(self, name: str, tail: str = "") -> str:
        return f"/agents/{normalize_agent_name(name)}{tail}"

    def update_agent(
        self,
        name: str,
        *,
        validated: bool | None = None,
        admin_state: AdminState | None = None,
        pinned_version: str | None = None,
        rekey: bool | None = None,
    ) -> AgentRegistration:
        changes = {
            "validated": validated,
            "admin_state": admin_state,
            "pinned_version": pinned_version,
            "rekey": rekey,
        }
        body = {key: value for key, value in changes.items() if value is not None}
        return registration_from_json(self._request("POST", self._agent_path(name, "/admin"), body=body))

    def store_sealed_credentials(self, name: str, public_key: str, sealed: str) -> bool:
        raise self._not_served("store_sealed_credentials")  # the instance seals, not its agents

    def get_sealed_credentials(self, name: str) -> str | None:
        found = self._request("GET", self._agent_path(name, "/credentials"))
        sealed = found.get("sealed") if isinstance(found, dict) else None
        return sealed if isinstance(sealed, str) and sealed else None

    def get_discovery_credentials(self, name: str, output_sys_id: str) -> str | None:
        found = self._request("GET", self._agent_path(name, f"/outputs/{output_sys_id}/credentials"))
        sealed = found.get("sealed") if isinstance(found, dict) else None
        return sealed if isinstance(sealed, str) and sealed else None

    def raise_issue(self, agent: str, kind: str, message: str, *, source: IssueSource = "mid") -> AgentIssue:
        body = {"kind": kind, "message": message, "source": source}
        return issue_from_json(self._request("POST", self._agent_path(agent, "/issues"), body=body))

    def clear_issue(self, agent: str, kind: str) -> bool:
        found = self._request("POST", self._agent_path(agent, "/issues/clear"), body={"kind": kind})
        return bool(found["cleared"])

    def list_issues(
        self, agent: str | None = None, *, include_resolved: bool = False
    ) -> builtins.list[AgentIssue]:
        params = {"include_resolved": "true" if include_resolved else "false"}
        if agent is not None:
            params["agent"] = normalize_agent_name(agent)
        return [issue_from_json(raw) for raw in self._request("GET", "/issues", params=params)]

    def set_issue_state(self, sys_id: str, state: IssueState) -> AgentIssue:
        return issue_from_json(self._request("PATCH", f"/issues/{sys_id}", body={"state": state}))

    def get_setting(self, name: str) -> str:
        return str(self._request("GET", f"/settings/{name}")["value"])

    def set_setting(self, name: str, value: str) -> None:
        self._request("PUT", f"/settings/{name}", body={"value": value})

    # -- upgrades -----------------------------------------------------------------------------

    def request_upgrade(self, agent: str, version: str) -> AgentUpgrade:
        return self.request_newest_upgrade(agent, version)

    def request_newest_upgrade(self, agent: str, version: str | None) -> AgentUpgrade:
        """Ask ``agent`` to upgrade to ``version`` (``None``: the newest wheel the instance serves)."""
        body = {} if version is None else {"version": version}
        return upgrade_from_json(self._request("POST", self._agent_path(agent, "/upgrade"), body=body))

    def upgrade_all(self, version: str | None) -> str:
        """Ask every unpinned MID to upgrade to ``version`` (``None``: the newest served); returns it."""
        body = {} if version is None else {"version": version}
        return str(self._request("POST", "/upgrade", body=body)["value"])

    def pending_upgrade(self, agent: str) -> AgentUpgrade | None:
        found = self._request("GET", self._agent_path(agent, "/upgrade"))
        return None if found is None else upgrade_from_json(found)

    def start_upgrade(
        self, agent: str, from_version: str, to_version: str, *, sys_id: str | None = None
    ) -> AgentUpgrade:
        body = {"from_version": from_version or None, "to_version": to_version, "sys_id": sys_id}
        return upgrade_from_json(self._request("POST", self._agent_path(agent, "/upgrades"), body=body))

    def end_upgrade(self, sys_id: str, *, succeeded: bool, reason: str = "") -> AgentUpgrade:
        body = {"succeeded": succeeded, "reason": reason}
        return upgrade_from_json(self._request("POST", f"/upgrades/{sys_id}/end", body=body))

    def list_upgrades(self, agent: str | None = None) -> builtins.list[AgentUpgrade]:
        params = {} if agent is None else {"agent": normalize_agent_name(agent)}
        return [upgrade_from_json(raw) for raw in self._request("GET", "/upgrades", params=params)]

    def list_wheels(self) -> builtins.list[ServedWheel]:
        """The midprobe wheels the instance serves for upgrades, oldest version first."""
        return [wheel_from_json(raw) for raw in self._request("GET", "/wheels")]

    def download_wheel(self, wheel: ServedWheel, folder: Path) -> Path:
        """Download ``wheel`` into ``folder``; the file, once its SHA-256 is the listed one (else ``ConfigError``)."""
        target = folder / wheel.filename
        partial = folder / (wheel.filename + ".part")
        digest = hashlib.sha256()
        try:
            with (
                self._client.stream(
                    "GET",
                    f"{API_PREFIX}/wheels/{wheel.filename}",
                    auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                ) as response,
                partial.open("wb") as handle,
            ):
                if not response.is_success:
                    response.read()
                    self._answer(response)  # raises, mapped as every call's refusal
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    handle.write(chunk)
        except httpx.TransportError as error:
            partial.unlink(missing_ok=True)
            raise QueueError(
                f"queue {self.url}: cannot download {wheel.filename} ({_one_line(str(error))})"
            ) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != wheel.sha256:
            partial.unlink(missing_ok=True)
            raise ConfigError(
                f"{wheel.filename}: checksum mismatch (the instance listed sha256 {wheel.sha256},"
                f" the download has {digest.hexdigest()})",
                field="sha256",
            )
        partial.replace(target)
        return target

    # -- credential affinity ------------------------------------------------------------------

    def get_affinity(self, address: str, protocol: str) -> CredentialAffinity | None:
        found = self._request("GET", "/affinity", params={"address": address, "protocol": protocol})
        return None if found is None else affinity_from_json(found)

    def set_affinity(self, address: str, protocol: str, credential_id: str) -> None:
        body = {"address": address, "protocol": protocol, "credential_id": credential_id}
        self._request("PUT", "/affinity", body=body)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def list(
        self,
        queue_side: QueueSide | None = None,
        state: EccState | None = None,
        agent: str | None = None,
        topic: str | None = None,
        response_to: str | None = None,
        limit: int = 1000,
        *,
        exclude_topic: str | None = None,
        sys_id_prefix: str | None = None,
    ) -> builtins.list[EccRecord]:
        raise self._not_served("list")


__all__ = ["HttpsQueue", "tls_context"]
