"""The node's operations counters (`engine.metrics`) with a fake clock: the messages-per-minute
sliding window, delivery time averages, error rates, the cap on tracked channels, connection
uptime and peak users; then the node's hooks feeding them (publish timing, failed publishes,
slow-consumer drops, channels, connections)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import make_settings
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.auth.policy import NameRulesPolicy
from wedsync_realtime.backends.base import AppendResult
from wedsync_realtime.backends.memory import MemoryBroker, MemoryHistory
from wedsync_realtime.engine.connection import Connection
from wedsync_realtime.engine.metrics import ChannelStats, NodeMetrics
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import CloseCode
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import ProtocolVersion


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def publish_at(metrics: NodeMetrics, clock: FakeClock, at: float, n: int = 1) -> None:
    clock.now = at
    for _ in range(n):
        metrics.published("realtime:room", at, 1, 0)


# -- messages per minute -----------------------------------------------------------------------


def test_messages_per_minute_is_a_sliding_window_of_whole_seconds() -> None:
    clock = FakeClock(0.0)
    metrics = NodeMetrics(clock)
    assert metrics.messages_per_minute() == 0
    publish_at(metrics, clock, 100.2, 3)
    publish_at(metrics, clock, 130.5, 2)
    assert metrics.messages_per_minute() == 5
    clock.now = 159.99  # second 100 is the 59th before second 159: still in
    assert metrics.messages_per_minute() == 5
    clock.now = 160.0  # second 100 has left the window
    assert metrics.messages_per_minute() == 2
    publish_at(metrics, clock, 160.5, 4)  # counted in the current second
    assert metrics.messages_per_minute() == 6
    clock.now = 219.5  # only second 160 is left
    assert metrics.messages_per_minute() == 4
    clock.now = 220.0
    assert metrics.messages_per_minute() == 0


def test_the_window_keeps_sixty_seconds_as_the_ring_wraps() -> None:
    clock = FakeClock()
    metrics = NodeMetrics(clock)
    for second in range(150):  # the ring of 60 buckets wraps twice
        publish_at(metrics, clock, 1_000 + second + 0.5, 1 + second % 3)
    # Seconds 1090..1149 of the ones published: 60 seconds, each with 1 + second % 3 messages.
    assert metrics.messages_per_minute() == sum(1 + s % 3 for s in range(90, 150))
    clock.now = 1_149 + 59.5  # only second 1149 is left
    assert metrics.messages_per_minute() == 1 + 149 % 3


def test_reading_the_rate_between_publishes_loses_nothing() -> None:
    clock = FakeClock(0.0)
    metrics = NodeMetrics(clock)
    publish_at(metrics, clock, 10.1)
    clock.now = 11.3
    assert metrics.messages_per_minute() == 1  # moves second 10 to the ring
    publish_at(metrics, clock, 11.6, 2)
    clock.now = 12.0
    assert metrics.messages_per_minute() == 3


# -- per-channel figures -----------------------------------------------------------------------


def test_average_delivery_is_the_mean_time_from_publish_start() -> None:
    clock = FakeClock(50.0)
    metrics = NodeMetrics(clock)
    assert ChannelStats().average_delivery_ms == 0.0
    clock.now = 50.002
    metrics.published("realtime:a", 50.0, 3, 0)  # 2 ms
    clock.now = 51.006
    metrics.published("realtime:a", 51.0, 3, 0)  # 6 ms
    stats = metrics.channel("realtime:a")
    assert stats is not None
    assert stats.messages == 2 and stats.deliveries == 6
    assert stats.average_delivery_ms == pytest.approx(4.0)


def test_error_rate_counts_failed_publishes_and_dropped_deliveries() -> None:
    clock = FakeClock()
    metrics = NodeMetrics(clock)
    assert ChannelStats().error_rate == 0.0
    metrics.published("realtime:a", clock.now, 10, 2)
    metrics.published("realtime:a", clock.now, 8, 0)
    metrics.publish_failed("realtime:a")
    stats = metrics.channel("realtime:a")
    assert stats is not None
    assert (stats.messages, stats.deliveries, stats.dropped, stats.failed) == (2, 18, 2, 1)
    # (1 failed + 2 dropped) / (2 messages + 1 failed + 18 deliveries)
    assert stats.error_rate == pytest.approx(3 / 21)
    metrics.publish_failed("realtime:only-failures")
    failing = metrics.channel("realtime:only-failures")
    assert failing is not None and failing.error_rate == 1.0


def test_channels_beyond_the_cap_drop_the_least_recently_active() -> None:
    clock = FakeClock()
    metrics = NodeMetrics(clock, max_channels=3)
    for topic in ("a", "b", "c"):
        metrics.published(topic, clock.now, 1, 0)
    metrics.published("a", clock.now, 1, 0)  # a is active again: b is now the oldest
    metrics.publish_failed("c")  # a failure is activity too: b stays the oldest
    metrics.published("d", clock.now, 1, 0)
    assert len(metrics) == 3
    assert metrics.channel("b") is None
    assert [t for t, _ in metrics.top_channels(10)] == ["a", "c", "d"]
    metrics.published("b", clock.now, 1, 0)  # back, from zero; a (least recent now) goes
    b = metrics.channel("b")
    assert b is not None and b.messages == 1
    assert metrics.channel("a") is None and len(metrics) == 3
    with pytest.raises(ValueError, match="max_channels"):
        NodeMetrics(clock, max_channels=0)


def test_top_channels_are_the_busiest_first_up_to_the_limit() -> None:
    clock = FakeClock()
    metrics = NodeMetrics(clock)
    for topic, n in (("quiet", 1), ("busy", 5), ("mid", 3), ("also-mid", 3)):
        for _ in range(n):
            metrics.published(topic, clock.now, 0, 0)
    assert [(t, s.messages) for t, s in metrics.top_channels(3)] == [
        ("busy", 5),
        ("also-mid", 3),
        ("mid", 3),
    ]
    assert len(metrics.top_channels(500)) == 4


# -- connections and users ---------------------------------------------------------------------


def test_uptime_is_the_share_of_the_last_hours_connections_not_dropped() -> None:
    clock = FakeClock(0.0)
    metrics = NodeMetrics(clock)
    assert metrics.connection_uptime_percent(0) == 100.0
    assert metrics.connection_uptime_percent(5) == 100.0
    metrics.connection_ended(None)  # the client closed
    metrics.connection_ended(CloseCode.GOING_AWAY)  # a shutdown is not a drop
    clock.now = 600.0
    metrics.connection_ended(CloseCode.SLOW_CONSUMER)
    clock.now = 1_200.0
    metrics.connection_ended(CloseCode.IDLE_TIMEOUT)
    # 2 open + 4 ended in the hour, 2 of them dropped.
    assert metrics.connection_uptime_percent(2) == pytest.approx(100 * 4 / 6)
    clock.now = 3_600.0  # minute 0 has left the hour: 2 open + 2 ended, both dropped
    assert metrics.connection_uptime_percent(2) == pytest.approx(50.0)
    clock.now = 1_200.0 + 3_600.0  # everything has left the hour
    assert metrics.connection_uptime_percent(2) == 100.0
    assert metrics.connection_uptime_percent(0) == 100.0


def test_peak_users_only_grows_and_drops_are_counted() -> None:
    metrics = NodeMetrics(FakeClock())
    for users in (1, 3, 2, 1):
        metrics.users_connected(users)
    assert metrics.peak_users == 3
    metrics.delivery_dropped()
    metrics.delivery_dropped()
    assert metrics.dropped_deliveries == 2


# -- the node's hooks --------------------------------------------------------------------------


class SlowHistory(MemoryHistory):
    """A history whose append takes `append_s` of the fake clock, and fails on `broken`."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.append_s = 0.0
        self.broken: set[str] = set()

    async def append(self, channel: str, data: dict[str, Any], **kwargs: Any) -> AppendResult:
        if channel in self.broken:
            raise ConnectionError("history store unavailable")
        self.clock.now += self.append_s
        return await super().append(channel, data, **kwargs)


@pytest.fixture
async def node_and_clock() -> AsyncIterator[tuple[Node, FakeClock, SlowHistory]]:
    clock = FakeClock()
    history = SlowHistory(clock)
    settings = make_settings(send_queue_max=2)
    node = Node(
        settings,
        verifier=TokenVerifier(settings.jwt_secret),
        policy=NameRulesPolicy(),
        broker=MemoryBroker(),
        history=history,
        clock=clock,
    )
    async with node:
        yield node, clock, history


def connect(node: Node, sub: str | None) -> Connection:
    claims: dict[str, Any] = {"role": "authenticated", "exp": time.time() + 60}
    if sub is not None:
        claims["sub"] = sub
    return node.connect(node.verifier.verify(node.verifier.sign(claims)), ProtocolVersion.V1)


async def test_publish_is_timed_from_its_start_to_the_local_hand_off(
    node_and_clock: tuple[Node, FakeClock, SlowHistory],
) -> None:
    node, _, history = node_and_clock
    conn = connect(node, "u1")
    node.subscribe(conn, "realtime:room", "u1", presence=False, hold=False)
    history.append_s = 0.004  # the append (inside the publish) takes 4 ms
    await node.publish(OutboundBroadcast("realtime:room", "m", {"n": 1}))
    history.append_s = 0.010
    await node.publish(OutboundBroadcast("realtime:room", "m", {"n": 2}))
    stats = node.metrics.channel("realtime:room")
    assert stats is not None
    assert (stats.messages, stats.deliveries) == (2, 2)
    assert stats.average_delivery_ms == pytest.approx(7.0)
    assert node.metrics.messages_per_minute() == 2


async def test_failed_and_duplicate_publishes(
    node_and_clock: tuple[Node, FakeClock, SlowHistory],
) -> None:
    node, _, history = node_and_clock
    await node.publish(OutboundBroadcast("realtime:room", "m", {}), message_id="k1")
    await node.publish(OutboundBroadcast("realtime:room", "m", {}), message_id="k1")  # duplicate
    history.broken.add("realtime:room")
    with pytest.raises(ConnectionError):
        await node.publish(OutboundBroadcast("realtime:room", "m", {}))
    stats = node.metrics.channel("realtime:room")
    assert stats is not None
    assert (stats.messages, stats.failed) == (1, 1)
    assert stats.error_rate == pytest.approx(1 / 2)  # 1 failed / (1 message + 1 failed)
    assert node.metrics.messages_per_minute() == 1


class OpenSocket:
    """A transport whose socket always has room."""

    def __init__(self) -> None:
        self.frames = 0

    def write_nowait(self, frame: object, wire: bytes | None) -> bool:
        self.frames += 1
        return True

    async def send(self, frame: object) -> None:
        self.frames += 1

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_a_slow_consumer_is_a_dropped_delivery_and_a_dropped_connection(
    node_and_clock: tuple[Node, FakeClock, SlowHistory],
) -> None:
    node, _, _ = node_and_clock
    slow, fine, anonymous = connect(node, "slow"), connect(node, "fine"), connect(node, None)
    assert node.metrics.peak_users == 2  # distinct users: the anonymous one is none
    socket = OpenSocket()
    writer = asyncio.create_task(fine.write_loop(socket))
    await asyncio.sleep(0)  # the writer holds the socket: `fine` writes directly
    for conn, subject in ((slow, "slow"), (fine, "fine"), (anonymous, None)):
        node.subscribe(conn, "realtime:room", subject, presence=False, hold=False)
    node.subscribe(fine, "realtime:other", "fine", presence=False, hold=False)
    assert node.metrics.active_channels == 2
    # `slow` and `anonymous` have no writer: their frames queue; the third overflows the queue
    # of 2 and drops them as slow consumers.
    for n in range(3):
        await node.publish(OutboundBroadcast("realtime:room", "m", {"n": n}))
    assert socket.frames == 3
    stats = node.metrics.channel("realtime:room")
    assert stats is not None
    assert (stats.deliveries, stats.dropped) == (9, 2)
    assert stats.error_rate == pytest.approx(2 / (3 + 9))
    assert slow.close_code == CloseCode.SLOW_CONSUMER and fine.close_code is None
    for conn, subject in ((slow, "slow"), (anonymous, None)):
        node.unsubscribe(conn, "realtime:room", subject)
        node.disconnect(conn)
    # `fine` is open; `slow` and `anonymous` ended, both dropped as slow consumers.
    assert node.metrics.connection_uptime_percent(len(node.connections)) == pytest.approx(100 / 3)
    assert node.metrics.active_channels == 2
    node.unsubscribe(fine, "realtime:other", "fine")
    assert node.metrics.active_channels == 1
    node.unsubscribe(fine, "realtime:room", "fine")
    assert node.metrics.active_channels == 0
    node.disconnect(fine)
    await asyncio.wait_for(writer, 5)
    assert node.metrics.peak_users == 2
