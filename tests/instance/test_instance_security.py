"""The instance's guards: MIDs bound to users, the failed-login throttle, batched answers, client certificates.

The real app over a real SQLite queue, called as a remote agent or an integration would.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.client_certs import certificate_user
from midprobe.runner.instance.throttle import LoginThrottle
from midprobe.runner.instance.tls import SERVER_FILE, ensure_certificates, issue_client_certificate
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.https import HttpsQueue
from midprobe.runner.queue.spool import ResultSpool
from tests.instance.conftest import ADMIN, MID, AsgiBridge, Client, remote_queue

BOUND = ("bound1", "bound1-password")
AGENTS = "/api/midprobe/v1"


@pytest.fixture
def bound_users(users: UserStore) -> UserStore:
    users.add(*BOUND, roles=("mid_server",), mids=("mid1",))
    return users


def _remote(app: Starlette, tmp_path: Path, auth: tuple[str, str]) -> HttpsQueue:
    return remote_queue(AsgiBridge(app), tmp_path / "spool", auth)


def _answer(output: EccRecord, agent: str | None = None) -> EccRecord:
    return EccRecord(
        agent=agent or output.agent,
        topic=output.topic,
        queue="input",
        response_to=output.sys_id,
        payload="<results/>",
    )


def test_a_bound_mid_user_acts_only_as_its_own_mid(
    queue: EccQueue, bound_users: UserStore, tmp_path: Path
) -> None:
    app = create_app(queue, bound_users)
    mine = EccRecord(agent="mid1", topic="Shazzam", queue="output")
    theirs = EccRecord(agent="mid2", topic="Shazzam", queue="output")
    queue.enqueue_many([mine, theirs])
    api = Client(app, BOUND)

    for path, body in [
        ("/agents", {"registration": {"name": "mid2"}}),
        ("/agents/mid2/heartbeat", {}),
        ("/claim", {"agent": "mid2", "limit": 5, "lease_seconds": 60}),
        ("/release", {"agent": "mid2", "sys_ids": [theirs.sys_id]}),
    ]:
        refused = api.post(AGENTS + path, body)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["detail"] == "user bound1 may act only as MID mid1, not as mid2"
    assert api.get(f"{AGENTS}/agents/mid2/work", wait="0").status_code == 403
    # Answering another MID's output, through the agent endpoints or the Table API, is refused too.
    answer = {"result": _answer(theirs, agent="mid1").as_dict()}
    assert api.post(f"{AGENTS}/outputs/{theirs.sys_id}/answer", answer).status_code == 403
    batch = [
        {"output": output.sys_id, "result": _answer(output, agent="mid1").as_dict()}
        for output in (mine, theirs)
    ]
    assert api.post(f"{AGENTS}/answers", {"answers": batch}).status_code == 403, "one of them is not mid1's"
    as_table = {"agent": "mid2", "topic": "Shazzam", "queue": "input", "response_to": theirs.sys_id}
    assert api.post("/api/now/table/ecc_queue", as_table).status_code == 403
    still = queue.get(theirs.sys_id)
    assert still is not None
    assert still.state == "ready"
    assert queue.results_of(mine.sys_id) == [], "a refused batch stores none of its answers"

    with _remote(app, tmp_path, BOUND) as remote:
        remote.register_agent(AgentRegistration("mid1"))
        (claimed,) = remote.claim("mid1", 5, 60.0)
        assert claimed.sys_id == mine.sys_id
        assert remote.complete_many([(mine.sys_id, _answer(mine))]) == [True]
    # An unbound mid_server user (and an admin) may act as any MID.
    with _remote(app, tmp_path, MID) as anyone:
        assert [record.sys_id for record in anyone.claim("mid2", 5, 60.0)] == [theirs.sys_id]


def test_user_add_binds_only_named_mids_of_mid_server_users(users: UserStore) -> None:
    with pytest.raises(ConfigError, match="only a mid_server user"):
        users.add("admin2", "pw-admin2", ("admin",), mids=("mid1",))
    with pytest.raises(ConfigError, match="not to every MID"):
        users.add("m", "pw-m", ("mid_server",), mids=("*",))
    users.add("m", "pw-m", ("mid_server",), mids=("mid.server.b", "a"))
    found = users.get("m")
    assert found is not None
    assert found.mids == ("mid.server.a", "mid.server.b")
    assert {user.name: user.mids for user in users.list()}["m"] == found.mids


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_failed_logins_are_throttled_per_user_and_address_with_retry_after(
    queue: EccQueue, users: UserStore
) -> None:
    clock = FakeClock()
    api = Client(
        create_app(queue, users, throttle=LoginThrottle(burst=3, refill_seconds=10, clock=clock)), None
    )
    listing = "/api/now/table/ecc_agent"
    assert api.request("GET", listing, headers=_basic(*MID)).status_code == 200  # verified once: remembered
    for _ in range(3):
        assert api.request("GET", listing, headers=_basic("mid1", "guess")).status_code == 401
    throttled = api.request("GET", listing, headers=_basic("mid1", "guess"))
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "10"
    assert throttled.json()["error"]["message"] == "Too Many Requests"
    # The MID's own, remembered password costs no scrypt and still works; a password not verified
    # yet from this address waits like the guesses (the address has used its tries).
    assert api.request("GET", listing, headers=_basic(*MID)).status_code == 200
    assert api.request("GET", listing, headers=_basic(*ADMIN)).status_code == 429
    clock.now += 10
    assert api.request("GET", listing, headers=_basic(*ADMIN)).status_code == 200


def test_answers_go_in_one_request_and_a_resend_is_recognised(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    app = create_app(queue, users)
    outputs = [EccRecord(agent="mid1", topic="Shazzam", queue="output") for _ in range(3)]
    queue.enqueue_many(outputs)
    answers = [(output.sys_id, _answer(output)) for output in outputs]
    missing = EccRecord(agent="mid1", topic="Shazzam", queue="output")
    with _remote(app, tmp_path, MID) as remote:
        outcomes = remote.complete_many([*answers[:2], (missing.sys_id, _answer(missing))])
        assert outcomes[:2] == [True, True]
        assert isinstance(outcomes[2], ConfigError)
        assert "no output" in str(outcomes[2])
        # The first two again (a lost reply) and the third: each result stored once.
        assert remote.complete_many(answers) == [True, True, True]
    for output in outputs:
        assert len(queue.list(queue_side="input", response_to=output.sys_id)) == 1
    assert ResultSpool(tmp_path / "spool").pending() == []
    assert Client(app, MID).post(f"{AGENTS}/answers", {"answers": []}).status_code == 400


def test_a_client_certificate_names_its_user_and_the_server_certificate_names_none(tmp_path: Path) -> None:
    tls = ensure_certificates(tmp_path / "tls", ["127.0.0.1"])
    files = issue_client_certificate(tmp_path / "tls", "mid1", tmp_path / "out")
    assert files.key.stat().st_mode & 0o077 == 0
    assert files.ca.read_bytes() == (tmp_path / "tls" / "ca.pem").read_bytes()

    def scope(pem: str) -> dict[str, object]:
        return {"extensions": {"tls": {"client_cert_chain": [pem]}}}

    assert certificate_user(scope(files.certificate.read_text())) == "mid1"
    assert certificate_user(scope((tmp_path / "tls" / SERVER_FILE).read_text())) is None
    assert certificate_user({}) is None
    assert tls.ca is not None
    with pytest.raises(ConfigError, match="no instance CA"):
        issue_client_certificate(tmp_path / "elsewhere", "mid1", tmp_path / "out2")


def test_a_client_certificate_logs_its_user_in_without_a_password(
    queue: EccQueue, bound_users: UserStore, tmp_path: Path
) -> None:
    ensure_certificates(tmp_path / "tls", ["127.0.0.1"])
    pem = issue_client_certificate(tmp_path / "tls", BOUND[0], tmp_path / "out").certificate.read_text()
    stranger = issue_client_certificate(tmp_path / "tls", "nobody", tmp_path / "out").certificate.read_text()
    inner = create_app(queue, bound_users)

    def presenting(certificate: str) -> Client:
        """The app as uvicorn serves it with --client-certs: the verified certificate in the scope."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": [certificate]}
            await inner(scope, receive, send)

        return Client(app, None)  # type: ignore[arg-type]

    listing = "/api/now/table/ecc_agent"
    assert presenting(pem).get(listing).status_code == 200
    claim = {"agent": "mid2", "limit": 1, "lease_seconds": 60}
    refused = presenting(pem).post(f"{AGENTS}/claim", claim)
    assert refused.status_code == 403  # the certificate's user keeps its MID binding
    other = presenting(pem).request("GET", listing, headers=_basic(*MID))
    assert other.status_code == 401
    assert other.json()["error"]["detail"] == "the client certificate is user bound1's, not mid1's"
    same = presenting(pem).request("GET", listing, headers=_basic(*BOUND))
    assert same.status_code == 200
    unknown = presenting(stranger).get(listing)
    assert unknown.status_code == 401
    assert unknown.json()["error"]["detail"] == "the client certificate's user nobody does not exist"
