"""What a tuple means: remembers Relation and Type messages and turns row images into dicts.

pgoutput sends a Relation message (PostgreSQL documentation, "Logical Replication Message
Formats", §55.9 in PostgreSQL 16) before the first change to a table in a session and again
whenever its definition changes; Insert/Update/Delete then carry only the relation OID and values
in column order. `RelationCache` keeps the latest Relation per OID so a change can be read as
``{"column": value}``, and names each column's type the way the Postgres Changes payload does
(``pg_type.typname``: ``int8``, ``text``, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from wedsync_realtime.cdc.messages import (
    UNCHANGED_TOAST,
    ColumnValue,
    Delete,
    Insert,
    PgOutputMessage,
    Relation,
    TupleData,
    Type,
    Update,
)
from wedsync_realtime.cdc.wire import PgOutputError

__all__ = [
    "BUILTIN_TYPE_NAMES",
    "ChangeAction",
    "RelationCache",
    "RowChange",
    "UnknownRelationError",
]

#: OIDs of built-in types (``pg_type.dat``); pgoutput sends Type messages only for other types.
BUILTIN_TYPE_NAMES: Final[dict[int, str]] = {
    16: "bool",
    17: "bytea",
    18: "char",
    19: "name",
    20: "int8",
    21: "int2",
    23: "int4",
    25: "text",
    26: "oid",
    114: "json",
    700: "float4",
    701: "float8",
    1000: "_bool",
    1005: "_int2",
    1007: "_int4",
    1009: "_text",
    1016: "_int8",
    1042: "bpchar",
    1043: "varchar",
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
    1186: "interval",
    1266: "timetz",
    1700: "numeric",
    2950: "uuid",
    3802: "jsonb",
    3807: "_jsonb",
}

Row = dict[str, ColumnValue]


class UnknownRelationError(PgOutputError):
    """A change names a relation OID for which no Relation message has been seen."""


class ChangeAction(enum.StrEnum):
    """The ``type`` of a Postgres Changes payload."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class RowChange:
    """A decoded row change, named as in the Postgres Changes payload (``record``/``old_record``).

    ``record`` is the new row (INSERT, UPDATE). ``old_record`` is what the replica identity
    provides (UPDATE, DELETE): with the default identity only the key columns (others absent);
    with FULL the whole old row; ``None`` when the server sent no old tuple.
    """

    action: ChangeAction
    relation: Relation
    record: Row | None
    old_record: Row | None


class RelationCache:
    """The Relation and Type messages of one replication session, latest per OID."""

    __slots__ = ("_relations", "_types")

    def __init__(self) -> None:
        self._relations: dict[int, Relation] = {}
        self._types: dict[int, Type] = {}

    def observe(self, message: PgOutputMessage) -> None:
        """Remember a Relation or Type message; ignore every other message."""
        if isinstance(message, Relation):
            self._relations[message.oid] = message
        elif isinstance(message, Type):
            self._types[message.oid] = message

    def __contains__(self, oid: object) -> bool:
        return oid in self._relations

    def __len__(self) -> int:
        return len(self._relations)

    def get(self, oid: int) -> Relation:
        """The latest Relation for ``oid``; `UnknownRelationError` if none was seen."""
        try:
            return self._relations[oid]
        except KeyError:
            raise UnknownRelationError(
                f"change for unknown relation OID {oid}: no Relation message was seen for it "
                "(the server sends one before the first change of a relation in each session)"
            ) from None

    def type_name(self, type_oid: int) -> str:
        """``typname`` of a column type: built-in, from a Type message, else the OID as text."""
        if type_oid in BUILTIN_TYPE_NAMES:
            return BUILTIN_TYPE_NAMES[type_oid]
        known = self._types.get(type_oid)
        return known.name if known is not None else str(type_oid)

    def column_types(self, relation_oid: int) -> dict[str, str]:
        """Column name → type name, in column order (the ``columns`` of the change payload)."""
        relation = self.get(relation_oid)
        return {column.name: self.type_name(column.type_oid) for column in relation.columns}

    def row(self, relation_oid: int, data: TupleData) -> Row:
        """A row image as column name → value, checking it has one value per column."""
        relation = self.get(relation_oid)
        if len(data.values) != len(relation.columns):
            raise PgOutputError(
                f"tuple has {len(data.values)} columns but relation "
                f"{relation.namespace}.{relation.name} (OID {relation_oid}) has "
                f"{len(relation.columns)}"
            )
        return {
            column.name: value for column, value in zip(relation.columns, data.values, strict=True)
        }

    def change(self, message: Insert | Update | Delete) -> RowChange:
        """Read an Insert, Update or Delete as a `RowChange` of dicts.

        An UPDATE's unchanged TOASTed values (`UNCHANGED_TOAST`) are filled from the old tuple
        when it has them (REPLICA IDENTITY FULL), as Supabase Realtime does; otherwise they stay
        `UNCHANGED_TOAST`.
        """
        relation = self.get(message.relation_oid)
        if isinstance(message, Insert):
            return RowChange(
                ChangeAction.INSERT, relation, self.row(relation.oid, message.new), None
            )
        if isinstance(message, Delete):
            old = self._old_row(relation, message.old, key_only=message.old_kind == "K")
            return RowChange(ChangeAction.DELETE, relation, None, old)
        record = self.row(relation.oid, message.new)
        old_record = None
        if message.old is not None:
            old_record = self._old_row(relation, message.old, key_only=message.old_kind == "K")
            for name, value in record.items():
                if value is UNCHANGED_TOAST and name in old_record:
                    previous = old_record[name]
                    if previous is not UNCHANGED_TOAST:
                        record[name] = previous
        return RowChange(ChangeAction.UPDATE, relation, record, old_record)

    def _old_row(self, relation: Relation, data: TupleData, *, key_only: bool) -> Row:
        row = self.row(relation.oid, data)
        if key_only:  # a 'K' tuple sends NULL for every non-key column: those are unknown, not NULL
            keys = {column.name for column in relation.columns if column.is_key}
            row = {name: value for name, value in row.items() if name in keys}
        return row
