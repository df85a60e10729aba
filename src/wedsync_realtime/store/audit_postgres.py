"""`AuditLog` on PostgreSQL: the ``realtime`` schema's tables of ``migrations/0001_realtime.sql``.

Takes a `psycopg_pool.AsyncConnectionPool` (production mode passes the domain's pool,
`wedding.postgres_stores.domain_pool`: autocommit sessions). A batch is one transaction on one
pooled connection; runs of records of one kind go through one pipelined ``executemany``, in the
batch's order. Channel ids are looked up by name inside each statement, so no id is cached that
a deleted channel could leave stale.

PostgreSQL refuses NUL characters in text and jsonb: they are written as U+FFFD, so one odd
client payload cannot make a whole batch fail.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

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

__all__ = ["PostgresAuditLog"]

_ENSURE_CHANNEL = (
    "INSERT INTO realtime.realtime_channels (name, type) VALUES (%s, %s)"
    " ON CONFLICT (name) DO NOTHING"
)

_SQL: dict[type, LiteralString] = {
    SubscriptionJoined: (
        "INSERT INTO realtime.realtime_subscriptions (user_id, channel_id, filters,"
        " subscription_tier, max_channels_allowed, connected_at, last_activity, disconnected_at)"
        " SELECT %s, c.id, %s::jsonb, %s, %s, %s, %s, NULL"
        " FROM realtime.realtime_channels c WHERE c.name = %s"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET filters = EXCLUDED.filters,"
        " subscription_tier = EXCLUDED.subscription_tier,"
        " max_channels_allowed = EXCLUDED.max_channels_allowed,"
        " connected_at = EXCLUDED.connected_at, last_activity = EXCLUDED.last_activity,"
        " disconnected_at = NULL"
    ),
    SubscriptionLeft: (
        "UPDATE realtime.realtime_subscriptions SET disconnected_at = %s"
        " WHERE user_id = %s AND channel_id = "
        "(SELECT id FROM realtime.realtime_channels WHERE name = %s)"
    ),
    SubscriptionActive: (
        "UPDATE realtime.realtime_subscriptions SET last_activity = %s"
        " WHERE user_id = %s AND channel_id = "
        "(SELECT id FROM realtime.realtime_channels WHERE name = %s)"
    ),
    PresenceRecord: (
        "INSERT INTO realtime.realtime_presence (user_id, channel_id, status, current_page,"
        " is_typing, device_type, last_activity, presence_data)"
        " SELECT %s, c.id, %s, %s, %s, %s, %s, %s::jsonb"
        " FROM realtime.realtime_channels c WHERE c.name = %s"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET status = EXCLUDED.status,"
        " current_page = EXCLUDED.current_page, is_typing = EXCLUDED.is_typing,"
        " device_type = EXCLUDED.device_type, last_activity = EXCLUDED.last_activity,"
        " presence_data = EXCLUDED.presence_data"
    ),
    EventRecord: (
        "INSERT INTO realtime.realtime_events (event_type, channel_id, user_id, payload,"
        " broadcast_count, delivered_count, failed_count, priority, created_at, expires_at)"
        " VALUES (%s, (SELECT id FROM realtime.realtime_channels WHERE name = %s), %s,"
        " %s::jsonb, %s, %s, %s, %s, %s, %s)"
    ),
    MetricRecord: (
        "INSERT INTO realtime.realtime_metrics (metric_name, channel_id, user_id, metric_value,"
        " metric_unit, recorded_at)"
        " VALUES (%s, (SELECT id FROM realtime.realtime_channels WHERE name = %s), %s, %s, %s, %s)"
    ),
}

_PRUNE: tuple[LiteralString, ...] = (
    "DELETE FROM realtime.realtime_subscriptions WHERE disconnected_at < %s",
    "DELETE FROM realtime.realtime_presence WHERE last_activity < %s",
    "DELETE FROM realtime.realtime_events WHERE created_at < %s",
    "DELETE FROM realtime.realtime_metrics WHERE recorded_at < %s",
)


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


def _json(value: Mapping[str, Any]) -> str:
    # orjson writes NUL as the escape \u0000, which jsonb refuses.
    return orjson.dumps(value, default=str).decode().replace("\\u0000", "\\ufffd")


def _params(record: AuditRecord) -> tuple[Any, ...]:
    match record:
        case SubscriptionJoined():
            return (
                _text(record.user_id),
                _json(record.filters),
                _text(record.tier),
                record.max_channels_allowed,
                _moment(record.at),
                _moment(record.at),
                _text(record.channel),
            )
        case SubscriptionLeft() | SubscriptionActive():
            return (_moment(record.at), _text(record.user_id), _text(record.channel))
        case PresenceRecord():
            return (
                _text(record.user_id),
                record.status,
                _text(record.current_page),
                record.is_typing,
                record.device_type,
                _moment(record.last_activity),
                _json(record.presence_data),
                _text(record.channel),
            )
        case EventRecord():
            return (
                _text(record.event_type),
                _text(record.channel),
                _text(record.user_id),
                _json(record.payload),
                record.broadcast_count,
                record.delivered_count,
                record.failed_count,
                record.priority,
                _moment(record.created_at),
                _moment(record.expires_at),
            )
        case MetricRecord():
            return (
                _text(record.name),
                _text(record.channel),
                _text(record.user_id),
                record.value,
                _text(record.unit),
                _moment(record.recorded_at),
            )


def _moment(wall: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall, dt.UTC)


def _wall(moment: dt.datetime) -> float:
    """A timestamptz back to epoch seconds (to the millisecond, as `engine.audit.millis`)."""
    return round(moment.timestamp(), 3)


class PostgresAuditLog:
    """`AuditLog` on the ``realtime`` schema, through `pool`."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def write(self, channels: Mapping[str, str], records: Sequence[AuditRecord]) -> None:
        if not channels and not records:
            return
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if channels:
                await cur.executemany(
                    _ENSURE_CHANNEL, [(_text(name), kind) for name, kind in channels.items()]
                )
            for kind, run in itertools.groupby(records, key=type):
                await cur.executemany(_SQL[kind], [_params(record) for record in run])

    async def prune(self, before: float) -> int:
        removed = 0
        async with self.pool.connection() as conn, conn.transaction():
            for statement in _PRUNE:
                cursor = await conn.execute(statement, (_moment(before),))
                removed += max(cursor.rowcount, 0)
        return removed

    async def _rows(
        self, query: LiteralString, params: Mapping[str, Any] | Sequence[Any]
    ) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def channels(self) -> dict[str, str]:
        rows = await self._rows(
            "SELECT name, type FROM realtime.realtime_channels ORDER BY name", ()
        )
        return {row["name"]: row["type"] for row in rows}

    async def subscriptions(self, user_id: str | None = None) -> list[Subscription]:
        rows = await self._rows(
            "SELECT s.*, c.name AS channel FROM realtime.realtime_subscriptions s"
            " JOIN realtime.realtime_channels c ON c.id = s.channel_id"
            " WHERE %(user)s::text IS NULL OR s.user_id = %(user)s"
            ' ORDER BY s.user_id COLLATE "C", c.name COLLATE "C"',
            {"user": user_id},
        )
        return [
            Subscription(
                row["user_id"],
                row["channel"],
                row["filters"],
                row["subscription_tier"],
                row["max_channels_allowed"],
                _wall(row["connected_at"]),
                _wall(row["last_activity"]),
                _wall(row["disconnected_at"]) if row["disconnected_at"] is not None else None,
            )
            for row in rows
        ]

    async def presence(self, user_id: str | None = None) -> list[PresenceRecord]:
        rows = await self._rows(
            "SELECT p.*, c.name AS channel FROM realtime.realtime_presence p"
            " JOIN realtime.realtime_channels c ON c.id = p.channel_id"
            " WHERE %(user)s::text IS NULL OR p.user_id = %(user)s"
            ' ORDER BY p.user_id COLLATE "C", c.name COLLATE "C"',
            {"user": user_id},
        )
        return [
            PresenceRecord(
                row["user_id"],
                row["channel"],
                row["status"],
                row["current_page"],
                row["is_typing"],
                row["device_type"],
                _wall(row["last_activity"]),
                row["presence_data"],
            )
            for row in rows
        ]

    async def events(self, limit: int = 100, *, event_type: str | None = None) -> list[EventRecord]:
        rows = await self._rows(
            "SELECT e.*, c.name AS channel FROM realtime.realtime_events e"
            " LEFT JOIN realtime.realtime_channels c ON c.id = e.channel_id"
            " WHERE %(type)s::text IS NULL OR e.event_type = %(type)s"
            " ORDER BY e.created_at DESC LIMIT %(limit)s",
            {"type": event_type, "limit": limit},
        )
        return [
            EventRecord(
                row["event_type"],
                row["channel"],
                row["user_id"],
                row["payload"],
                row["broadcast_count"],
                row["delivered_count"],
                row["failed_count"],
                row["priority"],
                _wall(row["created_at"]),
                _wall(row["expires_at"]),
            )
            for row in rows
        ]

    async def metrics(self, name: str | None = None, limit: int = 100) -> list[MetricRecord]:
        rows = await self._rows(
            "SELECT m.*, c.name AS channel FROM realtime.realtime_metrics m"
            " LEFT JOIN realtime.realtime_channels c ON c.id = m.channel_id"
            " WHERE %(name)s::text IS NULL OR m.metric_name = %(name)s"
            " ORDER BY m.recorded_at DESC, m.id DESC LIMIT %(limit)s",
            {"name": name, "limit": limit},
        )
        return [
            MetricRecord(
                row["metric_name"],
                float(row["metric_value"]),
                row["metric_unit"],
                row["channel"],
                row["user_id"],
                _wall(row["recorded_at"]),
            )
            for row in rows
        ]
