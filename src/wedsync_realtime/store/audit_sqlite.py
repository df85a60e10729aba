"""`AuditLog` on the embedded default's SQLite store (schema step 2 of `store.sqlite`).

A batch is one transaction, run in a worker thread (`asyncio.to_thread`): a few hundred
statements take milliseconds, which the event loop should not spend; the database's lock keeps
the connection safe (see `store.sqlite`). Runs of records of one kind go through one
``executemany``, in the batch's order, so a leave followed by a rejoin ends joined.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from wedsync_realtime.engine.audit import (
    AuditRecord,
    EventRecord,
    MetricRecord,
    PresenceRecord,
    Subscription,
    SubscriptionActive,
    SubscriptionJoined,
    SubscriptionLeft,
)
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.timestamps import iso_from_epoch

__all__ = ["SqliteAuditLog"]

_CHANNEL_ID = "(SELECT id FROM realtime_channels WHERE name = ?)"

_ENSURE_CHANNEL = "INSERT INTO realtime_channels (name, type) VALUES (?, ?) ON CONFLICT DO NOTHING"

_SQL: dict[type, str] = {
    SubscriptionJoined: (
        "INSERT INTO realtime_subscriptions (user_id, channel_id, filters, subscription_tier,"
        " max_channels_allowed, connected_at, last_activity, disconnected_at)"
        f" VALUES (?, {_CHANNEL_ID}, ?, ?, ?, ?, ?, NULL)"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET filters = excluded.filters,"
        " subscription_tier = excluded.subscription_tier,"
        " max_channels_allowed = excluded.max_channels_allowed,"
        " connected_at = excluded.connected_at, last_activity = excluded.last_activity,"
        " disconnected_at = NULL"
    ),
    SubscriptionLeft: (
        "UPDATE realtime_subscriptions SET disconnected_at = ?"
        f" WHERE user_id = ? AND channel_id = {_CHANNEL_ID}"
    ),
    SubscriptionActive: (
        "UPDATE realtime_subscriptions SET last_activity = ?"
        f" WHERE user_id = ? AND channel_id = {_CHANNEL_ID}"
    ),
    PresenceRecord: (
        "INSERT INTO realtime_presence (user_id, channel_id, status, current_page, is_typing,"
        f" device_type, last_activity, presence_data) VALUES (?, {_CHANNEL_ID}, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET status = excluded.status,"
        " current_page = excluded.current_page, is_typing = excluded.is_typing,"
        " device_type = excluded.device_type, last_activity = excluded.last_activity,"
        " presence_data = excluded.presence_data"
    ),
    EventRecord: (
        "INSERT INTO realtime_events (event_type, channel_id, user_id, payload, broadcast_count,"
        " delivered_count, failed_count, priority, created_at, expires_at)"
        f" VALUES (?, {_CHANNEL_ID}, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    MetricRecord: (
        "INSERT INTO realtime_metrics (metric_name, channel_id, user_id, metric_value,"
        f" metric_unit, recorded_at) VALUES (?, {_CHANNEL_ID}, ?, ?, ?, ?)"
    ),
}


def _json(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value, default=str).decode()


def _params(record: AuditRecord) -> tuple[Any, ...]:
    match record:
        case SubscriptionJoined():
            at = iso_from_epoch(record.at)
            return (
                record.user_id,
                record.channel,
                _json(record.filters),
                record.tier,
                record.max_channels_allowed,
                at,
                at,
            )
        case SubscriptionLeft() | SubscriptionActive():
            return (iso_from_epoch(record.at), record.user_id, record.channel)
        case PresenceRecord():
            return (
                record.user_id,
                record.channel,
                record.status,
                record.current_page,
                int(record.is_typing),
                record.device_type,
                iso_from_epoch(record.last_activity),
                _json(record.presence_data),
            )
        case EventRecord():
            return (
                record.event_type,
                record.channel,
                record.user_id,
                _json(record.payload),
                record.broadcast_count,
                record.delivered_count,
                record.failed_count,
                record.priority,
                iso_from_epoch(record.created_at),
                iso_from_epoch(record.expires_at),
            )
        case MetricRecord():
            return (
                record.name,
                record.channel,
                record.user_id,
                record.value,
                record.unit,
                iso_from_epoch(record.recorded_at),
            )


def _parse(text: str) -> float:
    """The schema's text back to epoch seconds (to the millisecond, as `engine.audit.millis`)."""
    return round(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(), 3)


class SqliteAuditLog:
    """`AuditLog` on a `SqliteDatabase` (its schema applied)."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def write(self, channels: Mapping[str, str], records: Sequence[AuditRecord]) -> None:
        if channels or records:
            await asyncio.to_thread(self._write, dict(channels), list(records))

    def _write(self, channels: dict[str, str], records: list[AuditRecord]) -> None:
        # Parameters are built before taking the database's lock, which the event loop's
        # queries share: inside it the transaction only executes.
        ensure = list(channels.items())
        batches = [
            (_SQL[kind], [_params(record) for record in run])
            for kind, run in itertools.groupby(records, key=type)
        ]
        with self.database.transaction() as conn:
            conn.executemany(_ENSURE_CHANNEL, ensure)
            for sql, params in batches:
                conn.executemany(sql, params)

    async def prune(self, before: float) -> int:
        return await asyncio.to_thread(self._prune, iso_from_epoch(before))

    def _prune(self, cutoff: str) -> int:
        with self.database.transaction() as conn:
            statements = (
                "DELETE FROM realtime_subscriptions WHERE disconnected_at < ?",
                "DELETE FROM realtime_presence WHERE last_activity < ?",
                "DELETE FROM realtime_events WHERE created_at < ?",
                "DELETE FROM realtime_metrics WHERE recorded_at < ?",
            )
            return sum(conn.execute(sql, (cutoff,)).rowcount for sql in statements)

    async def channels(self) -> dict[str, str]:
        rows = self.database.query("SELECT name, type FROM realtime_channels ORDER BY name")
        return {row["name"]: row["type"] for row in rows}

    async def subscriptions(self, user_id: str | None = None) -> list[Subscription]:
        rows = self.database.query(
            "SELECT s.*, c.name AS channel FROM realtime_subscriptions s"
            " JOIN realtime_channels c ON c.id = s.channel_id"
            " WHERE ? IS NULL OR s.user_id = ? ORDER BY s.user_id, c.name",
            (user_id, user_id),
        )
        return [
            Subscription(
                row["user_id"],
                row["channel"],
                orjson.loads(row["filters"]),
                row["subscription_tier"],
                row["max_channels_allowed"],
                _parse(row["connected_at"]),
                _parse(row["last_activity"]),
                _parse(row["disconnected_at"]) if row["disconnected_at"] is not None else None,
            )
            for row in rows
        ]

    async def presence(self, user_id: str | None = None) -> list[PresenceRecord]:
        rows = self.database.query(
            "SELECT p.*, c.name AS channel FROM realtime_presence p"
            " JOIN realtime_channels c ON c.id = p.channel_id"
            " WHERE ? IS NULL OR p.user_id = ? ORDER BY p.user_id, c.name",
            (user_id, user_id),
        )
        return [
            PresenceRecord(
                row["user_id"],
                row["channel"],
                row["status"],
                row["current_page"],
                bool(row["is_typing"]),
                row["device_type"],
                _parse(row["last_activity"]),
                orjson.loads(row["presence_data"]),
            )
            for row in rows
        ]

    async def events(self, limit: int = 100, *, event_type: str | None = None) -> list[EventRecord]:
        rows = self.database.query(
            "SELECT e.*, c.name AS channel FROM realtime_events e"
            " LEFT JOIN realtime_channels c ON c.id = e.channel_id"
            " WHERE ? IS NULL OR e.event_type = ?"
            " ORDER BY e.created_at DESC, e.rowid DESC LIMIT ?",
            (event_type, event_type, limit),
        )
        return [_event(row) for row in rows]

    async def metrics(self, name: str | None = None, limit: int = 100) -> list[MetricRecord]:
        rows = self.database.query(
            "SELECT m.*, c.name AS channel FROM realtime_metrics m"
            " LEFT JOIN realtime_channels c ON c.id = m.channel_id"
            " WHERE ? IS NULL OR m.metric_name = ?"
            " ORDER BY m.recorded_at DESC, m.id DESC LIMIT ?",
            (name, name, limit),
        )
        return [
            MetricRecord(
                row["metric_name"],
                float(row["metric_value"]),
                row["metric_unit"],
                row["channel"],
                row["user_id"],
                _parse(row["recorded_at"]),
            )
            for row in rows
        ]


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        row["event_type"],
        row["channel"],
        row["user_id"],
        orjson.loads(row["payload"]),
        row["broadcast_count"],
        row["delivered_count"],
        row["failed_count"],
        row["priority"],
        _parse(row["created_at"]),
        _parse(row["expires_at"]),
    )
