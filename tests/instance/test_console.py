"""The web console in process (Starlette's TestClient over a real SQLite queue, CMDB and discovery status).

What an operator would notice: pages need a log-in, a form without its session's CSRF token does
nothing, hostile values from devices and records are shown as text, bad filters are named.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.model import DiscoveredDevice, NetworkInterface
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.status import StatusStore
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import User, UserStore
from midprobe.runner.instance.console import ConsoleStores, console_app
from midprobe.runner.instance.console.sessions import SessionStore
from midprobe.runner.instance.console.views import mid_view, optional_labels
from midprobe.runner.instance.throttle import LoginThrottle
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.lifecycle import SETTING_AUTO_VALIDATE, registered_agent, work_refusal
from tests.instance.conftest import ADMIN, MID

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Stores:
    def __init__(self, queue_url: str, queue: EccQueue, users: UserStore) -> None:
        self.database = open_database(queue_url)
        self.cmdb = CmdbStore(self.database)
        self.status = StatusStore(self.database)
        self.console = ConsoleStores(queue, users, self.cmdb, self.status)


@pytest.fixture
def stores(queue_url: str, queue: EccQueue, users: UserStore) -> Iterator[Stores]:
    opened = Stores(queue_url, queue, users)
    yield opened
    opened.database.close()


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def client(stores: Stores, queue: EccQueue, users: UserStore, clock: list[float]) -> Iterator[TestClient]:
    sessions = SessionStore(idle_seconds=3600, clock=lambda: clock[0])
    app = create_app(queue, users, console=console_app(stores.console, sessions=sessions))
    with TestClient(app, base_url="https://instance.test") as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def log_in(client: TestClient, user: tuple[str, str] = ADMIN) -> str:
    """Log in; the CSRF token of the logged-in session."""
    form = client.get("/console/login")
    answer = client.post(
        "/console/login", data={"csrf_token": csrf_of(form.text), "name": user[0], "password": user[1]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.url.path == "/console/mids"
    return csrf_of(answer.text)


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console/mids",
        "/console/ecc",
        "/console/cmdb",
        "/console/discoveries",
        "/console/map.svg",
    ],
)
def test_every_page_needs_a_log_in(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=")
    assert "MID" not in answer.text


def test_logging_in_leads_back_to_the_page_asked_for(client: TestClient) -> None:
    first = client.get("/console/cmdb?class=cmdb_ci_linux_server")
    assert first.url.path == "/console/login"
    answer = client.post(
        "/console/login",
        data={
            "csrf_token": csrf_of(first.text),
            "name": ADMIN[0],
            "password": ADMIN[1],
            "next": "/console/cmdb?class=cmdb_ci_linux_server",
        },
    )
    assert answer.url.path == "/console/cmdb"
    assert "<h1>CMDB</h1>" in answer.text


def test_a_log_in_never_leads_off_the_console(client: TestClient) -> None:
    form = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={
            "csrf_token": csrf_of(form.text),
            "name": ADMIN[0],
            "password": ADMIN[1],
            "next": "//evil.test/x",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/mids"


def test_a_wrong_password_or_an_agent_user_is_refused(client: TestClient) -> None:
    form = client.get("/console/login")
    wrong = client.post(
        "/console/login", data={"csrf_token": csrf_of(form.text), "name": ADMIN[0], "password": "nope"}
    )
    assert wrong.status_code == 401
    assert "Wrong user name or password." in wrong.text
    agent = client.post(
        "/console/login", data={"csrf_token": csrf_of(wrong.text), "name": MID[0], "password": MID[1]}
    )
    assert agent.status_code == 403
    assert "needs the admin role" in agent.text
    assert client.get("/console/mids", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_secure_and_changes_at_log_in(client: TestClient) -> None:
    form = client.get("/console/login")
    before = form.cookies["midprobe_console"]
    cookie = form.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "secure" in cookie
    assert "samesite=strict" in cookie
    log_in(client)
    assert client.cookies["midprobe_console"] != before


def test_a_log_in_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/console/login")
    answer = client.post(
        "/console/login", data={"csrf_token": "forged", "name": ADMIN[0], "password": ADMIN[1]}
    )
    assert answer.status_code == 403
    assert "expired" in answer.text
    assert client.get("/console/mids", follow_redirects=False).status_code == 303


def test_a_post_without_the_sessions_csrf_token_does_nothing(client: TestClient) -> None:
    token = log_in(client)
    forged = client.post("/console/logout", data={"csrf_token": "x" + token})
    assert forged.status_code == 403
    assert "did not come from this session" in forged.text
    missing = client.post("/console/logout", data={"name": "x"})
    assert missing.status_code == 403
    assert client.get("/console/mids").status_code == 200  # still logged in
    client.post("/console/logout", data={"csrf_token": token})
    assert client.get("/console/mids", follow_redirects=False).status_code == 303


def test_an_idle_session_ends(client: TestClient, clock: list[float]) -> None:
    log_in(client)
    clock[0] += 3599
    assert client.get("/console/mids", follow_redirects=False).status_code == 200
    clock[0] += 3601
    assert client.get("/console/mids", follow_redirects=False).status_code == 303


def test_pages_forbid_scripts_and_framing(client: TestClient) -> None:
    log_in(client)
    answer = client.get("/console/mids")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy  # none allowed: default-src 'none' covers scripts
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")


def test_the_mids_page_shows_status_validation_capabilities_and_ranges(
    client: TestClient, queue: EccQueue
) -> None:
    queue.register_agent(
        AgentRegistration(
            "east",
            validated=False,
            ip_ranges=("198.18.0.0/24",),
            excluded_ip_ranges=("198.18.0.9",),
            capabilities=(("SSH", ""), ("SNMP", "")),
            host="mid-host",
            started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )
    queue.update_agent("east", validated=False)  # the instance owns validation, not the registration
    queue.register_agent(AgentRegistration("west", status="Paused"))
    log_in(client)
    page = client.get("/console/mids").text
    row = page[page.index('href="/console/mids/east"') :].split("</tr>")[0]
    assert "Up" in row
    assert "<td>no</td>" in row  # not validated
    assert "SSH, SNMP" in row
    assert "198.18.0.0/24" in row
    assert "except 198.18.0.9" in row
    assert "Paused" in page
    detail = client.get("/console/mids/east").text
    assert "mid-host" in detail
    assert "2026-01-02 03:04:05" in detail
    assert client.get("/console/mids/nobody").status_code == 404


def test_a_mids_issues_are_shown_as_text_and_acknowledged_then_resolved_from_its_page(
    client: TestClient, queue: EccQueue
) -> None:
    queue.register_agent(AgentRegistration("east"))
    queue.register_agent(AgentRegistration("west"))
    hostile = queue.raise_issue("east", "probe_failures", HOSTILE)
    queue.raise_issue("east", "clock_skew", "clock skew")
    other = queue.raise_issue("west", "nmap_missing", "nmap is not installed")
    token = log_in(client)
    assert "2 open" in client.get("/console/mids").text
    detail = client.get("/console/mids/east").text
    assert "clock skew" in detail
    assert HOSTILE not in detail
    assert "&lt;script&gt;" in detail
    issue_url = f"/console/mids/east/issues/{hostile.sys_id}"
    assert client.post(issue_url, data={"state": "Acknowledged"}).status_code == 403  # no CSRF token
    assert queue.list_issues("east")[-1].state == "New"
    acknowledged = client.post(issue_url, data={"csrf_token": token, "state": "Acknowledged"})
    assert acknowledged.url.path == "/console/mids/east"
    assert {issue.sys_id: issue.state for issue in queue.list_issues("east")}[
        hostile.sys_id
    ] == "Acknowledged"
    client.post(issue_url, data={"csrf_token": token, "state": "Resolved"})
    assert hostile.sys_id not in {issue.sys_id for issue in queue.list_issues("east")}  # open ones only
    assert "1 open" in client.get("/console/mids").text
    assert "Resolved" in client.get("/console/mids/east").text  # still listed on the MID's page
    # West's issue is not east's to resolve; a bad state is named.
    wrong = client.post(
        f"/console/mids/east/issues/{other.sys_id}", data={"csrf_token": token, "state": "Resolved"}
    )
    assert wrong.status_code == 404
    assert queue.list_issues("west")[0].state == "New"
    bad = client.post(issue_url, data={"csrf_token": token, "state": "Done"})
    assert bad.status_code == 400
    assert "not an issue state" in bad.text


def test_a_new_mid_is_validated_paused_and_resumed_with_its_pages_buttons(
    client: TestClient, queue: EccQueue
) -> None:
    queue.set_setting(SETTING_AUTO_VALIDATE, "false")
    queue.register_agent(AgentRegistration("fresh"))
    token = log_in(client)
    page = client.get("/console/mids/fresh").text
    assert 'value="validate"' in page
    assert "Not validated" in page
    assert client.post("/console/mids/fresh", data={"action": "validate"}).status_code == 403  # no CSRF
    assert not registered_agent(queue, "fresh").validated
    validated = client.post("/console/mids/fresh", data={"csrf_token": token, "action": "validate"})
    assert validated.url.path == "/console/mids/fresh"
    agent = registered_agent(queue, "fresh")
    assert agent.validated
    assert work_refusal(agent, "") is None  # it may claim work now
    assert 'value="validate"' not in validated.text
    assert 'value="invalidate"' in validated.text
    client.post("/console/mids/fresh", data={"csrf_token": token, "action": "pause"})
    assert work_refusal(registered_agent(queue, "fresh"), "") == "paused"
    paused = client.get("/console/mids/fresh").text
    assert 'value="resume"' in paused
    assert 'value="pause"' not in paused
    client.post("/console/mids/fresh", data={"csrf_token": token, "action": "resume"})
    assert work_refusal(registered_agent(queue, "fresh"), "") is None
    unknown = client.post("/console/mids/fresh", data={"csrf_token": token, "action": "explode"})
    assert unknown.status_code == 400
    assert "is not one of validate, invalidate, pause, resume, drain" in unknown.text
    nobody = client.post("/console/mids/nobody", data={"csrf_token": token, "action": "validate"})
    assert nobody.status_code == 404


def test_only_an_admin_may_press_a_mids_buttons(stores: Stores, queue: EccQueue, users: UserStore) -> None:
    queue.set_setting(SETTING_AUTO_VALIDATE, "false")
    queue.register_agent(AgentRegistration("fresh"))
    sessions = SessionStore()
    watcher = sessions.start(User("watcher", ("discovery_admin",)))
    app = create_app(queue, users, console=console_app(stores.console, sessions=sessions))
    with TestClient(
        app, base_url="https://instance.test", cookies={"midprobe_console": watcher.token}
    ) as client:
        page = client.get("/console/mids/fresh").text
        assert 'value="validate"' not in page
        refused = client.post(
            "/console/mids/fresh", data={"csrf_token": watcher.csrf_token, "action": "validate"}
        )
    assert refused.status_code == 403
    assert "needs the admin role" in refused.text
    assert not registered_agent(queue, "fresh").validated


def test_failed_log_ins_are_throttled_as_the_apis_are(
    stores: Stores, queue: EccQueue, users: UserStore
) -> None:
    now = [0.0]
    throttle = LoginThrottle(burst=2, refill_seconds=30, clock=lambda: now[0])
    app = create_app(queue, users, console=console_app(stores.console, throttle=throttle))
    with TestClient(app, base_url="https://instance.test") as client:
        form = client.get("/console/login").text
        for _ in range(2):
            wrong = client.post(
                "/console/login", data={"csrf_token": csrf_of(form), "name": ADMIN[0], "password": "guess"}
            )
            assert wrong.status_code == 401
            form = wrong.text
        refused = client.post(
            "/console/login", data={"csrf_token": csrf_of(form), "name": ADMIN[0], "password": ADMIN[1]}
        )
        assert refused.status_code == 429  # even the right password waits: no scrypt is spent
        assert refused.headers["retry-after"] == "30"
        assert "try again in 30 s" in refused.text
        now[0] += 30
        assert log_in(client)


def _hostile_records(queue: EccQueue) -> EccRecord:
    output = EccRecord(agent="mid1", topic="SSHCommand", queue="output", name=HOSTILE, source="198.18.0.2")
    queue.enqueue(output)
    queue.enqueue(
        EccRecord(
            agent="mid1",
            topic="Shazzam",
            queue="output",
            source="198.18.0.3",
            payload=f"<parameters></pre>{HOSTILE}</parameters>",
        )
    )
    return output


def test_ecc_records_are_shown_as_text_never_markup(client: TestClient, queue: EccQueue) -> None:
    output = _hostile_records(queue)
    log_in(client)
    listing = client.get("/console/ecc").text
    assert HOSTILE not in listing
    assert "&lt;img src=x onerror=alert(1)&gt;" in listing
    record = client.get(f"/console/ecc/{output.sys_id}").text
    assert HOSTILE not in record
    (other,) = queue.list(topic="Shazzam")
    payload = client.get(f"/console/ecc/{other.sys_id}").text
    assert "&lt;/pre&gt;&lt;script&gt;" in payload
    assert "</pre><script>" not in payload


def test_the_ecc_queue_filters_by_agent_topic_and_state(client: TestClient, queue: EccQueue) -> None:
    _hostile_records(queue)
    queue.enqueue(EccRecord(agent="mid2", topic="SNMP", queue="output", source="198.18.0.4"))
    log_in(client)

    def sources(**filters: str) -> set[str]:
        page = client.get("/console/ecc", params=filters).text
        return set(re.findall(r"<td>(198\.18\.0\.\d+)</td>", page))

    assert sources() == {"198.18.0.2", "198.18.0.3", "198.18.0.4"}
    assert sources(agent="mid2") == {"198.18.0.4"}
    assert sources(topic="Shazzam") == {"198.18.0.3"}
    assert sources(state="processed") == set()
    assert sources(state="ready", agent="mid.server.mid1") == {"198.18.0.2", "198.18.0.3"}


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("state=done", "state: &#39;done&#39; is not a state"),
        ("queue=sideways", "queue: &#39;sideways&#39; is not a queue"),
        ("agent=a%20b", "agent"),
        ("offset=-1", "offset"),
        ("colour=red", "takes no parameter"),
        ("state=ready&state=error", "more than once"),
    ],
)
def test_a_bad_ecc_filter_is_named(client: TestClient, query: str, says: str) -> None:
    log_in(client)
    answer = client.get(f"/console/ecc?{query}")
    assert answer.status_code == 400
    assert says in answer.text


def test_an_unknown_record_or_page_is_a_clear_404(client: TestClient) -> None:
    log_in(client)
    assert "no ECC record" in client.get("/console/ecc/" + "0" * 32).text
    assert client.get("/console/ecc/not-an-id").status_code == 404
    assert client.get("/console/cmdb/" + "0" * 32).status_code == 404
    assert client.get("/console/discoveries/" + "0" * 32).status_code == 404
    missing = client.get("/console/nowhere")
    assert missing.status_code == 404
    assert "no such page" in missing.text


def _discovered(cmdb: CmdbStore, discovery: str) -> str:
    device = DiscoveredDevice(
        "cmdb_ci_linux_server",
        HOSTILE,
        ip_address="198.18.0.2",
        serial_number="SER-1",
        interfaces=(NetworkInterface("eth0", "52:54:00:00:00:02", ("198.18.0.2", "2001:db8::2")),),
        attributes={"manufacturer": "Acme <b>bold</b>", "os": "Linux"},
    )
    result = cmdb.reconcile(device, discovery)
    assert result.ci is not None
    switch = cmdb.reconcile(
        DiscoveredDevice("cmdb_ci_ip_switch", "switch1", ip_address="198.18.0.3"), discovery
    )
    assert switch.ci is not None
    cmdb.relate(result.ci, switch.ci, "Connects to::Connected by", discovery)
    return result.ci


def test_a_ci_shows_its_interfaces_addresses_relations_and_history(
    client: TestClient, stores: Stores
) -> None:
    discovery = stores.status.create("lab", {"ranges": ["198.18.0.0/24"]}, None)
    ci = _discovered(stores.cmdb, discovery)
    stores.cmdb.reconcile(
        DiscoveredDevice(
            "cmdb_ci_linux_server",
            "linux1",
            ip_address="198.18.0.2",
            serial_number="SER-1",
            interfaces=(NetworkInterface("eth0", "52:54:00:00:00:02", ("198.18.0.2",)),),
        ),
        discovery,
    )
    log_in(client)
    listing = client.get("/console/cmdb").text
    assert f'href="/console/cmdb/{ci}"' in listing
    page = client.get(f"/console/cmdb/{ci}").text
    assert "linux1" in page
    assert "52:54:00:00:00:02" in page
    assert "eth0" in page
    assert "198.18.0.2" in page
    assert "Connects to" in page
    assert "switch1" in page
    history = page[page.index('id="history"') :]
    assert "2001:db8::2" in history  # the address that went away, in the history
    assert HOSTILE not in history
    assert "&lt;script&gt;" in history
    assert "Acme &lt;b&gt;bold&lt;/b&gt;" in page


def test_the_cmdb_class_filter_is_checked(client: TestClient) -> None:
    log_in(client)
    answer = client.get("/console/cmdb?class=cmdb_ci_toaster")
    assert answer.status_code == 400
    assert "is not a CMDB class" in answer.text


def test_a_running_discovery_refreshes_until_it_ends(client: TestClient, stores: Stores) -> None:
    discovery = stores.status.create("lab sweep", {"ranges": ["198.18.0.0/24"]}, None, addresses=256)
    stores.status.set_state(discovery, "Active")
    stores.status.plan(discovery, "scanning", "198.18.0.0/24", "Shazzam", "mid1", {"sys_id": "a" * 32})
    stores.status.count_addresses(discovery, "a" * 32, decided=128, alive=2)
    stores.status.mark("a" * 32, "completed")
    stores.status.log(discovery, "198.18.0.2", "classification", f"classified as {HOSTILE}")
    log_in(client)
    listing = client.get("/console/discoveries").text
    assert 'http-equiv="refresh"' in listing
    assert "lab sweep" in listing
    assert "<td>128/256</td>" in listing
    running = client.get(f"/console/discoveries/{discovery}").text
    assert '<span id="addresses">128 of 256 decided, 2 alive</span>' in running
    assert 'http-equiv="refresh"' in running
    assert "Active" in running
    assert "&lt;script&gt;" in running
    assert HOSTILE not in running
    ci = _discovered(stores.cmdb, discovery)
    stores.status.set_state(discovery, "Completed")
    done = client.get(f"/console/discoveries/{discovery}").text
    assert 'http-equiv="refresh"' not in done
    assert "Completed" in done
    assert f'href="/console/cmdb/{ci}"' in done


def test_the_network_map_is_drawn_as_svg(client: TestClient, stores: Stores) -> None:
    ci = _discovered(stores.cmdb, stores.status.create("lab", {}, None))
    log_in(client)
    assert 'src="/console/map.svg"' in client.get("/console/map").text
    picture = client.get("/console/map.svg")
    assert picture.headers["content-type"] == "image/svg+xml"
    assert b"switch1" in picture.content
    assert b"<script>" not in picture.content
    around = client.get(f"/console/map.svg?around={ci}&depth=1")
    assert b"switch1" in around.content
    assert client.get("/console/map.svg?depth=9").status_code == 400


@dataclass(frozen=True)
class _VersionedRegistration(AgentRegistration):
    version: str = "1.4.0"
    pinned_version: str = "1.4.0"


def test_a_mids_version_fields_are_shown_when_its_registration_has_them() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    plain = mid_view(AgentRegistration("old", version=""), now)
    versioned = mid_view(_VersionedRegistration("new"), now)
    assert plain.details == ()
    assert versioned.detail("Version") == "1.4.0"
    assert optional_labels([plain, versioned]) == ["Version", "Pinned version"]
    assert optional_labels([plain]) == []


def test_a_discovery_is_started_from_the_console_form_only_with_its_csrf_token(
    stores: Stores, queue: EccQueue, users: UserStore
) -> None:
    started: list[tuple[str, str | None, str]] = []

    def start(schedule: str, credentials: str | None, user: str) -> str:
        if "ranges" not in schedule:
            raise ConfigError("a schedule needs ranges", field="ranges")
        started.append((schedule, credentials, user))
        return stores.status.create("from the console", {}, None)

    console = ConsoleStores(queue, users, stores.cmdb, stores.status, start_discovery=start)
    app = create_app(queue, users, console=console_app(console))
    with TestClient(app, base_url="https://i.test") as client:
        token = log_in(client)
        assert 'href="/console/discoveries/new"' in client.get("/console/discoveries").text
        secret = 'password = "s3cret-in-the-form"'
        forged = client.post(
            "/console/discoveries/new",
            data={"csrf_token": "forged", "schedule": 'ranges = ["198.18.0.0/24"]', "credentials": secret},
        )
        assert forged.status_code == 403
        assert started == []
        refused = client.post(
            "/console/discoveries/new",
            data={"csrf_token": token, "schedule": 'name = "x"', "credentials": secret},
        )
        assert refused.status_code == 400
        assert "ranges: a schedule needs ranges" in refused.text
        assert "s3cret" not in refused.text  # the credentials are never shown back
        assert "name = &#34;x&#34;" in refused.text  # the schedule is, to be fixed
        done = client.post(
            "/console/discoveries/new",
            data={"csrf_token": token, "schedule": 'ranges = ["198.18.0.0/24"]', "credentials": secret},
        )
        assert done.url.path.startswith("/console/discoveries/")
        assert "from the console" in done.text
        assert started == [('ranges = ["198.18.0.0/24"]', secret, ADMIN[0])]


def test_without_a_discovery_service_the_console_offers_no_start(client: TestClient) -> None:
    log_in(client)
    assert "/discoveries/new" not in client.get("/console/discoveries").text
    assert client.get("/console/discoveries/new").status_code == 404
