"""The WedSync domain as the running server holds it: one store, the services, the router.

`open_embedded_directory` opens the embedded default's SQLite store (the file in `data_dir`, or
memory for ``:memory:``) with its schema, loads the demo wedding when asked, and returns the
`SqliteDirectory` the catalog policy reads. `WeddingRuntime` builds the domain services on that
same store and the `EventRouter` on the node, so that the facts the access rules read and the
facts the services change are one database. The composition root (`app.py`) finds the store
again through the node's policy (`runtime_for`), and closes it when the application stops.

Every write goes `service → Outcome → runtime.deliver → router → node.publish`: the services
never publish (issue 5, "One pipeline for domain events").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

from wedsync_realtime.engine.node import Node
from wedsync_realtime.settings import Settings
from wedsync_realtime.store.sqlite import SqliteDatabase, database_path
from wedsync_realtime.wedding.change_feed import ChangeFeed
from wedsync_realtime.wedding.core_fields import CoreFieldsService
from wedsync_realtime.wedding.demo import load_demo
from wedsync_realtime.wedding.events import Clock, DomainEvent, Outcome, utc_now
from wedsync_realtime.wedding.forms import FormService
from wedsync_realtime.wedding.journeys import JourneyService
from wedsync_realtime.wedding.notifications import NotificationService
from wedsync_realtime.wedding.policy import CatalogPolicy
from wedsync_realtime.wedding.presence import LastSeenRecorder
from wedsync_realtime.wedding.router import EventRouter, Publisher, RouteReport
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import (
    SqliteCoreFieldStore,
    SqliteFormStore,
    SqliteJourneyStore,
    SqliteLastSeenStore,
    SqliteNotificationStore,
)

__all__ = [
    "IN_MEMORY",
    "WeddingRuntime",
    "open_embedded_database",
    "open_embedded_directory",
    "runtime_for",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: The `data_dir` value that keeps the store in memory.
IN_MEMORY = ":memory:"


def open_embedded_database(settings: Settings) -> SqliteDatabase:
    """The embedded store of `settings` (created, schema applied; demo loaded when asked)."""
    path: str | Path = (
        IN_MEMORY if str(settings.data_dir) == IN_MEMORY else database_path(settings.data_dir)
    )
    database = SqliteDatabase.open(path)
    if settings.demo:
        load_demo(database)
    return database


def open_embedded_directory(settings: Settings) -> SqliteDirectory:
    """`open_embedded_database`, as the directory the catalog policy reads."""
    return SqliteDirectory(open_embedded_database(settings))


class WeddingRuntime:
    """The domain services on one SQLite store, and the router their events go through."""

    def __init__(
        self,
        directory: SqliteDirectory,
        publisher: Publisher,
        *,
        clock: Clock = utc_now,
        last_seen_retention_days: float = 7.0,
    ) -> None:
        self.directory = directory
        self.database = directory.database
        self.router = EventRouter(publisher)
        core_store = SqliteCoreFieldStore(self.database)
        self.notifications = NotificationService(
            SqliteNotificationStore(self.database), clock=clock
        )
        self.core_fields = CoreFieldsService(
            core_store, core_store, directory, self.notifications, clock=clock
        )
        self.journeys = JourneyService(
            SqliteJourneyStore(self.database), directory, self.notifications, clock=clock
        )
        self.forms = FormService(
            SqliteFormStore(self.database), directory, self.notifications, clock=clock
        )
        self.last_seen = SqliteLastSeenStore(self.database)
        #: The node's presence listener (wired by `app.py`): last seen, kept 7 days.
        self.presence = LastSeenRecorder(self.last_seen, retention_days=last_seen_retention_days)
        #: Where change capture hands its transactions (PostgreSQL; see `change_feed`).
        self.changes = ChangeFeed(self.router, self.core_fields, self.forms)

    async def deliver(self, outcome: Outcome[T]) -> T:
        """Publish the outcome's events, then hand back its value.

        The write is stored before this runs; a channel that fails to publish is logged by
        the router and does not undo the write.
        """
        await self.route(outcome.events)
        return outcome.value

    async def route(self, events: tuple[DomainEvent, ...]) -> RouteReport:
        report = await self.router.route(events)
        if report.failed:
            log.error("%d of the write's messages were not published", len(report.failed))
        return report

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]:
        """The couples the supplier is actively connected to, in id order."""
        rows = self.database.query(
            "SELECT couple_id FROM connections WHERE supplier_id = ? AND status = 'active'"
            " ORDER BY couple_id",
            (supplier_id,),
        )
        return tuple(str(row[0]) for row in rows)

    def close(self) -> None:
        self.database.close()


def runtime_for(node: Node) -> WeddingRuntime | None:
    """The runtime over the store the node's catalog policy reads; None when the policy reads
    no SQLite store (PostgreSQL mode, or a node built with another directory)."""
    policy = node.policy
    if isinstance(policy, CatalogPolicy) and isinstance(policy.directory, SqliteDirectory):
        return WeddingRuntime(
            policy.directory,
            node,
            last_seen_retention_days=node.settings.last_seen_retention_days,
        )
    return None
