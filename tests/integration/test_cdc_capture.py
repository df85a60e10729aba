"""Change capture against a real PostgreSQL: streaming, the durable slot, acknowledgement after
hand-off, reconnection after the connection or the server goes away, and oversized rows.

One migrated database per module (dropped with its slots afterwards); one slot per test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
import pytest

from tests.support.cdc import (
    admin_connection,
    confirmed_flush_lsn,
    drop_test_slot,
    migrated_database,
    unique_slot,
    write,
)
from wedsync_realtime.cdc.capture import (
    CaptureConfig,
    CaptureState,
    CaptureStatus,
    ChangeCapture,
)
from wedsync_realtime.cdc.changes import ChangeAction, Transaction
from wedsync_realtime.cdc.subscriptions import Identity, PostgresChanges

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TIMEOUT = 20.0

_ITEMS = """
CREATE TABLE public.cdc_items (
    id bigint PRIMARY KEY,
    title text,
    done boolean NOT NULL DEFAULT false,
    tags integer[],
    meta jsonb
);
ALTER TABLE public.cdc_items REPLICA IDENTITY FULL;
GRANT SELECT ON public.cdc_items TO service_role, authenticated;
ALTER PUBLICATION wedsync_realtime ADD TABLE public.cdc_items;
"""


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with migrated_database("wedsync_cdc_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_ITEMS)
        yield url


class Collector:
    """A consumer that records transactions and lets a test await them."""

    def __init__(self) -> None:
        self.transactions: list[Transaction] = []
        self.statuses: list[CaptureStatus] = []
        self._changed = asyncio.Condition()
        self.gate: asyncio.Event | None = None  # set: the consumer waits for it
        self.fail_next = 0

    async def __call__(self, transactions: Sequence[Transaction]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("consumer failure injected by the test")
        async with self._changed:
            self.transactions.extend(transactions)
            self._changed.notify_all()

    def on_status(self, status: CaptureStatus) -> None:
        self.statuses.append(status)

    @property
    def changes(self) -> list[Any]:
        return [c for t in self.transactions for c in t.changes]

    async def wait(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(reached(), timeout)


@pytest.fixture
async def capture_factory(
    db_url: str,
) -> AsyncIterator[Callable[..., Awaitable[tuple[ChangeCapture, Collector]]]]:
    started: list[ChangeCapture] = []

    async def factory(
        slot: str, collector: Collector | None = None
    ) -> tuple[ChangeCapture, Collector]:
        collector = collector or Collector()
        config = CaptureConfig(dsn=db_url, slot_name=slot, backoff_min_s=0.05, backoff_max_s=0.5)
        capture = ChangeCapture(config, collector, collector.on_status)
        started.append(capture)
        await capture.start()
        await capture.wait_streaming(TIMEOUT)
        return capture, collector

    try:
        yield factory
    finally:
        for capture in started:
            await capture.stop()
        for slot in {capture.config.slot_name for capture in started}:
            await drop_test_slot(db_url, slot)


async def test_streams_insert_update_delete_by_transaction(
    db_url: str, capture_factory: Callable[..., Awaitable[tuple[ChangeCapture, Collector]]]
) -> None:
    _, got = await capture_factory(unique_slot())
    await write(
        db_url,
        "INSERT INTO cdc_items (id, title, tags, meta) VALUES (1, 'one', '{1,2}', '{\"k\": 1}')",
        "INSERT INTO cdc_items (id, title) VALUES (2, 'two')",
    )
    await write(db_url, "UPDATE cdc_items SET title = 'uno', done = true WHERE id = 1")
    await write(db_url, "DELETE FROM cdc_items WHERE id = 2")
    await got.wait(lambda: len(got.changes) >= 4)

    first, update, delete = got.transactions[0], got.transactions[1], got.transactions[2]
    assert [c.type for c in first.changes] == [ChangeAction.INSERT, ChangeAction.INSERT]
    insert = first.changes[0]
    assert (insert.schema, insert.table) == ("public", "cdc_items")
    assert [(c.name, c.type) for c in insert.columns] == [
        ("id", "int8"),
        ("title", "text"),
        ("done", "bool"),
        ("tags", "_int4"),
        ("meta", "jsonb"),
    ]
    assert insert.record == {
        "id": "1",
        "title": "one",
        "done": "f",
        "tags": "{1,2}",
        "meta": '{"k": 1}',
    }
    assert insert.old_record is None
    assert isinstance(insert.commit_timestamp, datetime) and insert.commit_timestamp.tzinfo
    assert first.commit_lsn < first.end_lsn <= update.commit_lsn < delete.commit_lsn

    (changed,) = update.changes
    assert changed.type is ChangeAction.UPDATE
    assert changed.record is not None and changed.record["title"] == "uno"
    assert changed.old_record is not None and changed.old_record["title"] == "one"
    (deleted,) = delete.changes
    assert deleted.type is ChangeAction.DELETE and deleted.record is None
    assert deleted.old_record is not None and deleted.old_record["title"] == "two"
    await write(db_url, "DELETE FROM cdc_items")


async def test_durable_slot_delivers_what_was_committed_while_stopped(
    db_url: str, capture_factory: Callable[..., Awaitable[tuple[ChangeCapture, Collector]]]
) -> None:
    slot = unique_slot()
    capture, got = await capture_factory(slot)
    await write(db_url, "INSERT INTO cdc_items (id, title) VALUES (10, 'before')")
    await got.wait(lambda: len(got.changes) == 1)
    await capture.wait_acked(got.transactions[-1].end_lsn, TIMEOUT)
    await capture.stop()

    for n in (11, 12, 13):
        await write(
            db_url, (f"INSERT INTO cdc_items (id, title) VALUES ({n}, %s)", ("while down",))
        )

    _, again = await capture_factory(slot)
    await again.wait(lambda: len(again.changes) >= 3)
    # Exactly the three missed changes, in commit order; the acknowledged one is not repeated.
    assert [c.record["id"] for c in again.changes if c.record] == ["11", "12", "13"]
    await write(db_url, "DELETE FROM cdc_items")


async def test_acknowledges_only_after_the_consumer_returned(
    db_url: str, capture_factory: Callable[..., Awaitable[tuple[ChangeCapture, Collector]]]
) -> None:
    slot = unique_slot()
    collector = Collector()
    collector.gate = asyncio.Event()
    capture, got = await capture_factory(slot, collector)
    start = await confirmed_flush_lsn(db_url, slot)
    await write(db_url, "INSERT INTO cdc_items (id, title) VALUES (20, 'held')")
    # The consumer holds the transaction: the slot must not have moved past it.
    for _ in range(20):
        await asyncio.sleep(0.05)
        assert await confirmed_flush_lsn(db_url, slot) == start
    assert got.transactions == []

    collector.gate.set()
    await got.wait(lambda: len(got.transactions) == 1)
    end = got.transactions[0].end_lsn
    await capture.wait_acked(end, TIMEOUT)
    for _ in range(200):  # the server applies the status update asynchronously
        if await confirmed_flush_lsn(db_url, slot) >= end:
            break
        await asyncio.sleep(0.02)
    assert await confirmed_flush_lsn(db_url, slot) >= end
    await write(db_url, "DELETE FROM cdc_items")


async def test_consumer_failure_is_not_acknowledged_and_is_streamed_again(
    db_url: str, capture_factory: Callable[..., Awaitable[tuple[ChangeCapture, Collector]]]
) -> None:
    collector = Collector()
    collector.fail_next = 1
    _, got = await capture_factory(unique_slot(), collector)
    await write(db_url, "INSERT INTO cdc_items (id, title) VALUES (30, 'retry me')")
    await got.wait(lambda: len(got.transactions) == 1)
    assert got.changes[0].record is not None and got.changes[0].record["id"] == "30"
    assert any(
        s.state is CaptureState.RECONNECTING and "consumer failed" in (s.error or "")
        for s in got.statuses
    )
    assert got.statuses[-1].state is CaptureState.STREAMING
    await write(db_url, "DELETE FROM cdc_items")


async def _pg_ctlcluster(cluster: str, action: str) -> int:
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", action
    )
    return await asyncio.wait_for(process.wait(), 120)


def _terminate(db_url: str, application_name: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (application_name,),
        ).fetchall()
    return len(rows)


class Inbox:
    """A postgres_changes subscriber: payloads and system messages, awaitable."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.system: list[dict[str, Any]] = []
        self._event = asyncio.Event()

    def deliver(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)
        self._event.set()

    def on_system(self, payload: dict[str, Any]) -> None:
        self.system.append(payload)
        self._event.set()

    async def wait(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async def reached() -> None:
            while not predicate():
                self._event.clear()
                await self._event.wait()

        await asyncio.wait_for(reached(), timeout)


SERVICE = Identity.from_claims({"role": "service_role", "sub": "service"})


@pytest.fixture
async def registry(db_url: str) -> AsyncIterator[PostgresChanges]:
    changes = PostgresChanges(
        CaptureConfig(dsn=db_url, slot_name=unique_slot(), backoff_min_s=0.05, backoff_max_s=0.5)
    )
    await changes.start()
    try:
        await changes.capture.wait_streaming(TIMEOUT)
        yield changes
    finally:
        await changes.stop()
        await drop_test_slot(db_url, changes.config.slot_name)


async def test_lost_connection_tells_subscribers_and_delivers_what_was_committed_meanwhile(
    db_url: str, registry: PostgresChanges
) -> None:
    inbox = Inbox()
    await registry.subscribe(
        "socket-1",
        "realtime:items",
        [{"event": "*", "schema": "public", "table": "cdc_items"}],
        SERVICE,
        inbox.deliver,
        inbox.on_system,
    )
    await inbox.wait(lambda: len(inbox.system) == 1)
    assert inbox.system[0] == {
        "extension": "postgres_changes",
        "status": "ok",
        "message": "Subscribed to PostgreSQL",
    }
    # Block reconnection until a write is committed, so it lands while capture is away.
    gate = asyncio.Event()
    original = registry.capture._session

    async def session_after_gate() -> None:
        await gate.wait()
        await original()

    registry.capture._session = session_after_gate  # type: ignore[method-assign]
    assert _terminate(db_url, registry.config.application_name) == 1
    await inbox.wait(lambda: len(inbox.system) == 2)
    assert inbox.system[1]["status"] == "error"
    assert "reconnecting" in inbox.system[1]["message"]

    await write(db_url, "INSERT INTO cdc_items (id, title) VALUES (40, 'meanwhile')")
    gate.set()
    await inbox.wait(lambda: len(inbox.payloads) == 1 and len(inbox.system) == 3)
    assert inbox.system[2]["status"] == "ok"
    assert inbox.payloads[0]["data"]["record"]["id"] == 40
    await write(db_url, "DELETE FROM cdc_items")


@pytest.mark.skipif(
    os.environ.get("CI") != "true" and os.environ.get("WEDSYNC_TEST_PG_RESTART") != "1",
    reason="restarts the machine's PostgreSQL, which other test runs share: "
    "runs in CI or with WEDSYNC_TEST_PG_RESTART=1",
)
async def test_postgresql_restart_is_survived(db_url: str, registry: PostgresChanges) -> None:
    inbox = Inbox()
    await registry.subscribe(
        "socket-1",
        "realtime:items",
        [{"event": "INSERT", "schema": "public", "table": "cdc_items"}],
        SERVICE,
        inbox.deliver,
        inbox.on_system,
    )
    await inbox.wait(lambda: len(inbox.system) == 1)
    (cluster,) = os.listdir("/etc/postgresql")
    try:
        assert await _pg_ctlcluster(cluster, "restart") == 0
        await inbox.wait(lambda: any(s["status"] == "error" for s in inbox.system))
        await write(db_url, "INSERT INTO cdc_items (id, title) VALUES (50, 'after restart')")
        await inbox.wait(lambda: len(inbox.payloads) == 1, timeout=60)
        assert inbox.payloads[0]["data"]["record"]["id"] == 50
        assert inbox.system[-1]["status"] == "ok"
    finally:
        if await _pg_ctlcluster(cluster, "status") != 0:
            await _pg_ctlcluster(cluster, "start")
        admin_connection().close()
    await write(db_url, "DELETE FROM cdc_items")


async def test_oversized_row_is_sent_without_its_large_values_and_does_not_stall(
    db_url: str, registry: PostgresChanges
) -> None:
    inbox = Inbox()
    await registry.subscribe(
        "socket-1",
        "realtime:items",
        [{"event": "INSERT", "schema": "public", "table": "cdc_items"}],
        SERVICE,
        inbox.deliver,
        inbox.on_system,
    )
    big = "x" * (1_200_000)
    await write(db_url, ("INSERT INTO cdc_items (id, title, meta) VALUES (60, %s, '{}')", (big,)))
    await write(db_url, "INSERT INTO cdc_items (id, title) VALUES (61, 'small')")
    await inbox.wait(lambda: len(inbox.payloads) == 2)
    large, small = (p["data"] for p in inbox.payloads)
    assert large["errors"] == ["Error 413: Payload Too Large"]
    assert "title" not in large["record"]
    assert large["record"]["id"] == 60 and large["record"]["meta"] == {}
    assert [c["name"] for c in large["columns"]] == ["id", "title", "done", "tags", "meta"]
    assert small["errors"] is None and small["record"]["title"] == "small"
    await write(db_url, "DELETE FROM cdc_items")
