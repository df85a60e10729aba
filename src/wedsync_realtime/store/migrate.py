"""A small versioned migration runner for PostgreSQL.

The SQL files ship as package data in ``store/migrations/`` and are named ``NNNN_name.sql``. Each
is applied once, in version order, inside its own transaction together with its row in
``realtime.schema_migrations``: a failing file leaves nothing behind, and a second run applies
nothing. A session advisory lock serialises concurrent runners against the same database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

__all__ = ["Migration", "MigrationError", "load_migrations", "migrate"]

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

#: Any fixed 64-bit key; it only has to be the same for every runner.
_LOCK_KEY = 0x7765_6473_796E_63  # "wedsync"

_BOOKKEEPING = b"""
CREATE SCHEMA IF NOT EXISTS realtime;
CREATE TABLE IF NOT EXISTS realtime.schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(Exception):
    """A migration file is misnamed, duplicated, or failed to apply (the message says which)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: ``version`` is its four-digit prefix, ``name`` the rest of the stem."""

    version: str
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def load_migrations() -> list[Migration]:
    """Every packaged migration, in version order; misnamed or duplicated versions raise."""
    folder = resources.files("wedsync_realtime.store").joinpath("migrations")
    found: dict[str, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = match["version"]
        if version in found:
            raise MigrationError(f"two migrations share version {version}")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def migrate(database_url: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded; return the labels applied (empty when up to date)."""
    pending_all = load_migrations() if migrations is None else migrations
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            with conn.transaction():
                conn.execute(_BOOKKEEPING)
            rows = conn.execute("SELECT version FROM realtime.schema_migrations").fetchall()
            done = {str(row[0]) for row in rows}
            for migration in pending_all:
                if migration.version in done:
                    continue
                try:
                    with conn.transaction():
                        # No parameters: psycopg sends the file as one simple query, so a file may
                        # hold many statements and `$$` bodies.
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO realtime.schema_migrations (version) VALUES (%s)",
                            (migration.version,),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.label} failed: {exc}") from exc
                applied.append(migration.label)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
