"""Helpers for the change-capture tests: a migrated throw-away database, slots, writes with LSNs.

PostgreSQL is the machine's (127.0.0.1:5432, user postgres, trust). Down: the tests skip with a
message outside CI and fail when CI=true, as tests/integration/test_migrations.py does.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from wedsync_realtime.cdc.wire import parse_lsn
from wedsync_realtime.store.migrate import migrate

SERVER_URL = "postgresql://postgres@127.0.0.1:5432"


def admin_connection() -> psycopg.Connection[Any]:
    """An autocommit connection to the ``postgres`` database, or skip / fail (CI)."""
    try:
        return psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = (
            f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc}); "
            "run scripts/prepare_postgres.sh (make test does)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; in CI the postgres tests must run")
        pytest.skip(message)


@contextmanager
def migrated_database(prefix: str) -> Iterator[str]:
    """A fresh database with the migrations applied; its URL. Dropped (with its slots) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{SERVER_URL}/{name}"
    try:
        migrate(url)
        yield url
    finally:
        with admin_connection() as admin:
            # A slot pins WAL cluster-wide and blocks DROP DATABASE: drop this database's slots.
            for _ in range(50):
                try:
                    admin.execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                        " WHERE database = %s",
                        (name,),
                    )
                    break
                except psycopg.errors.ObjectInUse:
                    admin.execute(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                        " WHERE database = %s AND active_pid IS NOT NULL",
                        (name,),
                    )
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def unique_slot(prefix: str = "wedsync_test") -> str:
    """A slot name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def write(url: str, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
    """Run the statements in one transaction and commit it."""
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        for statement in statements:
            if isinstance(statement, str):
                await conn.execute(statement)
            else:
                await conn.execute(statement[0], statement[1])


async def confirmed_flush_lsn(url: str, slot: str) -> int:
    """The slot's confirmed_flush_lsn (0 if the slot is missing)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        )
        row = await cursor.fetchone()
    return 0 if row is None or row[0] is None else parse_lsn(row[0])


async def drop_test_slot(url: str, slot: str) -> None:
    """Drop a test's slot once its consumer is gone (slots are few: max_replication_slots)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(100):
            try:
                await conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (slot,),
                )
                return
            except psycopg.errors.ObjectInUse:  # the walsender is still exiting
                await asyncio.sleep(0.05)


async def publication_tables(url: str, publication: str) -> set[tuple[str, str]]:
    """The (schema, table) pairs the publication holds."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables"
            " WHERE pubname = %s",
            (publication,),
        )
        return {(schema, table) for schema, table in await cursor.fetchall()}
