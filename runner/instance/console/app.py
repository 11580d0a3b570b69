"""The console's routes: server-rendered pages over the queue, the MIDs, the discoveries and the CMDB.

Every page but the log-in page needs a logged-in session (a visitor without one is sent to log
in); every form carries its session's CSRF token and a POST without the right one is refused
(403) before anything is done. Pages are Jinja2 templates with autoescaping, so a record's
fields (device names, payloads, topics) are shown as text, never as markup. Responses forbid
scripts, framing and foreign resources (``Content-Security-Policy``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from midprobe.capabilities.errors import ConfigError, MidprobeError, QueueError, ToolError
from midprobe.runner.cmdb.map import build_map, draw
from midprobe.runner.cmdb.model import CI_CLASSES
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.status import StatusStore
from midprobe.runner.ecc.record import ECC_FIELDS, is_sys_id
from midprobe.runner.instance.auth import User, UserStore
from midprobe.runner.instance.console.forms import FormError, read_form
from midprobe.runner.instance.console.sessions import COOKIE, Session, SessionStore
from midprobe.runner.instance.console.views import (
    ECC_PAGE_SIZE,
    EccFilter,
    discovery_view,
    mid_view,
    optional_labels,
    relation_views,
)
from midprobe.runner.instance.errors import TableApiError
from midprobe.runner.instance.query import parse_query
from midprobe.runner.instance.tables import EccQueueTable, record_row
from midprobe.runner.instance.throttle import LoginThrottle, TooManyLogins
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.lifecycle import CONSOLE_MID_ACTIONS, MID_ACTIONS, check_issue_state

HERE: Final = Path(__file__).parent
CONSOLE_ROLE: Final = "admin"
"""The role a user needs to log in to the console (a ``mid_server`` user is an agent, not an operator)."""
MID_ADMIN_ROLE: Final = "admin"
"""The role a user needs to press a MID's buttons (validate, pause, ...) and handle its issues,
as for ``midprobe mid ...`` over HTTPS."""
MAP_NODE_LIMIT: Final = 200
"""CIs the whole network map is drawn for; past that the map page asks for a neighbourhood."""
PAYLOAD_SHOWN: Final = 1_000_000
"""Characters of a payload a record page shows (the rest is cut, and the page says so)."""

_SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
#: Where the log-in page may send a user afterwards: a console path, nothing that leaves the site.
_NEXT: Final = re.compile(r"/[A-Za-z0-9_./?=&%+-]*")

DiscoveryStarter = Callable[[str, str | None, str], str]
"""Starts a discovery on the instance: (schedule TOML, credentials TOML or ``None``, user name) -> its status id;
``ConfigError`` naming what is wrong with the request."""
T = TypeVar("T")


@dataclass(frozen=True)
class ConsoleStores:
    """What the console reads: the instance's queue and users, and the CMDB and discovery status
    in the same database. ``start_discovery`` starts a discovery when the instance runs them (the
    console then offers a form); ``wake_agents`` wakes the agents' long polls after an operator's
    change to a MID (a validated or resumed MID then claims its work at once)."""

    queue: EccQueue
    users: UserStore
    cmdb: CmdbStore
    status: StatusStore
    start_discovery: DiscoveryStarter | None = None
    wake_agents: Callable[[], None] | None = None


class ConsoleError(MidprobeError):
    """A page the console refuses: an HTTP ``status`` and a one-line message for the operator."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class _SecurityHeaders:
    """Adds the console's security headers to every response (pages, images, the style sheet)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class Page:
    """One request to a page: the session it came with (logged in) and, for a POST, its form."""

    request: Request
    session: Session
    form: dict[str, str] = field(default_factory=dict)

    def sys_id(self) -> str:
        """The page's ``{sys_id}``; a 404 when it is not one (32 lowercase hex characters)."""
        sys_id = str(self.request.path_params["sys_id"])
        if not is_sys_id(sys_id):
            raise ConsoleError(404, f"{sys_id!r} is not a sys_id (32 lowercase hex characters)")
        return sys_id

    @property
    def user(self) -> User:
        assert self.session.user is not None
        return self.session.user


Handler = Callable[[Page], Awaitable[Response]]


class Console:
    """The console's handlers over ``stores``; ``sessions`` and ``clock`` are injectable for tests.

    ``throttle`` rations failed log-ins (the instance passes the one its API uses, so the form and
    basic auth draw on the same tries)."""

    def __init__(
        self,
        stores: ConsoleStores,
        *,
        sessions: SessionStore | None = None,
        clock: Callable[[], datetime] | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.stores = stores
        self.sessions = sessions or SessionStore()
        self.throttle = throttle or LoginThrottle()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ecc = EccQueueTable(stores.queue)
        self._templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # -- plumbing ------------------------------------------------------------------------------------------

    @staticmethod
    async def call(function: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(function)

    @staticmethod
    def base(request: Request) -> str:
        """The path the console is mounted at (``/console``)."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        page = self._templates.get_template(template).render(
            base=self.base(request),
            user=session.user if session else None,
            csrf_token=session.csrf_token if session else "",
            refresh=context.pop("refresh", None),
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def error_page(
        self, request: Request, session: Session | None, status: int, message: str
    ) -> HTMLResponse:
        return self.render(
            request,
            "error.html",
            session,
            status=status,
            status_code=status,
            message=message,
            title=str(status),
        )

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the log-in check (GET) and the CSRF check (POST), its refusals as error pages."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.get(request.cookies.get(COOKIE))
            if session is None or session.user is None:
                if request.method != "GET":
                    return self.error_page(request, None, 401, "log in first (your session has ended)")
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{self.base(request)}/login?next={quote(wanted)}", status_code=303)
            try:
                form = await self._checked_form(request, session) if request.method == "POST" else {}
                return await handler(Page(request, session, form))
            except ConsoleError as error:
                return self.error_page(request, session, error.status, error.message)
            except TableApiError as error:
                detail = f": {error.detail}" if error.detail else ""
                return self.error_page(request, session, error.status, f"{error.message}{detail}")
            except FormError as error:
                return self.error_page(request, session, error.status, error.message)
            except ConfigError as error:
                return self.error_page(request, session, 400, error.message)
            except QueueError:
                return self.error_page(request, session, 503, "the instance's database is not reachable")

        return endpoint

    async def _checked_form(self, request: Request, session: Session) -> dict[str, str]:
        form = await read_form(request)
        if not session.csrf_matches(form.pop("csrf_token", "")):
            raise ConsoleError(403, "the form did not come from this session (reload the page and try again)")
        return form

    # -- logging in and out --------------------------------------------------------------------------------

    def _login_page(
        self, request: Request, session: Session, *, status: int = 200, message: str = "", name: str = ""
    ) -> Response:
        next_path = request.query_params.get("next", "")
        response = self.render(
            request,
            "login.html",
            session,
            status=status,
            title="Log in",
            message=message,
            name=name,
            next=next_path if _NEXT.fullmatch(next_path) else "",
        )
        self._set_cookie(request, response, session)
        return response

    def _set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.token,
            path=self.base(request) or "/",
            secure=True,
            httponly=True,
            samesite="strict",
        )

    async def login_form(self, request: Request) -> Response:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            session = self.sessions.start()
        elif session.user is not None:
            return RedirectResponse(f"{self.base(request)}/mids", status_code=303)
        return self._login_page(request, session)

    async def login(self, request: Request) -> Response:
        session = self.sessions.get(request.cookies.get(COOKIE))
        try:
            form = await read_form(request)
        except FormError as error:
            return self.error_page(request, None, error.status, error.message)
        if session is None or not session.csrf_matches(form.get("csrf_token", "")):
            fresh = self.sessions.start()
            return self._login_page(
                request, fresh, status=403, message="The log-in form had expired: log in again."
            )
        name, password = form.get("name", ""), form.get("password", "")
        address = request.client.host if request.client else None
        try:
            user = await self.call(
                lambda: self.throttle.authenticate(self.stores.users, name, password, address)
            )
        except TooManyLogins as error:
            refused = self._login_page(
                request,
                session,
                status=429,
                message=f"Too many failed log-ins for this user or from this address: try again in {error.retry_after} s.",
                name=name,
            )
            refused.headers["Retry-After"] = str(error.retry_after)
            return refused
        if user is None:
            return self._login_page(
                request, session, status=401, message="Wrong user name or password.", name=name
            )
        if not user.has_role(CONSOLE_ROLE):
            return self._login_page(
                request,
                session,
                status=403,
                message=f"{user.name} may not use the console: it needs the {CONSOLE_ROLE} role.",
                name=name,
            )
        self.sessions.end(session.token)
        logged_in = self.sessions.start(user)
        wanted = form.get("next", "")
        target = wanted if _NEXT.fullmatch(wanted) and wanted.startswith(f"{self.base(request)}/") else ""
        response = RedirectResponse(target or f"{self.base(request)}/mids", status_code=303)
        self._set_cookie(request, response, logged_in)
        return response

    async def logout(self, page: Page) -> Response:
        self.sessions.end(page.session.token)
        response = RedirectResponse(f"{self.base(page.request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=self.base(page.request) or "/")
        return response

    # -- the MIDs ------------------------------------------------------------------------------------------

    def _mid(self, name: str) -> Any:
        queue = self.stores.queue
        agent = queue.get_agent(name)
        if agent is None:
            raise ConsoleError(404, f"no MID Server {name!r}")
        return mid_view(agent, self._clock(), queue.list_issues(agent.name, include_resolved=True))

    async def mids(self, page: Page) -> Response:
        now = self._clock()

        def load() -> list[Any]:
            queue = self.stores.queue
            open_issues = queue.list_issues()
            return [
                mid_view(agent, now, [issue for issue in open_issues if issue.agent == agent.name])
                for agent in queue.list_agents()
            ]

        mids = await self.call(load)
        return self.render(
            page.request,
            "mids.html",
            page.session,
            title="MID Servers",
            mids=mids,
            optional_labels=optional_labels(mids),
            refresh=10,
        )

    async def mid(self, page: Page) -> Response:
        name = page.request.path_params["name"]
        try:
            mid = await self.call(lambda: self._mid(name))
        except ConfigError:
            raise ConsoleError(404, f"no MID Server {name!r}") from None
        return self.render(
            page.request,
            "mid.html",
            page.session,
            title=mid.name,
            mid=mid,
            may_act=page.user.has_role(MID_ADMIN_ROLE),
        )

    def _may_act(self, page: Page) -> str:
        """The MID the POST is about; a 403 unless the user holds ``MID_ADMIN_ROLE``."""
        if not page.user.has_role(MID_ADMIN_ROLE):
            raise ConsoleError(
                403, f"{page.user.name} may not change MIDs: it needs the {MID_ADMIN_ROLE} role"
            )
        return str(page.request.path_params["name"])

    def _back_to_mid(self, page: Page, name: str) -> Response:
        if self.stores.wake_agents is not None:
            self.stores.wake_agents()
        return RedirectResponse(f"{self.base(page.request)}/mids/{quote(name)}", status_code=303)

    async def mid_action(self, page: Page) -> Response:
        """A MID's button (Validate, Invalidate, Pause, Resume, Drain): what ``midprobe mid VERB NAME`` does."""
        name = self._may_act(page)
        verb = page.form.get("action", "")
        if verb not in CONSOLE_MID_ACTIONS:
            raise ConsoleError(400, f"action: {verb!r} is not one of {', '.join(CONSOLE_MID_ACTIONS)}")
        try:
            changed = await self.call(lambda: MID_ACTIONS[verb].apply(self.stores.queue, name))
        except ConfigError:
            raise ConsoleError(404, f"no MID Server {name!r}") from None
        return self._back_to_mid(page, changed.short_name)

    async def issue_state(self, page: Page) -> Response:
        """Acknowledge or resolve one of the MID's issues (as ``midprobe mid issue ack|resolve ID``)."""
        name = self._may_act(page)
        sys_id = page.sys_id()
        state = check_issue_state(page.form.get("state", ""))

        def change() -> str:
            agent = self.stores.queue.get_agent(name)
            issues = [] if agent is None else self.stores.queue.list_issues(agent.name, include_resolved=True)
            if agent is None or not any(issue.sys_id == sys_id for issue in issues):
                raise ConsoleError(404, f"MID Server {name!r} has no issue {sys_id}")
            self.stores.queue.set_issue_state(sys_id, state)
            return agent.short_name

        return self._back_to_mid(page, await self.call(change))

    # -- the ECC queue -------------------------------------------------------------------------------------

    async def ecc(self, page: Page) -> Response:
        wanted = EccFilter.read(page.request.query_params.multi_items())
        query = parse_query(wanted.encoded_query(), self._ecc.fields)
        listing = await self.call(lambda: self._ecc.select(query, wanted.offset, ECC_PAGE_SIZE))
        total = listing.total if listing.total is not None else wanted.offset + len(listing.rows)
        agents = await self.call(lambda: [agent.name for agent in self.stores.queue.list_agents()])
        later = wanted.offset + ECC_PAGE_SIZE
        return self.render(
            page.request,
            "ecc.html",
            page.session,
            title="ECC queue",
            filter=wanted,
            rows=listing.rows,
            total=total,
            agents=agents,
            previous=wanted.query_string(max(0, wanted.offset - ECC_PAGE_SIZE)) if wanted.offset else None,
            next=wanted.query_string(later) if later < total else None,
        )

    async def ecc_record(self, page: Page) -> Response:
        sys_id = page.sys_id()

        def load() -> tuple[dict[str, str], str, list[dict[str, str]]] | None:
            queue = self.stores.queue
            record = queue.get(sys_id)
            if record is None:
                return None
            payload = queue.read_payload(record)
            answers = queue.list(queue_side="input", response_to=sys_id, limit=20) if record.is_output else []
            return record_row(record), payload, [record_row(answer) for answer in answers]

        found = await self.call(load)
        if found is None:
            raise ConsoleError(404, f"no ECC record {sys_id}")
        row, payload, answers = found
        return self.render(
            page.request,
            "ecc_record.html",
            page.session,
            title=f"{row['topic']} {row['queue']}",
            row=row,
            fields=[name for name in ECC_FIELDS if name != "payload"],
            payload=payload[:PAYLOAD_SHOWN],
            payload_cut=len(payload) - PAYLOAD_SHOWN if len(payload) > PAYLOAD_SHOWN else 0,
            answers=answers,
        )

    # -- discoveries ---------------------------------------------------------------------------------------

    async def discoveries(self, page: Page) -> Response:
        def load() -> list[Any]:
            status = self.stores.status
            return [discovery_view(found, status.device_counts(found.sys_id)) for found in status.list_all()]

        views = await self.call(load)
        running = any(not view.done for view in views)
        return self.render(
            page.request,
            "discoveries.html",
            page.session,
            title="Discoveries",
            discoveries=views,
            can_start=self.stores.start_discovery is not None,
            refresh=3 if running else None,
        )

    async def new_discovery(self, page: Page) -> Response:
        """The start form (GET), or the discovery it starts (POST: then its page)."""
        starter = self.stores.start_discovery
        if starter is None:
            raise ConsoleError(
                404, "this instance does not run discoveries (start them with `midprobe discover run`)"
            )
        schedule = page.form.get("schedule", "")
        if page.request.method == "GET":
            return self._discovery_form(page, schedule)
        credentials = page.form.get("credentials", "").strip() or None
        if not schedule.strip():
            return self._discovery_form(
                page, schedule, status=400, message="schedule: write the schedule (TOML)"
            )
        try:
            status_id = await self.call(lambda: starter(schedule, credentials, page.user.name))
        except ConfigError as error:  # the credentials are never shown again, nor in the message
            return self._discovery_form(page, schedule, status=400, message=error.message)
        return RedirectResponse(f"{self.base(page.request)}/discoveries/{status_id}", status_code=303)

    def _discovery_form(self, page: Page, schedule: str, *, status: int = 200, message: str = "") -> Response:
        return self.render(
            page.request,
            "discovery_start.html",
            page.session,
            status=status,
            title="Start a discovery",
            schedule=schedule,
            message=message,
        )

    async def discovery(self, page: Page) -> Response:
        sys_id = page.sys_id()

        def load() -> Any:
            status = self.stores.status
            found = status.get(sys_id)
            cis = [ci for ci in self.stores.cmdb.list_cis() if ci.last_discovery == sys_id]
            return discovery_view(found, status.device_counts(sys_id), status.device_log(sys_id), cis)

        try:
            view = await self.call(load)
        except ConfigError:
            raise ConsoleError(404, f"no discovery {sys_id}") from None
        return self.render(
            page.request,
            "discovery.html",
            page.session,
            title=f"Discovery {view.name}",
            discovery=view,
            refresh=None if view.done else 2,
        )

    # -- the CMDB ------------------------------------------------------------------------------------------

    async def cmdb(self, page: Page) -> Response:
        wanted = page.request.query_params.get("class", "")
        unknown = sorted(set(page.request.query_params) - {"class"})
        if unknown:
            raise ConsoleError(400, f"the CMDB view takes no parameter {unknown[0]!r}")
        if wanted and wanted not in CI_CLASSES:
            raise ConsoleError(400, f"class: {wanted!r} is not a CMDB class")
        cis = await self.call(lambda: self.stores.cmdb.list_cis(sys_class_name=wanted or None))
        conflicts = await self.call(self.stores.cmdb.conflicts)
        return self.render(
            page.request,
            "cmdb.html",
            page.session,
            title="CMDB",
            cis=cis,
            classes=sorted(CI_CLASSES),
            wanted=wanted,
            conflicts=conflicts,
        )

    async def ci(self, page: Page) -> Response:
        sys_id = page.sys_id()

        def load() -> Any:
            cmdb = self.stores.cmdb
            ci = cmdb.get(sys_id)
            relations = cmdb.relations(ci.sys_id)
            others = {relation.parent for relation in relations} | {relation.child for relation in relations}
            names = {other.sys_id: other.name for other in cmdb.list_cis() if other.sys_id in others}
            return ci, cmdb.history(ci.sys_id), relation_views(ci.sys_id, relations, names)

        try:
            ci, history, relations = await self.call(load)
        except ConfigError:
            raise ConsoleError(404, f"no CI {sys_id}") from None
        return self.render(
            page.request, "ci.html", page.session, title=ci.name, ci=ci, history=history, relations=relations
        )

    async def network_map(self, page: Page) -> Response:
        cis = await self.call(self.stores.cmdb.list_cis)
        relations = await self.call(self.stores.cmdb.relations)
        network = build_map(cis, relations)
        return self.render(
            page.request,
            "map.html",
            page.session,
            title="Network map",
            network=network,
            components=network.components(),
            drawn=len(network.nodes) <= MAP_NODE_LIMIT,
            limit=MAP_NODE_LIMIT,
        )

    async def map_picture(self, page: Page) -> Response:
        """The map (or the neighbourhood ``around`` a CI, ``depth`` relations far) drawn as SVG by Graphviz."""
        around = page.request.query_params.get("around", "")
        if around and not is_sys_id(around):
            raise ConsoleError(400, f"around: {around!r} is not a CI sys_id")
        depth_text = page.request.query_params.get("depth", "1")
        if depth_text not in ("1", "2", "3"):
            raise ConsoleError(400, "depth: 1, 2 or 3 relations")

        def load() -> bytes:
            network = build_map(self.stores.cmdb.list_cis(), self.stores.cmdb.relations())
            if around:
                if network.node(around) is None:
                    raise ConsoleError(404, f"no CI {around}")
                network = network.around(around, int(depth_text))
            if len(network.nodes) > MAP_NODE_LIMIT:
                raise ConsoleError(
                    413, f"the map has {len(network.nodes)} CIs; draw the neighbourhood of one (around=)"
                )
            return draw(network, "svg")

        try:
            picture = await self.call(load)
        except ToolError as error:
            raise ConsoleError(503, error.message) from None
        return Response(picture, media_type="image/svg+xml")

    async def home(self, page: Page) -> Response:
        return RedirectResponse(f"{self.base(page.request)}/mids", status_code=303)

    # -- the app -------------------------------------------------------------------------------------------

    async def not_found(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        session = self.sessions.get(request.cookies.get(COOKIE))
        message = "no such page" if error.status_code == 404 else str(error.detail)
        return self.error_page(
            request, session if session and session.user else None, error.status_code, message
        )

    def app(self) -> ASGIApp:
        routes = [
            Route("/", self.page(self.home), methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.page(self.logout), methods=["POST"]),
            Route("/mids", self.page(self.mids), methods=["GET"]),
            Route("/mids/{name}", self.page(self.mid), methods=["GET"]),
            Route("/mids/{name}", self.page(self.mid_action), methods=["POST"]),
            Route("/mids/{name}/issues/{sys_id}", self.page(self.issue_state), methods=["POST"]),
            Route("/ecc", self.page(self.ecc), methods=["GET"]),
            Route("/ecc/{sys_id}", self.page(self.ecc_record), methods=["GET"]),
            Route("/discoveries", self.page(self.discoveries), methods=["GET"]),
            Route("/discoveries/new", self.page(self.new_discovery), methods=["GET", "POST"]),
            Route("/discoveries/{sys_id}", self.page(self.discovery), methods=["GET"]),
            Route("/cmdb", self.page(self.cmdb), methods=["GET"]),
            Route("/cmdb/{sys_id}", self.page(self.ci), methods=["GET"]),
            Route("/map", self.page(self.network_map), methods=["GET"]),
            Route("/map.svg", self.page(self.map_picture), methods=["GET"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return _SecurityHeaders(Starlette(routes=routes, exception_handlers={HTTPException: self.not_found}))


def console_app(
    stores: ConsoleStores, *, sessions: SessionStore | None = None, throttle: LoginThrottle | None = None
) -> ASGIApp:
    """The console as an ASGI app, to be mounted at ``/console`` by the instance."""
    return Console(stores, sessions=sessions, throttle=throttle).app()


__all__ = [
    "CONSOLE_ROLE",
    "MID_ADMIN_ROLE",
    "Console",
    "ConsoleError",
    "ConsoleStores",
    "DiscoveryStarter",
    "console_app",
]
