"""The instance's web console at ``/console``: MIDs, the ECC queue, discoveries and the CMDB, as pages.

``instance_console(queue, users, database, discoveries)`` gives the app ``instance serve`` mounts,
over the instance's queue, users and database (the CMDB and the discovery status), starting
discoveries through the instance's discovery service, changing MIDs as ``midprobe mid ...`` does
(``runner/queue/lifecycle.py``'s actions) and rationing log-ins with the API's throttle; ``app`` holds the routes, ``views`` what
each page shows, ``sessions`` the log-in sessions and their CSRF tokens.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from midprobe.runner.cmdb.database import Database
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.console.app import ConsoleStores, console_app
from midprobe.runner.instance.discoveries import DiscoveryService
from midprobe.runner.instance.throttle import LoginThrottle
from midprobe.runner.instance.wake import WorkSignal
from midprobe.runner.queue.base import EccQueue


def instance_console(
    queue: EccQueue,
    users: UserStore,
    database: Database,
    discoveries: DiscoveryService,
    *,
    signal: WorkSignal | None = None,
    throttle: LoginThrottle | None = None,
) -> ASGIApp:
    """The console of the instance that serves ``queue`` and runs ``discoveries`` (the caller closes them).

    ``signal`` wakes the agents' long polls after a MID is changed; ``throttle`` is the API's log-in throttle.
    """

    def start(schedule: str, credentials: str | None, user: str) -> str:
        return discoveries.start(schedule, credentials=credentials, started_by=user)

    stores = ConsoleStores(
        queue,
        users,
        CmdbStore(database),
        discoveries.status,
        start_discovery=start,
        wake_agents=None if signal is None else signal.notify,
    )
    return console_app(stores, throttle=throttle)


__all__ = ["ConsoleStores", "console_app", "instance_console"]
