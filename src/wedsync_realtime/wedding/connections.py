"""Supplier-couple connections: who may change one, and what a change does to joined members.

SPEC.md "Security and privacy" and issue 5: "A supplier never receives anything about a couple
it is not connected to." The catalog's rules (`wedding.policy`) read the connection at every
join; this service is the embedded default's way to change it at run time, so that the rule
also holds for members who joined while the connection was active.

**Who may set a status** (`ConnectionService.set_status`):

* the service role and admins: any status;
* users of the couple: any status. A connection starts from the couple's side (the couple
  invites a supplier, or accepts one), so only they (or operators) make it ``active``, the
  first time and after a pause or an end;
* users of the supplier: ``paused`` or ``ended`` only: a supplier may step back from a
  couple, never put itself back into a couple's wedding;
* anyone else: refused (`NotPermitted`). An unknown supplier or couple is `NotFound`, and so is
  pausing or ending a pair that was never connected.

**What a change does.** When the pair is not active after the write, the channels joined on
this node that may depend on it are authorized again at once (`Reauthorize`, the node's
`reauthorize`, with `concerned_channels`): the supplier loses ``core_fields:{C}``, the couple's
``wedding:{W}``, ``collaboration:{S}:{C}``, ``journey:{J}:{C}``...; the couple's users lose
the collaboration channel and the supplier's forms; each closed channel gets a ``system``
error and ``phx_close`` and an audit line. Their own channels (``supplier:{S}:clients``,
``couple:{C}``) stay. A change of status returns one ``connection_updated`` event {supplier_id,
couple_id, status, previous_status, updated_by, timestamp} on ``supplier:{S}:clients`` and
``couple:{C}``, so both dashboards update; setting the status it already has returns none.

In production mode the platform writes ``supplier_client_connections`` and change capture
re-checks the same way (`wedding.captured`); this service runs on the embedded store only.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.audience import Audience
from wedsync_realtime.wedding.channels import ChannelKind, names_any_of
from wedsync_realtime.wedding.directory import UserProfile, UserType
from wedsync_realtime.wedding.errors import Invalid, NotFound, NotPermitted
from wedsync_realtime.wedding.events import (
    Clock,
    DomainEvent,
    Outcome,
    Payload,
    Reauthorize,
    channel_name,
    iso_timestamp,
    utc_now,
)

__all__ = [
    "CONNECTION_UPDATED",
    "Connection",
    "ConnectionService",
    "ConnectionStatus",
    "ConnectionStore",
    "Editor",
    "SqliteConnectionStore",
    "concerned_channels",
]

log = logging.getLogger(__name__)

#: The event a change of status is announced with.
CONNECTION_UPDATED = "connection_updated"

#: Channels whose rules may read any supplier-couple connection although their names carry
#: neither id: a form's couples and a journey's sides are looked up by form or journey id.
_ANY_CONNECTION_PREFIXES = ("form:", "journey:progress:")


class ConnectionStatus(enum.StrEnum):
    """``connections.status`` (``pending`` is the schema's, never set through this API)."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Connection:
    """A supplier-couple pair and its status."""

    supplier_id: str
    couple_id: str
    status: ConnectionStatus
    #: When the status was last set through this service (else when the pair was created).
    updated_at: str
    updated_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status is ConnectionStatus.ACTIVE

    def to_json(self) -> Payload:
        return {
            "supplier_id": self.supplier_id,
            "couple_id": self.couple_id,
            "status": self.status.value,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class Editor:
    """Who asks: a WedSync user (their profile), or the service role (our own back end)."""

    #: What `updated_by` records: the user id, or the service role's subject or role.
    name: str
    profile: UserProfile | None = None
    service: bool = False

    def __post_init__(self) -> None:
        if self.profile is None and not self.service:
            raise ValueError("an editor is a user with a profile, or the service role")

    @classmethod
    def user(cls, profile: UserProfile) -> Editor:
        return cls(profile.user_id, profile)

    @classmethod
    def service_role(cls, name: str) -> Editor:
        return cls(name, None, service=True)

    @property
    def operator(self) -> bool:
        """The service role or an admin: may do anything here."""
        return self.service or (
            self.profile is not None and self.profile.user_type is UserType.ADMIN
        )

    @property
    def supplier_id(self) -> str | None:
        return self.profile.acting_supplier_id if self.profile is not None else None

    @property
    def couple_id(self) -> str | None:
        return self.profile.acting_couple_id if self.profile is not None else None


class ConnectionStore(Protocol):
    """Where the pairs live (the embedded default: `SqliteConnectionStore`)."""

    async def connection(self, supplier_id: str, couple_id: str) -> Connection | None: ...

    async def connections(
        self, *, supplier_id: str | None = None, couple_id: str | None = None
    ) -> list[Connection]:
        """The pairs of the supplier and/or the couple (at least one given), every status,
        in (supplier_id, couple_id) order."""
        ...

    async def write_status(
        self,
        supplier_id: str,
        couple_id: str,
        status: ConnectionStatus,
        *,
        updated_by: str,
        at: str,
    ) -> tuple[Connection, ConnectionStatus | None]:
        """Set the status atomically (creating the pair); return the pair as it is now and
        the status before (None: there was no pair). Setting the status it already has
        writes nothing."""
        ...


def concerned_channels(
    supplier_id: str, couple_id: str, weddings: Iterable[str]
) -> Callable[[str], bool]:
    """Which joined channels a change of the pair's connection may concern: a name with the
    supplier's or the couple's id as a segment (``core_fields:{C}``, ``collaboration:{S}:{C}``,
    ``journey:{J}:{C}``, their own channels), the couple's weddings, and every form and
    journey-progress channel (their rules find the pair through the form or journey)."""
    ids = {supplier_id, couple_id}
    wedding_channels = {channel_name(ChannelKind.WEDDING, w) for w in weddings}

    def concerned(channel: str) -> bool:
        if channel in wedding_channels or channel.startswith(_ANY_CONNECTION_PREFIXES):
            return True
        return names_any_of(channel, ids)

    return concerned


class ConnectionService:
    """Reads and changes supplier-couple connections; re-checks joined members on a change."""

    def __init__(
        self,
        store: ConnectionStore,
        audience: Audience,
        *,
        clock: Clock = utc_now,
        reauthorize: Reauthorize | None = None,
    ) -> None:
        self._store = store
        self._audience = audience
        self._clock = clock
        #: The node's `reauthorize` (None: nothing joined to re-check, as in unit tests).
        self.reauthorize = reauthorize

    async def list(
        self, editor: Editor, *, supplier_id: str | None = None, couple_id: str | None = None
    ) -> list[Connection]:
        """The editor's own pairs: a supplier's users see the supplier's, a couple's users the
        couple's (the other id filters); operators name a supplier or a couple."""
        own_supplier, own_couple = editor.supplier_id, editor.couple_id
        if editor.operator:
            if supplier_id is None and couple_id is None:
                raise Invalid("name a supplier_id or a couple_id", field="supplier_id")
        elif own_supplier is not None:
            if supplier_id is not None and supplier_id != own_supplier:
                raise NotPermitted(
                    f"a supplier's users list only the connections of {own_supplier}",
                    field="supplier_id",
                )
            supplier_id = own_supplier
        elif own_couple is not None:
            if couple_id is not None and couple_id != own_couple:
                raise NotPermitted(
                    f"a couple's users list only the connections of {own_couple}",
                    field="couple_id",
                )
            couple_id = own_couple
        else:  # pragma: no cover - every profile is a supplier, a couple or an admin
            raise NotPermitted("only suppliers, couples and operators have connections")
        return await self._store.connections(supplier_id=supplier_id, couple_id=couple_id)

    async def set_status(
        self, supplier_id: str, couple_id: str, status: ConnectionStatus, editor: Editor
    ) -> Outcome[Connection]:
        """Set the pair's status (see the module's rules). When the pair is not active
        afterwards, the joined channels that may depend on it are re-checked before this
        returns; the outcome's event announces a change of status."""
        if status is ConnectionStatus.PENDING:
            raise Invalid("status must be active, paused or ended", field="status")
        if await self._audience.supplier_name(supplier_id) is None:
            raise NotFound(f"no supplier {supplier_id!r}", field="supplier_id")
        if await self._audience.couple_name(couple_id) is None:
            raise NotFound(f"no couple {couple_id!r}", field="couple_id")
        self._check_permitted(editor, supplier_id, couple_id, status)
        # Only an activation creates a pair: pausing or ending one that never was is not.
        creates = status is ConnectionStatus.ACTIVE
        if not creates and await self._store.connection(supplier_id, couple_id) is None:
            raise NotFound(
                f"{supplier_id!r} and {couple_id!r} have never been connected", field="couple_id"
            )
        at = iso_timestamp(self._clock())
        connection, previous = await self._store.write_status(
            supplier_id, couple_id, status, updated_by=editor.name, at=at
        )
        if not connection.active:
            await self._revoke(connection)
        if previous is connection.status:
            return Outcome(connection)
        payload: Payload = {
            "supplier_id": supplier_id,
            "couple_id": couple_id,
            "status": connection.status.value,
            "previous_status": None if previous is None else previous.value,
            "updated_by": editor.name,
            "timestamp": at,
        }
        channels = (
            channel_name(ChannelKind.SUPPLIER_CLIENTS, supplier_id),
            channel_name(ChannelKind.COUPLE, couple_id),
        )
        return Outcome(connection, (DomainEvent(CONNECTION_UPDATED, channels, payload),))

    def _check_permitted(
        self, editor: Editor, supplier_id: str, couple_id: str, status: ConnectionStatus
    ) -> None:
        if editor.operator or editor.couple_id == couple_id:
            return
        if editor.supplier_id == supplier_id:
            if status is ConnectionStatus.ACTIVE:
                raise NotPermitted(
                    f"only users of couple {couple_id} activate its connection with a supplier"
                    " (it starts from the couple's invitation); a supplier may pause or end it",
                    field="status",
                )
            return
        raise NotPermitted(
            f"only users of {supplier_id} or of {couple_id} may change their connection"
        )

    async def _revoke(self, connection: Connection) -> None:
        """Close the joined channels the pair's rights no longer allow (this node)."""
        if self.reauthorize is None:
            return
        weddings = await self._audience.couple_weddings(connection.couple_id)
        concerned = concerned_channels(connection.supplier_id, connection.couple_id, weddings)
        closed = await self.reauthorize(concerned)
        if closed:
            log.info(
                "connection %s-%s %s: %d joined channel(s) closed",
                connection.supplier_id,
                connection.couple_id,
                connection.status.value,
                closed,
            )


# -- the embedded default ---------------------------------------------------------------------

_SELECT = (
    "SELECT c.supplier_id, c.couple_id, c.status,"
    " COALESCE(u.updated_at, c.created_at) AS updated_at, u.updated_by"
    " FROM connections c LEFT JOIN connection_updates u"
    " ON u.supplier_id = c.supplier_id AND u.couple_id = c.couple_id"
)


class SqliteConnectionStore:
    """`ConnectionStore` on the embedded store's ``connections`` table (the one the catalog's
    rules read through `SqliteDirectory.is_connected`)."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def connection(self, supplier_id: str, couple_id: str) -> Connection | None:
        row = self._db.query_one(
            _SELECT + " WHERE c.supplier_id = ? AND c.couple_id = ?", (supplier_id, couple_id)
        )
        return None if row is None else _connection(row)

    async def connections(
        self, *, supplier_id: str | None = None, couple_id: str | None = None
    ) -> list[Connection]:
        if supplier_id is None and couple_id is None:
            raise ValueError("name a supplier or a couple")
        rows = self._db.query(
            _SELECT
            + " WHERE (?1 IS NULL OR c.supplier_id = ?1) AND (?2 IS NULL OR c.couple_id = ?2)"
            " ORDER BY c.supplier_id, c.couple_id",
            (supplier_id, couple_id),
        )
        return [_connection(r) for r in rows]

    async def write_status(
        self,
        supplier_id: str,
        couple_id: str,
        status: ConnectionStatus,
        *,
        updated_by: str,
        at: str,
    ) -> tuple[Connection, ConnectionStatus | None]:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT status FROM connections WHERE supplier_id = ? AND couple_id = ?",
                (supplier_id, couple_id),
            ).fetchone()
            previous = None if row is None else ConnectionStatus(row["status"])
            if previous is not status:
                conn.execute(
                    "INSERT INTO connections (supplier_id, couple_id, status, created_at)"
                    " VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (supplier_id, couple_id) DO UPDATE SET status = excluded.status",
                    (supplier_id, couple_id, status.value, at),
                )
                conn.execute(
                    "INSERT INTO connection_updates"
                    " (supplier_id, couple_id, updated_by, updated_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (supplier_id, couple_id) DO UPDATE SET"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (supplier_id, couple_id, updated_by, at),
                )
            now = conn.execute(
                _SELECT + " WHERE c.supplier_id = ? AND c.couple_id = ?", (supplier_id, couple_id)
            ).fetchone()
        return _connection(now), previous


def _connection(row: sqlite3.Row) -> Connection:
    return Connection(
        supplier_id=str(row["supplier_id"]),
        couple_id=str(row["couple_id"]),
        status=ConnectionStatus(row["status"]),
        updated_at=str(row["updated_at"]),
        updated_by=row["updated_by"],
    )
