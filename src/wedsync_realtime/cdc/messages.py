"""The values a pgoutput message decodes into: frozen dataclasses, one per message type.

Field names and meanings follow the PostgreSQL documentation, "Logical Replication Message
Formats" (§55.9 in PostgreSQL 16); `wedsync_realtime.cdc.pgoutput` decodes bytes into them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "UNCHANGED_TOAST",
    "Begin",
    "ColumnValue",
    "Commit",
    "Delete",
    "Insert",
    "Message",
    "OldTupleKind",
    "Origin",
    "PgOutputMessage",
    "Relation",
    "RelationColumn",
    "ReplicaIdentity",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TupleData",
    "Type",
    "UnchangedToast",
    "Update",
]


class UnchangedToast(enum.Enum):
    """Marker for TupleData kind ``u``: a TOASTed value the UPDATE did not change, so not sent."""

    UNCHANGED_TOAST = "u"

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = UnchangedToast.UNCHANGED_TOAST

#: One TupleData column: None (``n``), `UNCHANGED_TOAST` (``u``), str (``t``), bytes (``b``).
ColumnValue = str | bytes | UnchangedToast | None


class ReplicaIdentity(enum.StrEnum):
    """``pg_class.relreplident``: which old values UPDATE and DELETE carry."""

    DEFAULT = "d"  # the primary key
    NOTHING = "n"
    FULL = "f"  # the whole old row
    INDEX = "i"  # the columns of a chosen unique index


class OldTupleKind(enum.StrEnum):
    """The submessage byte before an old tuple of an UPDATE or DELETE."""

    KEY = "K"  # replica identity key columns only (others are NULL)
    OLD = "O"  # the whole old row (REPLICA IDENTITY FULL)


@dataclass(frozen=True, slots=True)
class TupleData:
    """A row image: one value per column of the relation, in the Relation message's order."""

    values: tuple[ColumnValue, ...]


@dataclass(frozen=True, slots=True)
class RelationColumn:
    """One column of a Relation message; flag bit 1 marks a replica identity key column."""

    flags: int
    name: str
    type_oid: int
    type_modifier: int

    @property
    def is_key(self) -> bool:
        """Whether the column is part of the replica identity key."""
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class Begin:
    """``B``: a transaction starts; ``final_lsn`` is the LSN of its commit record."""

    final_lsn: int
    commit_time: datetime
    commit_time_us: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """``C``: the transaction that the last Begin opened is committed."""

    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    commit_time_us: int


@dataclass(frozen=True, slots=True)
class Origin:
    """``O``: the transaction was replicated here from the named origin."""

    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Relation:
    """``R``: a table's shape; sent before the first change to it and again after it changes."""

    oid: int
    namespace: str  # "" means pg_catalog
    name: str
    replica_identity: ReplicaIdentity
    columns: tuple[RelationColumn, ...]
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Type:
    """``Y``: a non-built-in data type used by a column of a following Relation."""

    oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    """``I``: a new row."""

    relation_oid: int
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """``U``: a changed row; ``old`` is present only when the replica identity asks for it."""

    relation_oid: int
    new: TupleData
    old: TupleData | None = None
    old_kind: OldTupleKind | None = None
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """``D``: a removed row, known only by its key (``K``) or, with FULL identity, whole (``O``)."""

    relation_oid: int
    old: TupleData
    old_kind: OldTupleKind
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    """``T``: the listed relations were truncated (options: 1 = CASCADE, 2 = RESTART IDENTITY)."""

    relation_oids: tuple[int, ...]
    options: int
    xid: int | None = None

    @property
    def cascade(self) -> bool:
        """TRUNCATE ... CASCADE."""
        return bool(self.options & 1)

    @property
    def restart_identity(self) -> bool:
        """TRUNCATE ... RESTART IDENTITY."""
        return bool(self.options & 2)


@dataclass(frozen=True, slots=True)
class Message:
    """``M``: a ``pg_logical_emit_message`` payload; flag bit 1 means transactional."""

    flags: int
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None

    @property
    def transactional(self) -> bool:
        """Whether the message was emitted as part of a transaction."""
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class StreamStart:
    """``S`` (v2): the following messages, up to Stream Stop, belong to in-progress ``xid``."""

    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    """``E`` (v2): the current stream block ends."""


@dataclass(frozen=True, slots=True)
class StreamCommit:
    """``c`` (v2): the streamed transaction ``xid`` committed; apply what was buffered for it."""

    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    commit_time_us: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    """``A`` (v2): (sub)transaction ``subxid`` of ``xid`` aborted; drop what was buffered for it.

    ``abort_lsn`` and ``abort_time`` are sent only by protocol version 4 with parallel streaming.
    """

    xid: int
    subxid: int
    abort_lsn: int | None = None
    abort_time: datetime | None = None
    abort_time_us: int | None = None


PgOutputMessage = (
    Begin
    | Commit
    | Origin
    | Relation
    | Type
    | Insert
    | Update
    | Delete
    | Truncate
    | Message
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)
