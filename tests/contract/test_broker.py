"""The `Broker` contract (backends/base.py): every implementation passes this one suite.

Each test builds a small cluster of brokers that share one medium, as nodes of one deployment
share a Redis server: `broker_factory()` returns a started broker (one "node") with a handler that
records what reaches it. To add a backend, add a cluster to `CLUSTERS` (skipping when its service
is not available, failing instead when `CI` is set).

What a node relies on, and so what is asserted here:
* once `await subscribe(...)` returns, later publishes on those channels reach the handler;
* a message reaches every *other* subscribed broker, never an unsubscribed one, never its
  publisher (the node fans out locally itself);
* one publisher's order on a channel is kept;
* `unsubscribe` stops delivery; `close` detaches the broker and may be called twice;
* the message arrives intact: channel, origin, and a body of JSON values and bytes.

Backends may deliver asynchronously, so "nothing arrived" is only ever asserted after a later
message from the same publisher (a marker) has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from wedsync_realtime.backends.base import Broker, BrokerMessage
from wedsync_realtime.backends.memory import MemoryBroker, MemoryBus

TIMEOUT = 2.0 * float(os.environ.get("WEDSYNC_TEST_TIME_FACTOR", "1"))


class Recorder:
    """A `BrokerHandler` that keeps what it is handed."""

    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []
        self._changed = asyncio.Condition()

    async def handle_message(self, message: BrokerMessage) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[BrokerMessage], bool], timeout: float = TIMEOUT
    ) -> BrokerMessage:
        """The first recorded message matching `predicate`, waiting for it if need be."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                await self._changed.wait()

    async def wait_for_count(self, count: int, timeout: float = TIMEOUT) -> list[BrokerMessage]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
            return list(self.messages)

    def bodies(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [m.body for m in self.messages if channel is None or m.channel == channel]


class Node:
    """One broker as a node sees it, with its recorder."""

    def __init__(self, name: str, broker: Broker, recorder: Recorder) -> None:
        self.name = name
        self.broker = broker
        self.recorder = recorder

    async def publish(self, channel: str, **body: Any) -> BrokerMessage:
        message = BrokerMessage(channel, self.name, body)
        await self.broker.publish(message)
        return message


NewBroker = Callable[[], Awaitable[Broker]]
Cluster = Callable[[], contextlib.AbstractAsyncContextManager[NewBroker]]


@contextlib.asynccontextmanager
async def memory_cluster() -> AsyncIterator[NewBroker]:
    bus = MemoryBus()

    async def new_broker() -> Broker:
        return MemoryBroker(bus)

    yield new_broker


#: Backend name → a cluster of brokers sharing one medium. Add Redis here.
CLUSTERS: dict[str, Cluster] = {"memory": memory_cluster}

BrokerFactory = Callable[[], Awaitable[Node]]


@pytest.fixture(params=sorted(CLUSTERS))
async def broker_factory(request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
    nodes: list[Node] = []
    async with CLUSTERS[request.param]() as new_broker:

        async def factory() -> Node:
            broker = await new_broker()
            recorder = Recorder()
            await broker.start(recorder)
            node = Node(f"node-{len(nodes) + 1}", broker, recorder)
            nodes.append(node)
            return node

        try:
            yield factory
        finally:
            for node in nodes:
                await node.broker.close()


async def test_message_reaches_every_other_subscribed_node(broker_factory: BrokerFactory) -> None:
    a, b, c = await broker_factory(), await broker_factory(), await broker_factory()
    for node in (a, b, c):
        await node.broker.subscribe("realtime:room1")
    sent = await a.publish("realtime:room1", kind="broadcast", seq=1)
    for node in (b, c):
        received = await node.recorder.wait_for(lambda m: m.body.get("seq") == 1)
        assert received == sent


async def test_message_does_not_reach_unsubscribed_nodes(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:mine")
    await a.publish("realtime:other", seq=1)
    await a.publish("realtime:mine", seq=2)  # the marker
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 2)
    assert b.recorder.bodies() == [{"seq": 2}]


async def test_message_does_not_return_to_its_publisher(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await a.broker.subscribe("realtime:room1")
    await b.broker.subscribe("realtime:room1")
    await a.publish("realtime:room1", seq=1)
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 1)
    # The marker comes back to a from b; a's own message, sent earlier, never does.
    await b.publish("realtime:room1", seq=2)
    await a.recorder.wait_for(lambda m: m.body.get("seq") == 2)
    assert a.recorder.bodies() == [{"seq": 2}]


async def test_order_of_one_publisher_is_kept(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:room1")
    for seq in range(200):
        await a.publish("realtime:room1", seq=seq)
    await b.recorder.wait_for_count(200)
    assert [body["seq"] for body in b.recorder.bodies()] == list(range(200))


async def test_order_is_kept_per_channel_with_interleaved_channels(
    broker_factory: BrokerFactory,
) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:x", "realtime:y")
    for seq in range(50):
        await a.publish("realtime:x" if seq % 3 else "realtime:y", seq=seq)
    await b.recorder.wait_for_count(50)
    for channel in ("realtime:x", "realtime:y"):
        seqs = [body["seq"] for body in b.recorder.bodies(channel)]
        assert seqs == sorted(seqs)
        assert seqs


async def test_subscribe_to_several_channels_at_once(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:x", "realtime:y")
    await a.publish("realtime:x", seq=1)
    await a.publish("realtime:y", seq=2)
    await b.recorder.wait_for_count(2)
    assert sorted(m.channel for m in b.recorder.messages) == ["realtime:x", "realtime:y"]


async def test_unsubscribe_stops_delivery(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:room1", "realtime:marker")
    await a.publish("realtime:room1", seq=1)
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 1)
    await b.broker.unsubscribe("realtime:room1")
    await a.publish("realtime:room1", seq=2)
    await a.publish("realtime:marker", seq=3)
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 3)
    assert b.recorder.bodies() == [{"seq": 1}, {"seq": 3}]


async def test_unsubscribe_leaves_other_channels_and_nodes_alone(
    broker_factory: BrokerFactory,
) -> None:
    a, b, c = await broker_factory(), await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:x", "realtime:y")
    await c.broker.subscribe("realtime:x")
    await b.broker.unsubscribe("realtime:x")
    await a.publish("realtime:x", seq=1)
    await a.publish("realtime:y", seq=2)
    await c.recorder.wait_for(lambda m: m.body.get("seq") == 1)
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 2)
    assert b.recorder.bodies() == [{"seq": 2}]


async def test_resubscribe_after_unsubscribe(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:room1")
    await b.broker.unsubscribe("realtime:room1")
    await b.broker.subscribe("realtime:room1")
    await a.publish("realtime:room1", seq=1)
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 1)


async def test_unsubscribe_of_an_unknown_channel_is_harmless(
    broker_factory: BrokerFactory,
) -> None:
    a, b = await broker_factory(), await broker_factory()
    await b.broker.unsubscribe("realtime:never")
    await b.broker.subscribe("realtime:room1")
    await a.publish("realtime:room1", seq=1)
    await b.recorder.wait_for(lambda m: m.body.get("seq") == 1)


async def test_close_detaches(broker_factory: BrokerFactory) -> None:
    a, b, c = await broker_factory(), await broker_factory(), await broker_factory()
    await b.broker.subscribe("realtime:room1")
    await c.broker.subscribe("realtime:room1")
    await b.broker.close()
    await a.publish("realtime:room1", seq=1)  # publishing to a closed peer does not fail
    await c.recorder.wait_for(lambda m: m.body.get("seq") == 1)
    await a.publish("realtime:room1", seq=2)
    await c.recorder.wait_for(lambda m: m.body.get("seq") == 2)
    assert b.recorder.messages == []


async def test_closed_publisher_no_longer_receives(broker_factory: BrokerFactory) -> None:
    a, b = await broker_factory(), await broker_factory()
    await a.broker.subscribe("realtime:room1")
    await b.broker.subscribe("realtime:room1")
    await a.broker.close()
    await b.publish("realtime:room1", seq=1)
    c = await broker_factory()
    await c.broker.subscribe("realtime:room1")
    await b.publish("realtime:room1", seq=2)
    await c.recorder.wait_for(lambda m: m.body.get("seq") == 2)
    assert a.recorder.messages == []


async def test_close_twice_is_harmless(broker_factory: BrokerFactory) -> None:
    a = await broker_factory()
    await a.broker.subscribe("realtime:room1")
    await a.broker.close()
    await a.broker.close()


async def test_message_arrives_intact(broker_factory: BrokerFactory) -> None:
    # What Node.publish sends for a binary (kind 3) broadcast: JSON values plus raw bytes.
    a, b = await broker_factory(), await broker_factory()
    channel = "realtime:salón-💍"
    await b.broker.subscribe(channel)
    body = {
        "kind": "broadcast",
        "event": "brindis",
        "payload": {"n": 1, "f": 1.5, "ok": True, "none": None, "list": [1, "two", {"3": 3}]},
        "raw": b"\x00\xff binary",
        "encoding": 0,
        "meta": None,
    }
    sent = await a.publish(channel, **body)
    received = await b.recorder.wait_for(lambda m: True)
    assert received == sent
    assert received.origin == a.name
    assert received.channel == channel
    assert received.body == body
