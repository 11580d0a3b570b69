"""The instance's web console at ``/console``: MIDs, the ECC queue, discoveries and the CMDB, as pages.

``open_console(url, queue, users)`` opens the CMDB and discovery status beside the instance's
queue and gives the app ``instance serve`` mounts; ``app`` holds the routes, ``views`` what each
page shows, ``sessions`` the log-in sessions and their CSRF tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp

from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.status import StatusStore
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.console.app import ConsoleStores, console_app
from midprobe.runner.queue.base import EccQueue


@contextmanager
def open_console(url: str, queue: EccQueue, users: UserStore) -> Iterator[ASGIApp]:
    """The console over the instance whose queue is ``url``; the CMDB's connection closes on exit."""
    database = open_database(url)
    try:
        yield console_app(ConsoleStores(queue, users, CmdbStore(database), StatusStore(database)))
    finally:
        database.close()


__all__ = ["ConsoleStores", "console_app", "open_console"]
