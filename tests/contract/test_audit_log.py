"""The `AuditLog` contract: MemoryAuditLog (the reference), SqliteAuditLog and PostgresAuditLog.

Each test writes records and reads back, through the implementation's read API, what the
specification's tables hold. Instants are epoch seconds to the millisecond (what every backend
keeps), and read back equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
import pytest

from tests.support.cdc import migrated_database
from tests.support.pg_directory import open_domain_pool
from wedsync_realtime.engine.audit import (
    AuditLog,
    EventRecord,
    MemoryAuditLog,
    MetricRecord,
    PresenceRecord,
    Subscription,
    SubscriptionActive,
    SubscriptionJoined,
    SubscriptionLeft,
    millis,
)
from wedsync_realtime.store.audit_postgres import PostgresAuditLog
from wedsync_realtime.store.audit_sqlite import SqliteAuditLog
from wedsync_realtime.store.sqlite import SqliteDatabase

AUDIT_TABLES = (
    "realtime.realtime_channels",
    "realtime.realtime_subscriptions",
    "realtime.realtime_presence",
    "realtime.realtime_events",
    "realtime.realtime_metrics",
)

ROOM = "wedding:w1"
CLIENTS = "supplier:s1:clients"
CHANNELS = {ROOM: "shared", CLIENTS: "private"}


#: 2026-01-01T10:00:00Z in epoch seconds.
START = 1_767_261_600


def at(minute: int, ms: int = 0) -> float:
    """An instant (epoch seconds, to the millisecond) `minute` minutes after 10:00."""
    return millis(START + minute * 60 + ms / 1000)


def joined(
    user: str = "emma",
    channel: str = ROOM,
    minute: int = 0,
    *,
    tier: str = "free",
    filters: dict[str, Any] | None = None,
    max_channels: int = 3,
) -> SubscriptionJoined:
    return SubscriptionJoined(user, channel, filters or {}, tier, max_channels, at(minute))


def presence(
    user: str = "emma", channel: str = ROOM, minute: int = 0, **fields: Any
) -> PresenceRecord:
    values: dict[str, Any] = {
        "status": "online",
        "current_page": "/forms/f1",
        "is_typing": False,
        "device_type": "desktop",
        "presence_data": {"status": "online", "current_page": "/forms/f1"},
        **fields,
    }
    return PresenceRecord(user, channel, last_activity=at(minute), **values)


def event(
    event_type: str = "timeline_changed",
    channel: str | None = ROOM,
    minute: int = 0,
    **fields: Any,
) -> EventRecord:
    values: dict[str, Any] = {
        "user_id": "mike",
        "payload": {"message": "Ceremony moved to 4 PM", "n": 1},
        "broadcast_count": 1,
        "delivered_count": 3,
        "failed_count": 0,
        "priority": 10,
        **fields,
    }
    return EventRecord(
        event_type, channel, created_at=at(minute), expires_at=at(minute + 5), **values
    )


@asynccontextmanager
async def _memory(request: pytest.FixtureRequest) -> AsyncIterator[AuditLog]:
    yield MemoryAuditLog()


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[AuditLog]:
    with SqliteDatabase.open(":memory:") as database:
        yield SqliteAuditLog(database)


@asynccontextmanager
async def _postgres(request: pytest.FixtureRequest) -> AsyncIterator[AuditLog]:
    url: str = request.getfixturevalue("postgres_url")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(AUDIT_TABLES)} CASCADE")
    async with open_domain_pool(url) as pool:
        yield PostgresAuditLog(pool)


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[AuditLog]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with migrated_database("wedsync_contract_audit") as url:
        yield url


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, [])) for name in FACTORIES])
async def audit(request: pytest.FixtureRequest) -> AsyncIterator[AuditLog]:
    async with FACTORIES[request.param](request) as implementation:
        yield implementation


async def test_nothing_written_reads_empty(audit: AuditLog) -> None:
    await audit.write({}, [])
    assert await audit.channels() == {}
    assert await audit.subscriptions() == []
    assert await audit.presence() == []
    assert await audit.events() == []
    assert await audit.metrics() == []
    assert await audit.prune(at(59)) == 0


async def test_a_join_is_a_subscription_row_on_its_channel(audit: AuditLog) -> None:
    bindings = {"postgres_changes": [{"event": "*", "schema": "public", "table": "forms"}]}
    await audit.write(CHANNELS, [joined(tier="professional", filters=bindings, max_channels=10)])
    assert await audit.channels() == CHANNELS
    assert await audit.subscriptions() == [
        Subscription("emma", ROOM, bindings, "professional", 10, at(0), at(0), None)
    ]


async def test_an_existing_channel_keeps_its_type(audit: AuditLog) -> None:
    await audit.write({ROOM: "shared"}, [])
    await audit.write({ROOM: "resource", CLIENTS: "private"}, [])
    assert await audit.channels() == {ROOM: "shared", CLIENTS: "private"}


async def test_leaving_sets_disconnected_at_and_a_rejoin_updates_the_one_row(
    audit: AuditLog,
) -> None:
    await audit.write(CHANNELS, [joined(minute=1)])
    await audit.write(CHANNELS, [SubscriptionLeft("emma", ROOM, at(2))])
    assert await audit.subscriptions() == [
        Subscription("emma", ROOM, {}, "free", 3, at(1), at(1), at(2))
    ]
    await audit.write(CHANNELS, [joined(minute=3, tier="scale", max_channels=10)])
    assert await audit.subscriptions() == [
        Subscription("emma", ROOM, {}, "scale", 10, at(3), at(3), None)
    ]


async def test_a_batch_applies_in_order(audit: AuditLog) -> None:
    """A leave then a rejoin in one batch ends joined; a join then a leave ends left."""
    await audit.write(CHANNELS, [joined("emma", ROOM, 1)])
    await audit.write(
        CHANNELS,
        [
            SubscriptionLeft("emma", ROOM, at(2)),
            joined("emma", ROOM, 3),
            joined("lisa", ROOM, 4),
            SubscriptionLeft("lisa", ROOM, at(5)),
        ],
    )
    rows = {row.user_id: row for row in await audit.subscriptions()}
    assert rows["emma"].connected_at == at(3) and rows["emma"].disconnected_at is None
    assert rows["lisa"].connected_at == at(4) and rows["lisa"].disconnected_at == at(5)


async def test_activity_touches_last_activity_of_its_subscription_only(audit: AuditLog) -> None:
    await audit.write(CHANNELS, [joined("emma", ROOM, 0), joined("emma", CLIENTS, 0)])
    await audit.write(CHANNELS, [SubscriptionActive("emma", ROOM, at(7, 250))])
    rows = {row.channel: row for row in await audit.subscriptions("emma")}
    assert rows[ROOM].last_activity == at(7, 250)
    assert rows[ROOM].connected_at == at(0)
    assert rows[CLIENTS].last_activity == at(0)


async def test_leave_or_activity_without_a_subscription_changes_nothing(audit: AuditLog) -> None:
    await audit.write(
        CHANNELS, [SubscriptionLeft("emma", ROOM, at(1)), SubscriptionActive("emma", ROOM, at(1))]
    )
    assert await audit.subscriptions() == []


async def test_subscriptions_are_by_user_then_channel_and_filter_by_user(audit: AuditLog) -> None:
    await audit.write(
        CHANNELS,
        [joined("lisa", ROOM), joined("emma", ROOM), joined("emma", CLIENTS)],
    )
    everyone = [(s.user_id, s.channel) for s in await audit.subscriptions()]
    assert everyone == [("emma", CLIENTS), ("emma", ROOM), ("lisa", ROOM)]
    assert [s.channel for s in await audit.subscriptions("lisa")] == [ROOM]
    assert await audit.subscriptions("nobody") == []


async def test_presence_is_one_row_per_user_and_channel_upserted(audit: AuditLog) -> None:
    first = presence("emma", ROOM, 1)
    await audit.write(CHANNELS, [first, presence("lisa", ROOM, 1), presence("emma", CLIENTS, 1)])
    assert await audit.presence("emma") == [presence("emma", CLIENTS, 1), first]
    later = presence(
        "emma",
        ROOM,
        2,
        status="away",
        current_page=None,
        is_typing=True,
        device_type="unknown",
        presence_data={"status": "idle", "nested": {"list": [1, 2.5, "ça va"]}},
    )
    await audit.write(CHANNELS, [later])
    assert await audit.presence("emma") == [presence("emma", CLIENTS, 1), later]
    assert [(p.user_id, p.channel) for p in await audit.presence()] == [
        ("emma", CLIENTS),
        ("emma", ROOM),
        ("lisa", ROOM),
    ]


async def test_presence_without_a_device_type(audit: AuditLog) -> None:
    bare = presence(device_type=None, current_page=None, status="busy", presence_data={})
    await audit.write(CHANNELS, [bare])
    assert await audit.presence() == [bare]


async def test_events_are_rows_newest_first_with_every_field(audit: AuditLog) -> None:
    sent = event("timeline_changed", ROOM, 1)
    denied = event(
        "access_denied",
        CLIENTS,
        2,
        user_id="rita",
        payload={"action": "subscribe", "reason": "not connected"},
        broadcast_count=0,
        delivered_count=0,
        priority=5,
    )
    nowhere = event("system_note", None, 3, user_id=None, failed_count=2)
    await audit.write(CHANNELS, [sent, denied, nowhere])
    assert await audit.events() == [nowhere, denied, sent]
    assert await audit.events(limit=2) == [nowhere, denied]
    assert await audit.events(event_type="access_denied") == [denied]


async def test_metrics_are_rows_newest_first(audit: AuditLog) -> None:
    older = MetricRecord("active_connections", 12.0, "connections", None, None, at(1))
    newer = MetricRecord("active_connections", 15.0, "connections", None, None, at(2))
    channel = MetricRecord("channel_average_delivery_ms", 0.125, "ms", ROOM, None, at(2))
    await audit.write(CHANNELS, [older, newer, channel])
    assert await audit.metrics("active_connections") == [newer, older]
    assert await audit.metrics("channel_average_delivery_ms") == [channel]
    assert len(await audit.metrics()) == 3
    assert len(await audit.metrics(limit=1)) == 1


async def test_prune_removes_what_is_older_than_the_cutoff(audit: AuditLog) -> None:
    await audit.write(
        CHANNELS,
        [
            joined("ended-long-ago", ROOM, 0),
            SubscriptionLeft("ended-long-ago", ROOM, at(1)),
            joined("ended-lately", ROOM, 0),
            SubscriptionLeft("ended-lately", ROOM, at(20)),
            joined("still-here", ROOM, 0),
            presence("old", ROOM, 1),
            presence("new", ROOM, 20),
            event("old", ROOM, 1),
            event("new", ROOM, 20),
            MetricRecord("m", 1.0, None, None, None, at(1)),
            MetricRecord("m", 2.0, None, None, None, at(20)),
        ],
    )
    assert await audit.prune(at(10)) == 4
    assert [s.user_id for s in await audit.subscriptions()] == ["ended-lately", "still-here"]
    assert [p.user_id for p in await audit.presence()] == ["new"]
    assert [e.event_type for e in await audit.events()] == ["new"]
    assert [m.value for m in await audit.metrics()] == [2.0]
    assert await audit.channels() == CHANNELS  # channels are not audit rows: kept
    assert await audit.prune(at(10)) == 0


async def test_odd_text_is_stored_not_refused(audit: AuditLog) -> None:
    """A NUL in a client's payload or page (PostgreSQL refuses NUL in text and jsonb) does not
    make the batch fail."""
    await audit.write(
        CHANNELS,
        [
            event(payload={"text": "a\x00b"}),
            presence(current_page="/x\x00y", presence_data={"k": "\x00"}),
        ],
    )
    assert len(await audit.events()) == 1
    assert len(await audit.presence()) == 1
