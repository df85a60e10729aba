"""Committed row changes as change capture hands them on: typed, per transaction, in commit order.

These are the decoded form of pgoutput Begin / Relation / Insert / Update / Delete / Commit
(`cdc.pgoutput`, `cdc.relations`), shaped after the Postgres Changes payload (Supabase Realtime
``lib/realtime/adapters/changes.ex``): ``schema``, ``table``, ``type``, ``columns``, ``record``,
``old_record``, ``commit_timestamp``. Values are still the text pgoutput sent; turning them into
JSON values the way Supabase does (``to_jsonb`` of the typed value) happens in PostgreSQL, in the
same round trip as the row-level security check (`cdc.rls`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wedsync_realtime.cdc.messages import ColumnValue, ReplicaIdentity
from wedsync_realtime.cdc.relations import ChangeAction
from wedsync_realtime.timestamps import iso_millis as format_commit_timestamp

__all__ = [
    "CapturedChange",
    "ChangeAction",
    "ChangeColumn",
    "Transaction",
    "format_commit_timestamp",
]

Row = dict[str, ColumnValue]


@dataclass(frozen=True, slots=True)
class ChangeColumn:
    """A published column: its name, its type name (``pg_type.typname``) and the identity flag.

    ``is_identity`` is pgoutput's replica-identity flag: the primary key columns by default, and
    every column under ``REPLICA IDENTITY FULL``. The primary key itself comes from the catalog.
    """

    name: str
    type: str
    is_identity: bool


@dataclass(frozen=True, slots=True)
class CapturedChange:
    """One INSERT, UPDATE or DELETE of a committed transaction.

    ``record`` is the new row (INSERT, UPDATE); ``old_record`` what the replica identity gave
    (UPDATE with a key change or FULL identity, DELETE): key columns only by default, the whole
    old row with FULL. Values are pgoutput text, None for NULL, or the unchanged-TOAST marker.
    """

    relation_oid: int
    schema: str
    table: str
    type: ChangeAction
    columns: tuple[ChangeColumn, ...]
    record: Row | None
    old_record: Row | None
    replica_identity: ReplicaIdentity
    commit_timestamp: datetime
    commit_lsn: int

    @property
    def column_types(self) -> dict[str, str]:
        """Column name → type name, for `cdc.filters.matches`."""
        return {column.name: column.type for column in self.columns}

    @property
    def filter_image(self) -> Row:
        """The row a filter is evaluated on: the new row, or for DELETE the old one.

        As Supabase (``realtime.apply_rls``: ``is_visible_through_filters(columns, ...)``, and
        ``old_columns`` for DELETE since ``supabase/walrus`` PR #76).
        """
        image = self.old_record if self.type is ChangeAction.DELETE else self.record
        return image or {}


@dataclass(frozen=True, slots=True)
class Transaction:
    """A committed transaction: its changes to published tables, in order.

    ``end_lsn`` is what to acknowledge once the transaction has been handed on: the slot then
    never sends it again.
    """

    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    changes: tuple[CapturedChange, ...]
