"""The durable logical replication slot that change capture reads from: create, inspect, drop.

Why durable: Supabase Realtime creates a *temporary* wal2json slot tied to its poller's session
(``replications.ex`` ``prepare_replication/2``), so changes committed while the server is down
are lost. WedSync needs every committed change after a restart, so the slot here is a regular
(persistent) ``pgoutput`` slot: PostgreSQL keeps the WAL from the slot's ``confirmed_flush_lsn``
onwards until the consumer acknowledges it (PostgreSQL documentation, "Logical Decoding
Concepts", §49.2.2 in PostgreSQL 15). The price is WAL retention while the server is down;
``max_slot_wal_keep_size`` bounds it (then ``wal_status`` becomes ``lost`` and the slot must be
dropped and recreated).

The functions use SQL on an ordinary connection (``pg_create_logical_replication_slot``,
``pg_replication_slots``, ``pg_drop_replication_slot``), not replication commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import psycopg

__all__ = [
    "SlotError",
    "SlotStatus",
    "create_slot",
    "drop_slot",
    "slot_status",
    "validate_slot_name",
]

#: PostgreSQL's rule for slot names (``ReplicationSlotValidateName``), at most NAMEDATALEN - 1.
_SLOT_NAME: Final = re.compile(r"^[a-z0-9_]{1,63}$")


class SlotError(Exception):
    """A slot that cannot be created or used (the message says why)."""


@dataclass(frozen=True, slots=True)
class SlotStatus:
    """One row of ``pg_replication_slots`` plus the lag behind the server's current WAL position.

    ``lag_bytes`` is ``pg_current_wal_lsn() - confirmed_flush_lsn``: WAL the slot still holds
    because change capture has not confirmed it (what a monitor should alert on).
    """

    slot_name: str
    plugin: str | None
    database: str | None
    temporary: bool
    active: bool
    active_pid: int | None
    confirmed_flush_lsn: str | None
    restart_lsn: str | None
    current_wal_lsn: str
    lag_bytes: int | None
    wal_status: str | None
    safe_wal_size: int | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for ``wedsync-realtime cdc status``."""
        return {
            "slot_name": self.slot_name,
            "plugin": self.plugin,
            "database": self.database,
            "temporary": self.temporary,
            "active": self.active,
            "active_pid": self.active_pid,
            "confirmed_flush_lsn": self.confirmed_flush_lsn,
            "restart_lsn": self.restart_lsn,
            "current_wal_lsn": self.current_wal_lsn,
            "lag_bytes": self.lag_bytes,
            "wal_status": self.wal_status,
            "safe_wal_size": self.safe_wal_size,
        }


def validate_slot_name(name: str) -> str:
    """Return ``name`` if PostgreSQL accepts it as a slot name, else raise `SlotError`."""
    if not _SLOT_NAME.match(name):
        raise SlotError(
            f"invalid replication slot name {name!r}: use 1 to 63 lower-case letters, digits "
            "and underscores"
        )
    return name


_STATUS_SQL: Final = """
SELECT s.slot_name::text, s.plugin::text, s.database::text, s.temporary, s.active, s.active_pid,
       s.confirmed_flush_lsn::text, s.restart_lsn::text, pg_current_wal_lsn()::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
       s.wal_status, s.safe_wal_size
FROM pg_replication_slots AS s
WHERE s.slot_name = %s
"""


async def slot_status(conn: psycopg.AsyncConnection[Any], name: str) -> SlotStatus | None:
    """The slot's status, or None when no slot of that name exists."""
    cursor = await conn.execute(_STATUS_SQL, (validate_slot_name(name),))
    row = await cursor.fetchone()
    if row is None:
        return None
    return SlotStatus(*row)


async def create_slot(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    """Create the persistent ``pgoutput`` slot unless it exists; True if it was created now.

    An existing slot of that name must be a logical ``pgoutput`` slot of this database, else
    `SlotError` (reusing another plugin's or database's slot would decode nonsense or nothing).
    A concurrent creator is tolerated: ``duplicate_object`` means someone else made it first.
    """
    validate_slot_name(name)
    existing = await _existing(conn, name)
    if existing is None:
        try:
            await conn.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'pgoutput', false)", (name,)
            )
            return True
        except psycopg.errors.DuplicateObject:
            existing = await _existing(conn, name)
            if existing is None:  # created and dropped meanwhile: let the caller retry
                raise SlotError(f"replication slot {name!r} vanished while being created") from None
    plugin, database, current = existing
    if plugin != "pgoutput" or database != current:
        raise SlotError(
            f"replication slot {name!r} exists but is a {plugin or 'physical'} slot of database "
            f"{database!r}, not a pgoutput slot of {current!r}: drop it "
            "(wedsync-realtime cdc drop-slot) or choose another slot name"
        )
    return False


async def _existing(
    conn: psycopg.AsyncConnection[Any], name: str
) -> tuple[str | None, str | None, str] | None:
    cursor = await conn.execute(
        "SELECT plugin::text, database::text, current_database()::text"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (name,),
    )
    row = await cursor.fetchone()
    return None if row is None else (row[0], row[1], row[2])


async def drop_slot(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    """Drop the slot; True if it existed. Fails (ObjectInUse) while a consumer streams from it."""
    validate_slot_name(name)
    cursor = await conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        (name,),
    )
    return len(await cursor.fetchall()) > 0
