"""The embedded default store: one SQLite file (stdlib `sqlite3`), or ``:memory:`` for tests.

It mirrors the concepts of the PostgreSQL example schema (``migrations/0002_wedsync_example.sql``)
so the WedSync domain runs without PostgreSQL: users and their supplier or couple, supplier teams,
supplier-couple connections, weddings, forms (and the couples they were sent to), form responses,
core field values with a version per field, a venue directory, journeys with ordered steps and
their per-couple instances, notifications, and last-seen times; and the audit log's realtime
tables (``migrations/0001_realtime.sql``; see `store.audit_sqlite`).

Schema creation is versioned and idempotent: ``PRAGMA user_version`` records the last step applied
and `SqliteDatabase.open` applies the missing steps of `SCHEMA_STEPS` in one transaction each. The
SQL lives in this module (not a package-data file) so that a wheel can never ship without it.

**Async, and why calls run inline.** Every query the domain makes is one or a few indexed
statements on a local file: tens of microseconds, with the page cache warm. The database runs in
WAL mode with ``synchronous=NORMAL`` (a commit appends to the WAL without an fsync; durability is
kept across process crashes, and at worst the last commits are lost on power failure), so writes
are as short as reads. Handing each call to `asyncio.to_thread` would cost more (a thread hop, tens
to hundreds of microseconds, plus queueing behind other threads) than the query itself, and the
connection would need cross-thread locking on every call. So the async store methods built on
this class call it directly on the event loop. The connection is nevertheless guarded by a lock and
opened with ``check_same_thread=False``, so a CLI command or a bulk job may use it from a worker
thread (``asyncio.to_thread``) safely; long operations (demo loading, bulk imports) should do so.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DATABASE_FILE_NAME",
    "SCHEMA_STEPS",
    "SqliteDatabase",
    "database_path",
]

#: The file name of the store inside the data directory.
DATABASE_FILE_NAME = "wedsync.sqlite3"

#: Schema steps in order; step N (1-based) is applied when ``user_version < N``. Never edit a
#: released step: append a new one.
SCHEMA_STEPS: tuple[str, ...] = (
    """
    CREATE TABLE suppliers (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        category    TEXT,
        tier        TEXT NOT NULL DEFAULT 'free'
                    CHECK (tier IN ('free', 'starter', 'professional', 'scale', 'enterprise')),
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );

    CREATE TABLE couples (
        id             TEXT PRIMARY KEY,
        partner1_name  TEXT NOT NULL,
        partner2_name  TEXT,
        created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );

    CREATE TABLE users (
        id           TEXT PRIMARY KEY,
        type         TEXT NOT NULL CHECK (type IN ('supplier', 'couple', 'admin')),
        name         TEXT NOT NULL,
        supplier_id  TEXT REFERENCES suppliers (id) ON DELETE SET NULL,
        couple_id    TEXT REFERENCES couples (id) ON DELETE SET NULL,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        CHECK (type <> 'supplier' OR supplier_id IS NOT NULL),
        CHECK (type <> 'couple' OR couple_id IS NOT NULL)
    );
    CREATE INDEX users_supplier_idx ON users (supplier_id);
    CREATE INDEX users_couple_idx ON users (couple_id);

    -- Invited team members of a supplier (a user id; the user may not have a profile yet).
    CREATE TABLE supplier_team_members (
        supplier_id  TEXT NOT NULL REFERENCES suppliers (id) ON DELETE CASCADE,
        user_id      TEXT NOT NULL,
        role         TEXT NOT NULL DEFAULT 'member',
        PRIMARY KEY (supplier_id, user_id)
    );

    CREATE TABLE connections (
        supplier_id  TEXT NOT NULL REFERENCES suppliers (id) ON DELETE CASCADE,
        couple_id    TEXT NOT NULL REFERENCES couples (id) ON DELETE CASCADE,
        status       TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('pending', 'active', 'paused', 'ended')),
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (supplier_id, couple_id)
    );
    CREATE INDEX connections_couple_idx ON connections (couple_id, status);

    CREATE TABLE weddings (
        id          TEXT PRIMARY KEY,
        couple_id   TEXT NOT NULL REFERENCES couples (id) ON DELETE CASCADE,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX weddings_couple_idx ON weddings (couple_id);

    -- `fields`: a JSON array of {"field_id", "label", "required"}.
    CREATE TABLE forms (
        id           TEXT PRIMARY KEY,
        supplier_id  TEXT NOT NULL REFERENCES suppliers (id) ON DELETE CASCADE,
        title        TEXT NOT NULL,
        fields       TEXT NOT NULL DEFAULT '[]',
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX forms_supplier_idx ON forms (supplier_id);

    CREATE TABLE form_recipients (
        form_id    TEXT NOT NULL REFERENCES forms (id) ON DELETE CASCADE,
        couple_id  TEXT NOT NULL REFERENCES couples (id) ON DELETE CASCADE,
        sent_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (form_id, couple_id)
    );

    -- `data`: a JSON object field_id -> value.
    CREATE TABLE form_responses (
        form_id       TEXT NOT NULL REFERENCES forms (id) ON DELETE CASCADE,
        couple_id     TEXT NOT NULL REFERENCES couples (id) ON DELETE CASCADE,
        data          TEXT NOT NULL DEFAULT '{}',
        status        TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'submitted')),
        submitted_at  TEXT,
        updated_by    TEXT,
        updated_at    TEXT NOT NULL,
        PRIMARY KEY (form_id, couple_id)
    );

    -- `value`: JSON. Version 0 is "never set"; the first write makes version 1.
    CREATE TABLE core_field_values (
        couple_id   TEXT NOT NULL REFERENCES couples (id) ON DELETE CASCADE,
        field_name  TEXT NOT NULL,
        value       TEXT,
        version     INTEGER NOT NULL CHECK (version > 0),
        updated_by  TEXT,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (couple_id, field_name)
    );

    CREATE TABLE venues (
        id        TEXT PRIMARY KEY,
        name      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        address   TEXT,
        capacity  INTEGER CHECK (capacity IS NULL OR capacity >= 0)
    );

    CREATE TABLE journeys (
        id           TEXT PRIMARY KEY,
        supplier_id  TEXT NOT NULL REFERENCES suppliers (id) ON DELETE CASCADE,
        name         TEXT NOT NULL
    );

    CREATE TABLE journey_steps (
        journey_id  TEXT NOT NULL REFERENCES journeys (id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'email', 'meeting')),
        PRIMARY KEY (journey_id, step_id),
        UNIQUE (journey_id, position)
    );

    -- One couple's run of a journey. Its id is the {journey_id} of the journey channels.
    CREATE TABLE journey_instances (
        id           TEXT PRIMARY KEY,
        journey_id   TEXT REFERENCES journeys (id) ON DELETE CASCADE,
        supplier_id  TEXT NOT NULL REFERENCES suppliers (id) ON DELETE CASCADE,
        couple_id    TEXT NOT NULL REFERENCES couples (id) ON DELETE CASCADE,
        status       TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
        updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX journey_instances_couple_idx ON journey_instances (couple_id);

    CREATE TABLE journey_instance_steps (
        instance_id      TEXT NOT NULL REFERENCES journey_instances (id) ON DELETE CASCADE,
        step_id          TEXT NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('locked', 'available', 'completed')),
        completed_at     TEXT,
        completed_by     TEXT,
        due_at           TEXT,
        email_opened_at  TEXT,
        PRIMARY KEY (instance_id, step_id)
    );

    CREATE TABLE notifications (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        type          TEXT NOT NULL,
        title         TEXT NOT NULL,
        message       TEXT NOT NULL,
        action_url    TEXT,
        priority      TEXT NOT NULL DEFAULT 'medium'
                      CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
        read_at       TEXT,
        dismissed_at  TEXT,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX notifications_user_idx ON notifications (user_id, dismissed_at, read_at);

    CREATE TABLE last_seen (
        user_id       TEXT PRIMARY KEY,
        last_seen_at  TEXT NOT NULL,
        status        TEXT
    );
    """,
    # 2: the audit log (`store.audit_sqlite`): the specification's realtime tables, with the
    # columns of migrations/0001_realtime.sql in SQLite types (uuids: 32 hex digits; instants:
    # ISO 8601 UTC text with milliseconds; booleans 0/1; jsonb: JSON text).
    """
    CREATE TABLE realtime_channels (
        id                  TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
        name                TEXT NOT NULL UNIQUE,
        type                TEXT NOT NULL DEFAULT 'shared'
                            CHECK (type IN ('private', 'shared', 'broadcast', 'resource')),
        max_subscribers     INTEGER NOT NULL DEFAULT 1000 CHECK (max_subscribers > 0),
        message_rate_limit  INTEGER NOT NULL DEFAULT 100 CHECK (message_rate_limit > 0),
        payload_size_limit  INTEGER NOT NULL DEFAULT 65536 CHECK (payload_size_limit > 0),
        auth_required       INTEGER NOT NULL DEFAULT 1 CHECK (auth_required IN (0, 1)),
        created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );

    CREATE TABLE realtime_subscriptions (
        id                    TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
        user_id               TEXT NOT NULL,
        channel_id            TEXT NOT NULL REFERENCES realtime_channels (id) ON DELETE CASCADE,
        filters               TEXT NOT NULL DEFAULT '{}',
        subscription_tier     TEXT NOT NULL DEFAULT 'free',
        max_channels_allowed  INTEGER NOT NULL DEFAULT 10 CHECK (max_channels_allowed > 0),
        connected_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        last_activity         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        disconnected_at       TEXT,
        UNIQUE (user_id, channel_id)
    );
    CREATE INDEX realtime_subscriptions_channel_idx ON realtime_subscriptions (channel_id);
    CREATE INDEX realtime_subscriptions_disconnected_idx
        ON realtime_subscriptions (disconnected_at);

    CREATE TABLE realtime_presence (
        id             TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
        user_id        TEXT NOT NULL,
        channel_id     TEXT NOT NULL REFERENCES realtime_channels (id) ON DELETE CASCADE,
        status         TEXT NOT NULL DEFAULT 'online'
                       CHECK (status IN ('online', 'away', 'busy', 'offline')),
        current_page   TEXT,
        is_typing      INTEGER NOT NULL DEFAULT 0 CHECK (is_typing IN (0, 1)),
        device_type    TEXT CHECK (device_type IN ('desktop', 'mobile', 'tablet', 'unknown')),
        last_activity  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        presence_data  TEXT NOT NULL DEFAULT '{}',
        UNIQUE (user_id, channel_id)
    );
    CREATE INDEX realtime_presence_channel_idx ON realtime_presence (channel_id);

    CREATE TABLE realtime_events (
        id               TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
        event_type       TEXT NOT NULL,
        channel_id       TEXT REFERENCES realtime_channels (id) ON DELETE CASCADE,
        user_id          TEXT,
        payload          TEXT NOT NULL DEFAULT '{}',
        broadcast_count  INTEGER NOT NULL DEFAULT 0 CHECK (broadcast_count >= 0),
        delivered_count  INTEGER NOT NULL DEFAULT 0 CHECK (delivered_count >= 0),
        failed_count     INTEGER NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
        priority         INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
        created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        expires_at       TEXT NOT NULL
                         DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+5 minutes'))
    );
    CREATE INDEX realtime_events_channel_created_idx ON realtime_events (channel_id, created_at);
    CREATE INDEX realtime_events_expires_idx ON realtime_events (expires_at);
    CREATE INDEX realtime_events_created_idx ON realtime_events (created_at);

    CREATE TABLE realtime_metrics (
        id            INTEGER PRIMARY KEY,
        metric_name   TEXT NOT NULL,
        channel_id    TEXT REFERENCES realtime_channels (id) ON DELETE SET NULL,
        user_id       TEXT,
        metric_value  REAL NOT NULL,
        metric_unit   TEXT,
        recorded_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX realtime_metrics_name_recorded_idx ON realtime_metrics (metric_name, recorded_at);
    CREATE INDEX realtime_metrics_recorded_idx ON realtime_metrics (recorded_at);
    """,
    # 3: when and by whom each supplier-couple pair's status was last set through the
    # connections API (`wedding.connections`).
    """
    CREATE TABLE connection_updates (
        supplier_id  TEXT NOT NULL,
        couple_id    TEXT NOT NULL,
        updated_by   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (supplier_id, couple_id),
        FOREIGN KEY (supplier_id, couple_id)
            REFERENCES connections (supplier_id, couple_id) ON DELETE CASCADE
    );
    """,
)


def _casefold(value: str | int | float | bytes | None) -> str | int | float | bytes | None:
    return value.casefold() if isinstance(value, str) else value


def database_path(data_dir: str | Path) -> Path:
    """Where the store lives inside `data_dir` (created when missing)."""
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / DATABASE_FILE_NAME


class SqliteDatabase:
    """One SQLite connection with the WedSync schema applied, and short transactions on it.

    Open with `SqliteDatabase.open(path)` (``":memory:"`` for a private in-memory database);
    close with `close()` or use it as a context manager.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path) -> SqliteDatabase:
        """Open (creating when missing) the database at `path` and bring its schema up to date."""
        # isolation_level=None: the module never opens transactions implicitly; `transaction()`
        # does, with BEGIN IMMEDIATE so a writer never fails half-way on a lock upgrade.
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        # SQLite's NOCASE folds ASCII only ("CHÂTEAU" would not find "Château"): names that
        # are matched without regard to case compare through Python's full case folding.
        conn.create_function("casefold", 1, _casefold, deterministic=True)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        database = cls(conn)
        database.apply_schema()
        return database

    @property
    def schema_version(self) -> int:
        with self._lock:
            row = self._conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def apply_schema(self, steps: Sequence[str] = SCHEMA_STEPS) -> list[int]:
        """Apply the steps not yet applied; return their numbers (empty when up to date)."""
        applied: list[int] = []
        with self._lock:
            for number, script in enumerate(steps, start=1):
                with self.transaction() as conn:
                    # Re-read inside the write transaction: another process may have applied it.
                    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
                    if current >= number:
                        continue
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number:d}")
                applied.append(number)
        return applied

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back when it raises.

        Nested use joins the outer transaction (the lock is re-entrant).
        """
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """All rows of one read statement."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of one read statement, or None."""
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; return the number of rows changed."""
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _statements(script: str) -> list[str]:
    """Split a schema step into statements (``executescript`` would commit our transaction).

    Our schema steps hold no triggers, so a statement ends at each ``;`` that `sqlite3`
    reports as completing a statement.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a schema step: {pending.strip()[:60]!r}")
    return statements
