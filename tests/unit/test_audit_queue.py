"""`AuditRecorder`: what the engine's calls become, the bounded queue, and the batch writer.

The log under the recorder is the reference `MemoryAuditLog`, or a scripted stand-in that fails
or hangs on demand. Clocks are fake; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from wedsync_realtime.engine import audit as audit_module
from wedsync_realtime.engine.audit import (
    ACCESS_DENIED,
    AuditRecord,
    AuditRecorder,
    EventRecord,
    MemoryAuditLog,
    MetricRecord,
    PresenceRecord,
    Subscription,
    SubscriptionActive,
    SubscriptionJoined,
    SubscriptionLeft,
    millis,
    presence_status,
)
from wedsync_realtime.engine.history import Published
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.settings import Settings, SettingsError
from wedsync_realtime.wedding.events import DomainEvent
from wedsync_realtime.wedding.router import EventRouter

START = 1_767_261_600.0  # 2026-01-01T10:00:00Z
TOPIC = "realtime:wedding:w1"


class Clocks:
    def __init__(self) -> None:
        self.mono = 1_000.0
        self.wall = START

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class ScriptedLog(MemoryAuditLog):
    """A memory log that records each batch, fails while `failing`, and can be held."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[AuditRecord]] = []
        self.channel_maps: list[dict[str, str]] = []
        self.failing = False
        self.hold: asyncio.Event | None = None
        self.writing = asyncio.Event()
        self.wrote = asyncio.Event()
        self.pruned: list[float] = []
        self.pruning = asyncio.Event()

    async def write(self, channels: Mapping[str, str], records: Sequence[AuditRecord]) -> None:
        self.writing.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.failing:
            raise ConnectionError("database is down")
        self.batches.append(list(records))
        self.channel_maps.append(dict(channels))
        await super().write(channels, records)
        self.wrote.set()

    async def prune(self, before: float) -> int:
        self.pruned.append(before)
        self.pruning.set()
        return await super().prune(before)


def recorder(log: MemoryAuditLog, clocks: Clocks, **options: Any) -> AuditRecorder:
    return AuditRecorder(log, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall, **options)


def note(recorder: AuditRecorder, n: int) -> None:
    recorder.event("e", None, {"n": n})


def numbers(records: Sequence[AuditRecord]) -> list[int]:
    return [r.payload["n"] for r in records if isinstance(r, EventRecord)]


# -- what the calls become ---------------------------------------------------------------------


async def test_a_join_and_a_leave_are_a_subscription_with_both_times() -> None:
    clocks, log = Clocks(), MemoryAuditLog()
    rec = recorder(log, clocks, channel_type=lambda name: "shared")
    binding = {"event": "INSERT", "schema": "public", "table": "forms"}
    rec.joined("c1", TOPIC, "emma", tier="professional", max_channels=10, bindings=[binding])
    clocks.advance(90)
    rec.left("c1", TOPIC)
    assert await rec.flush()
    assert await log.subscriptions() == [
        Subscription(
            "emma",
            "wedding:w1",
            {"postgres_changes": [binding]},
            "professional",
            10,
            millis(START),
            millis(START),
            millis(START + 90),
        )
    ]
    assert await log.channels() == {"wedding:w1": "shared"}


async def test_a_users_connections_on_one_channel_are_one_subscription() -> None:
    clocks = Clocks()
    rec = recorder(MemoryAuditLog(), clocks)
    rec.joined("tab1", TOPIC, "emma", tier="free", max_channels=3)
    rec.joined("tab2", TOPIC, "emma", tier="free", max_channels=3)
    rec.left("tab1", TOPIC)
    assert [type(r) for r in rec._queue] == [SubscriptionJoined]
    rec.left("tab2", TOPIC)
    rec.left("tab2", TOPIC)  # twice, or never joined: ignored
    rec.left("tab3", TOPIC)
    assert [type(r) for r in rec._queue] == [SubscriptionJoined, SubscriptionLeft]


async def test_activity_is_written_at_most_once_a_minute_per_subscription() -> None:
    clocks = Clocks()
    rec = recorder(MemoryAuditLog(), clocks)
    rec.joined("c1", TOPIC, "emma", tier="free", max_channels=3)
    rec.activity("c1", TOPIC)
    clocks.advance(59)
    rec.activity("c1", TOPIC)
    rec.activity("stranger", TOPIC)  # not joined: nothing
    assert [type(r) for r in rec._queue] == [SubscriptionJoined]
    clocks.advance(1)
    rec.activity("c1", TOPIC)
    rec.activity("c1", TOPIC)
    assert [type(r) for r in rec._queue] == [SubscriptionJoined, SubscriptionActive]
    assert rec._queue[-1] == SubscriptionActive("emma", "wedding:w1", millis(START + 60))


def test_presence_statuses_the_table_allows() -> None:
    assert presence_status("online", hidden=False) == "online"
    assert presence_status("idle", hidden=False) == "away"
    assert presence_status("away", hidden=False) == "away"
    assert presence_status("busy", hidden=False) == "busy"
    assert presence_status("busy", hidden=True) == "offline"
    assert presence_status(None, hidden=False) == "online"
    assert presence_status("dancing", hidden=False) == "online"


async def test_presence_rows_show_the_best_tab_then_offline_when_all_leave() -> None:
    clocks = Clocks()
    rec = recorder(MemoryAuditLog(), clocks)
    meta = {"status": "online", "current_page": "/a", "device_type": "phone", "is_typing": True}
    rec.presence("tab1", TOPIC, "emma", meta, status="idle", last_activity=START - 200)
    first = rec._queue[-1]
    assert isinstance(first, PresenceRecord)
    assert (first.status, first.current_page, first.device_type, first.is_typing) == (
        "away",
        "/a",
        "unknown",
        True,
    )
    assert first.last_activity == millis(START - 200) and first.presence_data == meta
    second = {"status": "online", "device_type": "tablet"}
    rec.presence("tab2", TOPIC, "emma", second)
    assert rec._queue[-1] == PresenceRecord(
        "emma", "wedding:w1", "online", None, False, "tablet", millis(START), second
    )
    clocks.advance(30)
    rec.presence("tab2", TOPIC, "emma", None)  # tab2 untracked: tab1 speaks again
    assert rec._queue[-1] == first
    rec.presence("tab1", TOPIC, "emma", None)  # last one: offline, last active then (away)
    last = rec._queue[-1]
    assert isinstance(last, PresenceRecord)
    assert (last.status, last.current_page, last.is_typing) == ("offline", None, False)
    assert last.last_activity == millis(START - 200)
    count = len(rec._queue)
    rec.presence("tab1", TOPIC, "emma", None)  # nothing tracked: nothing written
    assert len(rec._queue) == count


async def test_an_active_presence_leaving_was_last_active_now() -> None:
    clocks = Clocks()
    rec = recorder(MemoryAuditLog(), clocks)
    rec.presence("tab1", TOPIC, "emma", {"status": "online"}, last_activity=START)
    clocks.advance(45)
    rec.presence("tab1", TOPIC, "emma", None)
    last = rec._queue[-1]
    assert isinstance(last, PresenceRecord)
    assert (last.status, last.last_activity) == ("offline", millis(START + 45))


async def test_hidden_presence_is_offline() -> None:
    rec = recorder(MemoryAuditLog(), Clocks())
    rec.presence("tab1", TOPIC, "emma", {"status": "online", "appear_offline": True}, hidden=True)
    row = rec._queue[-1]
    assert isinstance(row, PresenceRecord) and row.status == "offline"


async def test_events_clamp_priority_and_expire_in_five_minutes_by_default() -> None:
    rec = recorder(MemoryAuditLog(), Clocks())
    rec.event("x", "wedding:w1", {}, priority=99, broadcast_count=-1)
    rec.event("y", None, {}, priority=0, expires_in_s=3600)
    urgent, low = rec._queue
    assert isinstance(urgent, EventRecord) and isinstance(low, EventRecord)
    assert (urgent.priority, urgent.broadcast_count) == (10, 0)
    assert urgent.expires_at == millis(START + 300)
    assert (low.priority, low.expires_at) == (1, millis(START + 3600))


async def test_a_refused_access_is_an_event_on_the_channel() -> None:
    log = MemoryAuditLog()
    rec = recorder(log, Clocks(), channel_type=lambda name: "private")
    rec.access(ACCESS_DENIED, "realtime:supplier:s1", "rita", {"reason": "not connected"})
    assert await rec.flush()
    [row] = await log.events()
    assert (row.event_type, row.channel, row.user_id) == (ACCESS_DENIED, "supplier:s1", "rita")
    assert row.payload == {"reason": "not connected"}
    assert (row.broadcast_count, row.delivered_count, row.failed_count) == (0, 0, 0)
    assert await log.channels() == {"supplier:s1": "private"}


async def test_a_failing_channel_type_makes_a_shared_channel() -> None:
    def broken(name: str) -> str:
        raise KeyError(name)

    log = MemoryAuditLog()
    rec = recorder(log, Clocks(), channel_type=broken)
    rec.event("x", "odd", {})
    assert await rec.flush()
    assert await log.channels() == {"odd": "shared"}


# -- metrics snapshots and pruning ---------------------------------------------------------------


async def test_housekeeping_snapshots_the_figures_once_a_minute() -> None:
    clocks, log = Clocks(), MemoryAuditLog()
    calls = 0

    def figures() -> list[tuple[str, float, str | None, str | None]]:
        nonlocal calls
        calls += 1
        return [("active_connections", 3, "connections", None), ("ms", 0.5, "ms", "wedding:w1")]

    rec = recorder(log, clocks, figures=figures)
    rec.housekeeping()
    clocks.advance(30)
    rec.housekeeping()
    assert calls == 1
    clocks.advance(30)
    rec.housekeeping()
    assert calls == 2
    assert await rec.flush()
    rows = await log.metrics("active_connections")
    assert rows == [
        MetricRecord("active_connections", 3.0, "connections", None, None, millis(START + 60)),
        MetricRecord("active_connections", 3.0, "connections", None, None, millis(START)),
    ]
    assert (await log.metrics("ms"))[0].channel == "wedding:w1"


async def test_failing_figures_do_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    def figures() -> list[tuple[str, float, str | None, str | None]]:
        raise RuntimeError("boom")

    rec = recorder(MemoryAuditLog(), Clocks(), figures=figures)
    with caplog.at_level(logging.ERROR, "wedsync_realtime.engine.audit"):
        rec.housekeeping()
    assert rec.queued == 0
    assert "reading the node's figures failed" in caplog.text


async def test_prune_drops_rows_older_than_the_retention() -> None:
    clocks, log = Clocks(), ScriptedLog()
    rec = recorder(log, clocks, retention_days=1)
    note(rec, 1)
    assert await rec.flush()
    clocks.advance(86_400 + 1)
    note(rec, 2)
    assert await rec.flush()
    assert await rec.prune() == 1
    assert log.pruned == [millis(START + 1)]
    assert numbers(await log.events()) == [2]


async def test_the_writer_prunes_when_housekeeping_says_it_is_due() -> None:
    clocks, log = Clocks(), ScriptedLog()
    rec = recorder(log, clocks)
    rec.start()
    try:
        rec.housekeeping()  # first tick: a prune is due at once
        await asyncio.wait_for(log.pruning.wait(), 5)
        assert log.pruned == [millis(START - 30 * 86_400)]
    finally:
        await rec.close()


async def test_a_failing_prune_does_not_raise() -> None:
    class Broken(MemoryAuditLog):
        async def prune(self, before: float) -> int:
            raise ConnectionError("down")

    assert await recorder(Broken(), Clocks()).prune() == 0


# -- the queue and the writer --------------------------------------------------------------------


async def test_records_are_written_in_order_in_batches() -> None:
    log = ScriptedLog()
    rec = recorder(log, Clocks(), batch_size=3)
    for n in range(7):
        note(rec, n)
    assert await rec.flush()
    assert [numbers(batch) for batch in log.batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert rec.written == 7 and rec.queued == 0


async def test_a_full_queue_drops_the_oldest_counts_them_and_logs_once_per_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = ScriptedLog()
    rec = recorder(log, Clocks(), queue_max=3)
    with caplog.at_level(logging.WARNING, "wedsync_realtime.engine.audit"):
        for n in range(6):
            note(rec, n)
        assert rec.dropped == 3 and rec.queued == 3
        full = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
        assert len(full) == 1
        assert await rec.flush()
        assert "3 records were dropped while the queue was full" in caplog.text
        for n in range(6, 10):  # a second burst is logged again
            note(rec, n)
        full = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
        assert len(full) == 2
    assert numbers(log.batches[0]) == [3, 4, 5]


async def test_a_failing_log_never_raises_and_keeps_the_batch_for_a_retry() -> None:
    log = ScriptedLog()
    rec = recorder(log, Clocks(), batch_size=2)
    log.failing = True
    for n in range(3):
        note(rec, n)
    assert not await rec.flush()
    assert rec.queued == 3 and rec.dropped == 0
    note(rec, 3)  # the engine carries on recording
    log.failing = False
    assert await rec.flush()
    assert numbers(await log.events(limit=10))[::-1] == [0, 1, 2, 3]


async def test_a_batch_that_keeps_failing_is_dropped_after_max_attempts() -> None:
    log = ScriptedLog()
    rec = recorder(log, Clocks(), batch_size=2, max_attempts=3)
    log.failing = True
    for n in range(3):
        note(rec, n)
    assert not await rec.flush()
    assert not await rec.flush()
    assert rec.dropped == 0
    assert not await rec.flush()  # third attempt: the batch [0, 1] goes
    assert rec.dropped == 2 and rec.queued == 1
    log.failing = False
    assert await rec.flush()
    assert numbers(await log.events()) == [2]


async def test_a_retried_batch_stays_within_the_bound() -> None:
    """Records that came in while a batch was being written fill the queue: the failed
    batch's oldest records are the ones dropped."""
    log = ScriptedLog()
    rec = recorder(log, Clocks(), queue_max=4, batch_size=3)
    for n in range(3):
        note(rec, n)
    log.failing = True
    log.hold = asyncio.Event()
    flushing = asyncio.create_task(rec.flush())
    await asyncio.wait_for(log.writing.wait(), 5)  # the batch is off the queue, being written
    for n in range(3, 6):
        note(rec, n)
    log.hold.set()
    assert not await flushing
    assert rec.dropped == 2
    log.failing, log.hold = False, None
    assert await rec.flush()
    assert sorted(numbers(await log.events(limit=10))) == [2, 3, 4, 5]


async def test_the_background_writer_wakes_when_a_batch_is_full() -> None:
    log = ScriptedLog()
    rec = recorder(log, Clocks(), batch_size=3, flush_every_s=3600)
    rec.start()
    try:
        for n in range(3):
            note(rec, n)
        await asyncio.wait_for(log.wrote.wait(), 5)
        assert numbers(log.batches[0]) == [0, 1, 2]
    finally:
        await rec.close()


async def test_close_writes_what_is_queued() -> None:
    log = ScriptedLog()
    rec = recorder(log, Clocks(), flush_every_s=3600)
    rec.start()
    note(rec, 1)
    await rec.close()
    assert numbers(await log.events()) == [1]
    assert rec.queued == 0


async def test_close_with_a_dead_log_gives_up_and_counts_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = ScriptedLog()
    log.failing = True
    rec = recorder(log, Clocks(), batch_size=1)
    for n in range(3):
        note(rec, n)
    with caplog.at_level(logging.ERROR, "wedsync_realtime.engine.audit"):
        await rec.close()
    assert rec.queued == 0 and rec.dropped == 3
    assert "2 records not written at shutdown" in caplog.text


async def test_close_with_a_hung_log_returns_after_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer is stuck in a write the database never answers, more records wait: closing
    gives up after its timeout and counts both as dropped."""
    monkeypatch.setattr(audit_module, "CLOSE_TIMEOUT_S", 0.05)
    log = ScriptedLog()
    log.hold = asyncio.Event()  # never set
    rec = recorder(log, Clocks(), batch_size=1)
    rec.start()
    note(rec, 1)  # a full batch: the writer takes it and hangs
    await asyncio.wait_for(log.writing.wait(), 5)
    note(rec, 2)
    await asyncio.wait_for(rec.close(), 5)
    assert rec.dropped == 2 and rec.queued == 0
    assert log.batches == []


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AuditRecorder(MemoryAuditLog(), queue_max=0)


def test_settings_switch_the_audit_log_off_and_set_its_retention() -> None:
    default = Settings.from_env({})
    assert default.audit is True and default.audit_retention_days == 30
    chosen = Settings.from_env({"WEDSYNC_AUDIT": "off", "WEDSYNC_AUDIT_RETENTION_DAYS": "7.5"})
    assert chosen.audit is False and chosen.audit_retention_days == 7.5
    with pytest.raises(SettingsError, match="WEDSYNC_AUDIT_RETENTION_DAYS"):
        Settings.from_env({"WEDSYNC_AUDIT_RETENTION_DAYS": "0"})
    with pytest.raises(SettingsError, match="WEDSYNC_AUDIT"):
        Settings.from_env({"WEDSYNC_AUDIT": "maybe"})


class ScriptedPublisher:
    """Publishes nowhere: `delivered` local deliveries per channel, a duplicate on `repeat`,
    an error on `broken`."""

    def __init__(self) -> None:
        self.delivered = {"couple:c1": 2, "core_fields:c1": 3, "supplier:s1:clients": 1}

    async def publish(
        self,
        message: OutboundBroadcast,
        exclude: str | None = None,
        *,
        message_id: str | None = None,
    ) -> Published:
        channel = message.topic.removeprefix("realtime:")
        if channel == "broken":
            raise ConnectionError("history is down")
        if channel == "repeat":
            return Published(message_id or "", None, duplicate=True)
        return Published(message_id or "", None, delivered=self.delivered.get(channel, 0))


async def test_each_routed_domain_event_is_one_event_row_with_its_counts() -> None:
    log = MemoryAuditLog()
    rec = recorder(log, Clocks())
    router = EventRouter(ScriptedPublisher(), audit=rec)
    field = DomainEvent(
        "core_fields_updated",
        ("couple:c1", "core_fields:c1", "supplier:s1:clients", "repeat", "broken"),
        {"couple_id": "c1", "field_name": "venue_name", "version": 2},
        priority=7,
    )
    notice = DomainEvent("notification_new", ("user:lisa",), {"notification_id": "n1"})
    report = await router.route([field, notice])
    assert len(report.failed) == 1
    assert await rec.flush()
    rows = {row.event_type: row for row in await log.events()}
    changed = rows["core_fields_updated"]
    assert changed.channel == "couple:c1" and changed.payload == field.payload
    assert (changed.broadcast_count, changed.delivered_count, changed.failed_count) == (3, 6, 1)
    assert changed.priority == 7 and changed.user_id is None
    assert changed.expires_at == millis(START + 300)
    new = rows["notification_new"]
    assert (new.channel, new.broadcast_count, new.delivered_count, new.failed_count) == (
        "user:lisa",
        1,
        0,
        0,
    )
