"""The audit log over a real server on the embedded default (SQLite): what joins, leaves,
presence, REST events, domain events and refusals leave in the realtime_* tables.

Each action's audit record is queued before the server answers it (join reply, phx_close,
presence reply, HTTP response), so the test flushes the recorder and reads the tables through
the log's read API; it never waits for the writer's timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import psycopg
import pytest

from tests.conftest import RunningServer
from tests.support.cdc import migrated_database
from tests.support.pg_server import pg_server
from tests.support.phoenix import PhoenixClient
from tests.support.wedsync_api import C, W, headers, http, joined, next_event
from wedsync_realtime.engine import audit as audit_module
from wedsync_realtime.engine.audit import AuditRecord, AuditRecorder, MemoryAuditLog
from wedsync_realtime.store.audit_postgres import PostgresAuditLog
from wedsync_realtime.store.audit_sqlite import SqliteAuditLog

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

WEDDING = f"wedding:{W}"


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


def recorder(server: RunningServer) -> AuditRecorder:
    audit = server.node.audit
    assert audit is not None
    return audit


async def flushed(server: RunningServer) -> SqliteAuditLog:
    """The server's audit log, with everything recorded so far written."""
    audit = recorder(server)
    assert await audit.flush()
    log = audit.log
    assert isinstance(log, SqliteAuditLog)
    return log


async def leave(client: PhoenixClient, channel: str, join_ref: str) -> None:
    ref = client.next_ref()
    await client.send(f"realtime:{channel}", "phx_leave", {}, ref, join_ref)
    await client.recv_until(lambda f: f.event == "phx_close" and f.topic == f"realtime:{channel}")


async def test_a_join_and_a_leave_are_a_subscription_row_with_both_times(
    server: RunningServer,
) -> None:
    sarah = await server.client("sarah", app_metadata={"tier": "professional"})
    join_ref, reply = await sarah.join(WEDDING)
    assert reply.payload["status"] == "ok"
    log = await flushed(server)
    [row] = await log.subscriptions("sarah")
    assert (row.channel, row.tier, row.max_channels_allowed) == (WEDDING, "professional", 10)
    assert row.filters == {}
    assert row.disconnected_at is None and row.last_activity == row.connected_at
    assert (await log.channels())[WEDDING] == "shared"

    await leave(sarah, WEDDING, join_ref)
    log = await flushed(server)
    [ended] = await log.subscriptions("sarah")
    assert ended.connected_at == row.connected_at
    assert ended.disconnected_at is not None and ended.disconnected_at >= ended.connected_at

    _, again = await sarah.join(WEDDING)  # a rejoin updates the same row
    assert again.payload["status"] == "ok"
    log = await flushed(server)
    [rejoined] = await log.subscriptions("sarah")
    assert rejoined.disconnected_at is None
    assert rejoined.connected_at >= ended.disconnected_at


async def test_a_tracked_presence_is_a_presence_row(server: RunningServer) -> None:
    lisa = await server.client("lisa", app_metadata={"tier": "professional"})
    _, reply = await lisa.join(WEDDING, {"presence": {"key": "lisa", "enabled": True}})
    assert reply.payload["status"] == "ok"
    meta = {
        "status": "online",
        "current_page": "/forms/catering",
        "device_type": "desktop",
        "is_typing": True,
    }
    ref = lisa.next_ref()
    body = {"type": "presence", "event": "track", "payload": meta}
    await lisa.send(f"realtime:{WEDDING}", "presence", body, ref, "1")
    assert (await lisa.reply_to(ref)).payload["status"] == "ok"
    log = await flushed(server)
    [row] = await log.presence("lisa")
    assert (row.channel, row.status, row.current_page, row.device_type, row.is_typing) == (
        WEDDING,
        "online",
        "/forms/catering",
        "desktop",
        True,
    )
    assert row.presence_data == meta

    ref = lisa.next_ref()
    untrack = {"type": "presence", "event": "untrack", "payload": {}}
    await lisa.send(f"realtime:{WEDDING}", "presence", untrack, ref, "1")
    assert (await lisa.reply_to(ref)).payload["status"] == "ok"
    log = await flushed(server)
    [gone] = await log.presence("lisa")
    assert (gone.status, gone.current_page, gone.is_typing) == ("offline", None, False)


async def test_a_rest_event_is_an_event_row_with_its_counts(server: RunningServer) -> None:
    sarah = await joined(server, "sarah", WEDDING)
    lisa = await joined(server, "lisa", WEDDING)
    event = {
        "event_type": "timeline_changed",
        "channel_name": WEDDING,
        "payload": {"message": "Ceremony moved to 4 PM"},
        "priority": 10,
        "expires_in_minutes": 30,
    }
    mike = headers(server, "mike", app_metadata={"tier": "professional"})
    async with http(server) as api:
        sent = await api.post("/api/realtime/events", json=event, headers=mike)
        assert sent.status_code == 200, sent.text
        assert sent.json()["subscriber_count"] == 2
        for client in (sarah, lisa):
            await next_event(client, "timeline_changed", WEDDING)
    log = await flushed(server)
    [row] = await log.events(event_type="timeline_changed")
    assert (row.channel, row.user_id, row.payload, row.priority) == (
        WEDDING,
        "mike",
        {"message": "Ceremony moved to 4 PM"},
        10,
    )
    assert (row.broadcast_count, row.delivered_count, row.failed_count) == (1, 2, 0)
    assert row.expires_at - row.created_at == pytest.approx(30 * 60, abs=0.002)


async def test_a_domain_event_is_an_event_row(server: RunningServer) -> None:
    sarah = await joined(server, "sarah", f"core_fields:{C}")
    async with http(server) as api:
        written = await api.put(
            f"/api/wedsync/couples/{C}/core-fields/guest_count",
            json={"value": 150, "version": 1},
            headers=headers(server, "emma"),
        )
        assert written.status_code == 200, written.text
    await next_event(sarah, "core_fields_updated", f"core_fields:{C}")
    log = await flushed(server)
    [row] = await log.events(event_type="core_fields_updated")
    assert row.payload["field_name"] == "guest_count" and row.payload["new_value"] == 150
    assert row.delivered_count == 1  # Sarah, the one subscriber on this node
    assert row.broadcast_count > 1 and row.failed_count == 0  # the couple's, the suppliers'...
    assert row.channel is not None


async def test_a_denied_join_is_an_access_denied_event(server: RunningServer) -> None:
    rita = await server.client("rita")
    _, reply = await rita.join(WEDDING)
    assert reply.payload["status"] == "error"
    log = await flushed(server)
    [row] = await log.events(event_type="access_denied")
    assert (row.channel, row.user_id) == (WEDDING, "rita")
    assert row.payload["action"] == "subscribe" and row.payload["role"] == "authenticated"
    assert (row.broadcast_count, row.delivered_count) == (0, 0)
    assert await log.subscriptions("rita") == []


async def test_housekeeping_writes_a_metrics_snapshot(server: RunningServer) -> None:
    await joined(server, "sarah", WEDDING)
    audit = recorder(server)
    audit._metrics_at = float("-inf")  # due now, whatever the sweeper did already
    audit.housekeeping()
    log = await flushed(server)
    [connections] = await log.metrics("active_connections", limit=1)
    assert connections.value == 1.0 and connections.unit == "connections"
    assert await log.metrics("total_channels", limit=1)


@pytest.mark.postgres
async def test_in_production_mode_the_rows_are_in_postgresql(
    server_factory: ServerFactory,
) -> None:
    with migrated_database("wedsync_audit_it") as url:
        async with pg_server(server_factory, url) as server:
            client = await server.client("6f1c1a52-0000-4000-8000-00000000000a")
            _, reply = await client.join("room1")  # a public channel: open to the caller
            assert reply.payload["status"] == "ok"
            _, refused = await client.join("private-room", {"private": True})
            assert refused.payload["status"] == "error"
            audit = recorder(server)
            assert await audit.flush()
            assert isinstance(audit.log, PostgresAuditLog)
            with psycopg.connect(url) as conn:
                rows = conn.execute(
                    "SELECT s.user_id, c.name, c.type, s.disconnected_at"
                    " FROM realtime.realtime_subscriptions s"
                    " JOIN realtime.realtime_channels c ON c.id = s.channel_id"
                ).fetchall()
                denied = conn.execute(
                    "SELECT e.user_id, c.name FROM realtime.realtime_events e"
                    " JOIN realtime.realtime_channels c ON c.id = e.channel_id"
                    " WHERE e.event_type = 'access_denied'"
                ).fetchall()
            user = "6f1c1a52-0000-4000-8000-00000000000a"
            assert rows == [(user, "room1", "shared", None)]
            assert denied == [(user, "private-room")]


async def test_wedsync_audit_false_records_nothing(server_factory: ServerFactory) -> None:
    server = await server_factory(demo=True, audit=False)
    assert server.node.audit is None
    sarah = await joined(server, "sarah", WEDDING)  # joins work without it
    assert sarah is not None


class HangingLog(MemoryAuditLog):
    """A database that never answers a write."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()

    async def write(self, channels: Mapping[str, str], records: Sequence[AuditRecord]) -> None:
        self.writing.set()
        await asyncio.Event().wait()


async def test_a_dead_audit_database_never_blocks_joins_or_broadcasts(
    monkeypatch: pytest.MonkeyPatch, server_factory: ServerFactory
) -> None:
    # The server's stop gives up on the log fast (monkeypatch is undone after the server stops:
    # it is set up first).
    monkeypatch.setattr(audit_module, "CLOSE_TIMEOUT_S", 0.1)
    server = await server_factory(demo=True)
    audit = recorder(server)
    audit.log = hanging = HangingLog()
    audit.event("before", None, {})
    stuck = asyncio.create_task(audit.flush())  # a write that never ends, holding the writer
    await asyncio.wait_for(hanging.writing.wait(), 5)
    try:
        sarah = await joined(server, "sarah", WEDDING)
        emma = await joined(server, "emma", WEDDING)
        for n in range(3):
            ref = sarah.next_ref()
            body = {"type": "broadcast", "event": "note", "payload": {"n": n}}
            await sarah.send(f"realtime:{WEDDING}", "broadcast", body, ref, "1")
            received = await next_event(emma, "note", WEDDING)
            assert received["payload"] == {"n": n}
        rita = await server.client("rita")
        _, reply = await rita.join(WEDDING)
        assert reply.payload["status"] == "error"
        assert audit.queued >= 3  # the joins and the denial wait in the queue
        assert not stuck.done()
    finally:
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
