"""The embedded store: versioned idempotent schema, rollback on error, last-seen times."""

from __future__ import annotations

from pathlib import Path

import pytest

from wedsync_realtime.store.sqlite import SCHEMA_STEPS, SqliteDatabase, database_path
from wedsync_realtime.wedding.sqlite_stores import SqliteLastSeenStore


def test_schema_steps_apply_once(tmp_path: Path) -> None:
    path = database_path(tmp_path / "data")
    with SqliteDatabase.open(path) as database:
        assert database.schema_version == len(SCHEMA_STEPS)
        assert database.apply_schema() == []
        # A later release appends a step: only that one runs.
        step = "CREATE TABLE later (id TEXT PRIMARY KEY);"
        assert database.apply_schema((*SCHEMA_STEPS, step)) == [len(SCHEMA_STEPS) + 1]
        assert database.apply_schema((*SCHEMA_STEPS, step)) == []


def test_a_failing_transaction_leaves_nothing(tmp_path: Path) -> None:
    with SqliteDatabase.open(":memory:") as database:
        with pytest.raises(RuntimeError), database.transaction() as conn:
            conn.execute("INSERT INTO suppliers (id, name) VALUES ('s1', 'Sarah')")
            raise RuntimeError("boom")
        assert database.query("SELECT id FROM suppliers") == []


def test_foreign_keys_are_enforced() -> None:
    import sqlite3

    with SqliteDatabase.open(":memory:") as database, pytest.raises(sqlite3.IntegrityError):
        database.execute("INSERT INTO weddings (id, couple_id) VALUES ('w1', 'no-couple')")


async def test_last_seen_keeps_the_latest_time() -> None:
    with SqliteDatabase.open(":memory:") as database:
        store = SqliteLastSeenStore(database)
        await store.record_last_seen("lisa", at="2025-06-01T14:02:00.000Z", status="online")
        await store.record_last_seen("lisa", at="2025-06-01T14:01:00.000Z", status="away")
        assert await store.last_seen(["lisa", "mike"]) == {
            "lisa": ("2025-06-01T14:02:00.000Z", "online")
        }
        assert await store.forget_last_seen_before("2025-06-08T00:00:00.000Z") == 1
        assert await store.last_seen(["lisa"]) == {}
