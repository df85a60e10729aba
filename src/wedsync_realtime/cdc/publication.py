"""Which tables Postgres Changes is enabled for: the tables of the publication capture streams.

Supabase enables a table for Postgres Changes by adding it to the ``supabase_realtime``
publication (``ALTER PUBLICATION supabase_realtime ADD TABLE ...``, what the dashboard's
"Enable Realtime" toggle runs); a binding on a table outside it is refused with "Unable to
subscribe to changes with given parameters. Please check Realtime is enabled ...". Here the
migrations create ``wedsync_realtime`` with every WedSync table; `CaptureConfig.tables` (the
``WEDSYNC_CDC_TABLES`` setting) replaces that list at start-up: `ensure_publication` makes the
publication hold exactly the given tables, creating it if it is missing, and refuses a name that
is not a table with `PublicationError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

__all__ = ["PublicationError", "TableName", "ensure_publication", "qualified"]

#: (schema, table), as the catalog spells them.
TableName = tuple[str, str]

# Each wanted name with its relkind (NULL when there is no such relation).
_RELATIONS_SQL: Final = """
SELECT w.schema, w.name, c.relkind::text
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS w(schema, name, position)
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
ORDER BY w.position
"""

_RELKINDS: Final = {
    "v": "a view",
    "m": "a materialized view",
    "f": "a foreign table",
    "i": "an index",
    "I": "an index",
    "S": "a sequence",
    "c": "a composite type",
    "t": "a TOAST table",
}


class PublicationError(ValueError):
    """The enabled tables cannot be published (no such table, not a table, no privilege)."""


def qualified(table: TableName) -> str:
    """``schema.table``, for messages."""
    return f"{table[0]}.{table[1]}"


async def ensure_publication(
    conn: psycopg.AsyncConnection[Any], publication: str, tables: Sequence[TableName]
) -> bool:
    """Make ``publication`` publish exactly ``tables`` (its ``publish`` actions are kept).

    Creates the publication when it is missing; leaves it alone when it already holds exactly
    these tables. Returns whether anything changed. ``conn`` must be in autocommit mode; the
    check and the change run in one transaction.

    Raises:
        PublicationError: a name that is not an existing table (the message names it), or a
            role that may not create or alter the publication.
        psycopg.OperationalError: PostgreSQL is unreachable.
    """
    if not tables:
        raise ValueError("ensure_publication needs at least one table")
    wanted = list(dict.fromkeys(tables))
    try:
        async with conn.transaction():
            cursor = await conn.execute(
                _RELATIONS_SQL, ([s for s, _ in wanted], [t for _, t in wanted])
            )
            for schema, name, relkind in await cursor.fetchall():
                where = qualified((schema, name))
                if relkind is None:
                    raise PublicationError(
                        f"cannot enable Postgres Changes for table {where}: it does not exist"
                    )
                if relkind not in ("r", "p"):
                    kind = _RELKINDS.get(relkind, f"a relation of kind {relkind!r}")
                    raise PublicationError(
                        f"cannot enable Postgres Changes for {where}: it is {kind}, not a table"
                    )
            cursor = await conn.execute(
                "SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = %s",
                (publication,),
            )
            row = await cursor.fetchone()
            names = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in wanted)
            if row is None:
                await conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                        sql.Identifier(publication), names
                    )
                )
                return True
            if row[0]:
                raise PublicationError(
                    f"publication {publication!r} is FOR ALL TABLES: it cannot be limited to "
                    "the enabled tables; use another publication name"
                )
            cursor = await conn.execute(
                "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables"
                " WHERE pubname = %s",
                (publication,),
            )
            current = {(s, t) for s, t in await cursor.fetchall()}
            if current == set(wanted):
                return False
            await conn.execute(
                sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(
                    sql.Identifier(publication), names
                )
            )
            return True
    except psycopg.OperationalError:
        raise
    except psycopg.DatabaseError as exc:
        raise PublicationError(
            f"cannot make publication {publication!r} hold the enabled tables "
            f"{', '.join(qualified(t) for t in wanted)}: {exc}"
        ) from exc
