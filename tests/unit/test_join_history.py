"""Joins that read history while messages keep arriving: nothing twice, nothing skipped, in
offset order; and recovery refused once history has expired.

The node runs on the real `MemoryHistory`, wrapped so that a test can hold a join inside its
history read (as a network round trip to a shared history store would) and publish meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.conftest import make_settings
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.auth.policy import NameRulesPolicy
from wedsync_realtime.backends.base import HistoryRead, StreamPosition
from wedsync_realtime.backends.memory import MemoryBroker, MemoryHistory
from wedsync_realtime.engine.connection import Connection
from wedsync_realtime.engine.node import Node
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame

TOPIC = "realtime:room"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedHistory(MemoryHistory):
    """A MemoryHistory whose `read` waits at `gate` — before reading (`read_first=False`) or
    after (`read_first=True`) — and reports that it is waiting through `waiting`."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.read_first = False

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> HistoryRead:
        if not self.read_first:
            self.waiting.set()
            await self.gate.wait()
        result = await super().read(channel, since=since, since_ms=since_ms, limit=limit)
        if self.read_first:
            self.waiting.set()
            await self.gate.wait()
        return result


class RecordingTransport:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        self.frames.append(orjson.loads(frame))
        return True

    async def send(self, frame: OutFrame) -> None:
        self.frames.append(orjson.loads(frame))

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


class Harness:
    def __init__(self, node: Node, history: GatedHistory, clock: FakeClock) -> None:
        self.node, self.history, self.clock = node, history, clock
        self._writers: list[asyncio.Task[None]] = []

    async def connect(self, sub: str) -> tuple[Connection, RecordingTransport]:
        verifier = self.node.verifier
        token = verifier.sign({"sub": sub, "role": "authenticated", "exp": time.time() + 600})
        conn = self.node.connect(verifier.verify(token), ProtocolVersion.V1)
        transport = RecordingTransport()
        self._writers.append(asyncio.create_task(conn.write_loop(transport)))
        await asyncio.sleep(0)  # let the writer attach the transport (one loop turn, no delay)
        return conn, transport

    async def publish(self, n: int) -> None:
        await self.node.publish(OutboundBroadcast(TOPIC, "msg", {"n": n}))

    async def close(self) -> None:
        for writer in self._writers:
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = FakeClock()
    history = GatedHistory(clock)
    settings = make_settings(history_ttl_s=60.0)
    node = Node(
        settings,
        verifier=TokenVerifier(settings.jwt_secret),
        policy=NameRulesPolicy(),
        broker=MemoryBroker(),
        history=history,
        clock=clock,
    )
    async with node:
        h = Harness(node, history, clock)
        yield h
        await h.close()


def join_frame(ref: str, broadcast: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "topic": TOPIC,
            "event": "phx_join",
            "payload": {"config": {"broadcast": broadcast}},
            "ref": ref,
            "join_ref": ref,
        }
    )


def delivered(transport: RecordingTransport) -> list[tuple[int, int, bool]]:
    """(n, offset, replayed) of every broadcast the client got, in order."""
    return [
        (
            f["payload"]["payload"]["n"],
            f["payload"]["meta"]["offset"],
            "replayed" in f["payload"]["meta"],
        )
        for f in transport.frames
        if f["event"] == "broadcast"
    ]


@pytest.mark.parametrize(
    "read_first", [False, True], ids=["publish-before-read", "publish-after-read"]
)
async def test_messages_published_during_recovery_arrive_once_in_order(
    harness: Harness, read_first: bool
) -> None:
    conn, transport = await harness.connect("u1")
    epoch = (await harness.history.position(TOPIC)).epoch
    await harness.publish(1)
    await harness.publish(2)

    harness.history.read_first = read_first
    harness.history.gate.clear()
    join = asyncio.create_task(
        conn.receive_text(join_frame("1", {"recover": {"offset": 0, "epoch": epoch}}))
    )
    await harness.history.waiting.wait()
    # Published while the join is inside its history read: with the read still to come they
    # are in both the read and the held-back live messages; after it, only in the latter.
    await harness.publish(3)
    await harness.publish(4)
    harness.history.gate.set()
    await join
    await harness.publish(5)

    reply = transport.frames[0]
    assert reply["event"] == "phx_reply"
    assert reply["payload"]["response"]["recovered"] is True
    got = delivered(transport)
    assert [(n, offset) for n, offset, _ in got] == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    replayed = [n for n, _, was_replayed in got if was_replayed]
    assert replayed == ([1, 2] if read_first else [1, 2, 3, 4])
    position = reply["payload"]["response"]["position"]
    assert position == {"offset": 2 if read_first else 4, "epoch": epoch}


async def test_recovery_after_history_expired_is_refused(harness: Harness) -> None:
    epoch = (await harness.history.position(TOPIC)).epoch
    await harness.publish(1)
    harness.clock.now += 61  # past history_ttl_s
    conn, transport = await harness.connect("u1")
    await conn.receive_text(join_frame("1", {"recover": {"offset": 0, "epoch": epoch}}))
    reply = transport.frames[0]["payload"]["response"]
    assert reply["recovered"] is False
    assert reply["position"] == {"offset": 1, "epoch": epoch}
    await harness.publish(2)
    assert delivered(transport) == [(2, 2, False)]


async def test_leaving_during_the_history_read_ends_the_join(harness: Harness) -> None:
    conn, transport = await harness.connect("u1")
    harness.history.gate.clear()
    join = asyncio.create_task(conn.receive_text(join_frame("1", {"replay": {"since": 0}})))
    await harness.history.waiting.wait()
    leave = {"topic": TOPIC, "event": "phx_leave", "payload": {}, "ref": "2", "join_ref": "1"}
    await conn.receive_text(orjson.dumps(leave))
    harness.history.gate.set()
    await join
    await harness.publish(1)

    # The leave is answered; the abandoned join is not, and nothing is delivered.
    assert [(f["event"], f["ref"]) for f in transport.frames] == [
        ("phx_reply", "2"),
        ("phx_close", "1"),
    ]
    assert harness.node.hub.count(TOPIC) == 0
