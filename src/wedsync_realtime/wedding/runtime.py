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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from wedsync_realtime.engine.node import Node
from wedsync_realtime.settings import Settings
from wedsync_realtime.store.sqlite import SqliteDatabase, database_path
from wedsync_realtime.wedding.audience import Audience
from wedsync_realtime.wedding.change_feed import ChangeFeed
from wedsync_realtime.wedding.connections import (
    ConnectionService,
    ConnectionStore,
    SqliteConnectionStore,
)
from wedsync_realtime.wedding.core_fields import (
    CoreFieldsService,
    CoreFieldStore,
    VenueDirectory,
)
from wedsync_realtime.wedding.demo import load_demo
from wedsync_realtime.wedding.events import Clock, DomainEvent, Outcome, Reauthorize, utc_now
from wedsync_realtime.wedding.forms import FormService, FormStore
from wedsync_realtime.wedding.journeys import JourneyService, JourneyStore
from wedsync_realtime.wedding.notifications import NotificationService, NotificationStore
from wedsync_realtime.wedding.policy import CatalogPolicy
from wedsync_realtime.wedding.postgres_stores import (
    PostgresCoreFieldStore,
    PostgresDirectory,
    PostgresFormStore,
    PostgresJourneyStore,
    PostgresLastSeenStore,
    PostgresNotificationStore,
)
from wedsync_realtime.wedding.presence import LastSeenRecorder, LastSeenStore
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
    "DomainDirectory",
    "WeddingRuntime",
    "WeddingStores",
    "open_embedded_database",
    "open_embedded_directory",
    "postgres_stores",
    "runtime_for",
    "sqlite_stores",
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


class DomainDirectory(Audience, VenueDirectory, Protocol):
    """What the runtime reads facts from: the rules' facts, names, venues, and a supplier's
    couples (the REST API's "your channels")."""

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]:
        """The couples the supplier is actively connected to, in id order."""
        ...


@dataclass(frozen=True, slots=True)
class WeddingStores:
    """One backend's stores for the domain services.

    `journeys` is None where the backend keeps no journeys (the journey endpoints then answer
    503). `writes` says whether the REST write API of core fields, forms and journeys serves
    requests: on PostgreSQL the platform writes those tables and change capture announces the
    changes, so a second writer through this server would announce them twice (notifications
    included).
    """

    directory: DomainDirectory
    core_fields: CoreFieldStore
    forms: FormStore
    notifications: NotificationStore
    last_seen: LastSeenStore
    journeys: JourneyStore | None
    writes: bool
    open: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    #: Supplier-couple connections, where this server writes them (the embedded default; on
    #: PostgreSQL the platform does, and change capture re-checks joined members).
    connections: ConnectionStore | None = None


def sqlite_stores(directory: SqliteDirectory) -> WeddingStores:
    """The embedded default's stores, on the directory's SQLite database."""
    database = directory.database
    core_store = SqliteCoreFieldStore(database)

    async def open_() -> None:
        return None  # opened (schema applied) by `open_embedded_database`

    async def close() -> None:
        database.close()

    return WeddingStores(
        directory=directory,
        core_fields=core_store,
        forms=SqliteFormStore(database),
        notifications=SqliteNotificationStore(database),
        last_seen=SqliteLastSeenStore(database),
        journeys=SqliteJourneyStore(database),
        writes=True,
        open=open_,
        close=close,
        connections=SqliteConnectionStore(database),
    )


def postgres_stores(directory: PostgresDirectory) -> WeddingStores:
    """Production mode's stores, on the directory's connection pool (opened with the app)."""
    pool = directory.pool

    async def open_() -> None:
        await pool.open(wait=False)

    async def close() -> None:
        await pool.close()

    return WeddingStores(
        directory=directory,
        core_fields=PostgresCoreFieldStore(pool),
        forms=PostgresFormStore(pool),
        notifications=PostgresNotificationStore(pool),
        last_seen=PostgresLastSeenStore(pool),
        journeys=PostgresJourneyStore(pool),
        writes=False,
        open=open_,
        close=close,
    )


class WeddingRuntime:
    """The domain services on one backend's stores, and the router their events go through."""

    def __init__(
        self,
        stores: WeddingStores,
        publisher: Publisher,
        *,
        clock: Clock = utc_now,
        last_seen_retention_days: float = 7.0,
        reauthorize: Reauthorize | None = None,
    ) -> None:
        self.stores = stores
        self.directory = stores.directory
        self.writes = stores.writes
        self.router = EventRouter(publisher)
        self.notifications = NotificationService(stores.notifications, clock=clock)
        self.core_fields = CoreFieldsService(
            stores.core_fields, stores.directory, stores.directory, self.notifications, clock=clock
        )
        self.journeys = (
            JourneyService(stores.journeys, stores.directory, self.notifications, clock=clock)
            if stores.journeys is not None
            else None
        )
        self.forms = FormService(stores.forms, stores.directory, self.notifications, clock=clock)
        #: Supplier-couple connections (None in production mode). `reauthorize` is the node's:
        #: a connection that stops being active closes the joined channels it allowed.
        self.connections = (
            ConnectionService(
                stores.connections, stores.directory, clock=clock, reauthorize=reauthorize
            )
            if stores.connections is not None
            else None
        )
        #: The node's presence listener (wired by `app.py`): last seen, kept 7 days.
        self.presence = LastSeenRecorder(stores.last_seen, retention_days=last_seen_retention_days)
        #: Where change capture hands its transactions (PostgreSQL; see `change_feed`).
        self.changes = ChangeFeed(self.router, self.core_fields, self.forms, journeys=self.journeys)

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

    async def open(self) -> None:
        await self.stores.open()

    async def close(self) -> None:
        await self.stores.close()


def runtime_for(node: Node) -> WeddingRuntime | None:
    """The runtime over the store the node's catalog policy reads (SQLite on the embedded
    default, PostgreSQL in production mode); None for a node built with another directory."""
    policy = node.policy
    if not isinstance(policy, CatalogPolicy):
        return None
    stores: WeddingStores | None = None
    if isinstance(policy.directory, SqliteDirectory):
        stores = sqlite_stores(policy.directory)
    elif isinstance(policy.directory, PostgresDirectory):
        stores = postgres_stores(policy.directory)
    if stores is None:
        return None
    return WeddingRuntime(
        stores,
        node,
        last_seen_retention_days=node.settings.last_seen_retention_days,
        reauthorize=node.reauthorize,
    )
