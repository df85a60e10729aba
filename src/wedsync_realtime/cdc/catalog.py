"""What the database says about the published tables, for checking ``postgres_changes`` bindings.

Supabase checks a binding when it inserts ``realtime.subscription`` rows: one per publication
table matching ``schema``/``table`` (``*`` a wildcard), none meaning "Unable to subscribe to
changes with given parameters..."; the ``realtime.subscription_check_filters`` trigger checks
the filter's columns and values. Here the same facts are read from the catalog (publication
tables, columns and types, primary key, replica identity, RLS) and cached briefly; the role's
``SELECT`` privilege is asked per join, since grants differ per role and may change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg

__all__ = ["Catalog", "TableInfo"]


@dataclass(frozen=True, slots=True)
class TableInfo:
    """One published table.

    ``identity_columns`` are the columns an UPDATE's or DELETE's old image carries: all of them
    under ``REPLICA IDENTITY FULL``, the primary key by default, an index's columns with
    ``USING INDEX``, none with ``NOTHING``.
    """

    oid: int
    schema: str
    table: str
    column_types: dict[str, str]
    primary_key: tuple[str, ...]
    identity_columns: frozenset[str]
    replica_identity_full: bool
    rls_enabled: bool


_TABLES_SQL: Final = """
SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relreplident::text, c.relrowsecurity,
       array_agg(a.attname::text ORDER BY a.attnum),
       array_agg(t.typname::text ORDER BY a.attnum),
       array_agg(coalesce(a.attnum = ANY (pk.conkey), false) ORDER BY a.attnum),
       array_agg(coalesce(a.attnum = ANY (ri.indkey::int2[]), false) ORDER BY a.attnum)
FROM pg_catalog.pg_publication_tables pt
JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
LEFT JOIN pg_catalog.pg_index ri ON ri.indrelid = c.oid AND ri.indisreplident
WHERE pt.pubname = %s
GROUP BY c.oid, n.nspname, c.relname, c.relreplident, c.relrowsecurity
"""

# Tables (of those given) whose every primary-key column the role may SELECT; a role that does
# not exist, or a superuser role (never taken from a token), yields none.
_READABLE_SQL: Final = """
SELECT t.oid::int8
FROM pg_catalog.pg_roles r, unnest(%s::oid[]) AS t(oid)
WHERE r.rolname = %s AND NOT r.rolsuper
  AND pg_catalog.has_any_column_privilege(r.oid, t.oid, 'SELECT')
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_constraint k, unnest(k.conkey) AS key(attnum)
      WHERE k.conrelid = t.oid AND k.contype = 'p'
        AND NOT pg_catalog.has_column_privilege(r.oid, t.oid, key.attnum, 'SELECT'))
"""


class Catalog:
    """The published tables of one publication, cached for ``ttl_s`` seconds."""

    def __init__(self, publication: str, ttl_s: float = 5.0) -> None:
        self.publication = publication
        self._ttl_s = ttl_s
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._loaded_at = float("-inf")

    async def tables(
        self, conn: psycopg.AsyncConnection[Any], *, fresh: bool = False
    ) -> dict[tuple[str, str], TableInfo]:
        """(schema, table) → `TableInfo` for every table of the publication."""
        if fresh or time.monotonic() - self._loaded_at > self._ttl_s:
            cursor = await conn.execute(_TABLES_SQL, (self.publication,))
            tables: dict[tuple[str, str], TableInfo] = {}
            rows = await cursor.fetchall()
            for oid, schema, table, ident, rls, names, types, is_pk, is_ri in rows:
                full = ident == "f"
                primary_key = tuple(n for n, pk in zip(names, is_pk, strict=True) if pk)
                if full:
                    identity = frozenset(names)
                elif ident == "d":
                    identity = frozenset(primary_key)
                elif ident == "i":
                    identity = frozenset(n for n, ri in zip(names, is_ri, strict=True) if ri)
                else:
                    identity = frozenset()
                tables[(schema, table)] = TableInfo(
                    oid=oid,
                    schema=schema,
                    table=table,
                    column_types=dict(zip(names, types, strict=True)),
                    primary_key=primary_key,
                    identity_columns=identity,
                    replica_identity_full=full,
                    rls_enabled=bool(rls),
                )
            self._tables = tables
            self._loaded_at = time.monotonic()
        return self._tables

    @staticmethod
    async def readable(conn: psycopg.AsyncConnection[Any], role: str, oids: list[int]) -> set[int]:
        """The tables among ``oids`` whose primary key ``role`` may select."""
        if not oids:
            return set()
        cursor = await conn.execute(_READABLE_SQL, (oids, role))
        return {row[0] for row in await cursor.fetchall()}
