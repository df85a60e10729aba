"""Per-channel serialisation of append and fan-out: first come, first served, one holder at a
time per channel, nothing left behind, and a cancelled waiter never wedges the channel."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson

from tests.conftest import make_settings
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.auth.policy import NameRulesPolicy
from wedsync_realtime.backends.base import AppendResult
from wedsync_realtime.backends.memory import MemoryBroker, MemoryHistory
from wedsync_realtime.engine.history import ChannelLocks
from wedsync_realtime.engine.node import Node
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame


async def test_holders_take_turns_in_arrival_order() -> None:
    locks = ChannelLocks()
    order: list[str] = []
    inside = 0

    async def hold(name: str, release: asyncio.Event) -> None:
        nonlocal inside
        await locks.acquire("room")
        try:
            inside += 1
            assert inside == 1
            order.append(name)
            await release.wait()
        finally:
            inside -= 1
            locks.release("room")

    events = {name: asyncio.Event() for name in "abc"}
    tasks = [asyncio.create_task(hold(name, events[name])) for name in "abc"]
    await asyncio.sleep(0)
    assert order == ["a"]
    # Another channel is not held up by this one.
    await asyncio.wait_for(locks.acquire("lobby"), 1)
    locks.release("lobby")
    for name in "abc":
        events[name].set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert len(locks) == 0


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    locks = ChannelLocks()
    await locks.acquire("room")
    waiter = asyncio.create_task(locks.acquire("room"))
    third = asyncio.create_task(locks.acquire("room"))
    await asyncio.sleep(0)
    locks.release("room")  # the turn goes to `waiter` ...
    waiter.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(waiter, return_exceptions=True)
    await asyncio.wait_for(third, 1)  # the third gets the lock instead of waiting forever
    locks.release("room")
    assert len(locks) == 0


class JitteryHistory(MemoryHistory):
    """Appends that take a random number of loop turns, as network round trips would: without
    serialisation, concurrent appends would complete out of offset order."""

    async def append(
        self, channel: str, body: dict[str, Any], *, message_id: str, max_size: int, ttl: float
    ) -> AppendResult:
        for _ in range(random.randrange(4)):
            await asyncio.sleep(0)
        result = await super().append(
            channel, body, message_id=message_id, max_size=max_size, ttl=ttl
        )
        for _ in range(random.randrange(4)):
            await asyncio.sleep(0)
        return result


class Recorder:
    def __init__(self) -> None:
        self.offsets: list[int] = []

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        self.offsets.append(orjson.loads(frame)["payload"]["meta"]["offset"])
        return True

    async def send(self, frame: OutFrame) -> None:
        raise AssertionError("never queued")

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_concurrent_publishes_are_delivered_in_offset_order() -> None:
    random.seed(7)
    settings = make_settings()
    node = Node(
        settings,
        verifier=TokenVerifier(settings.jwt_secret),
        policy=NameRulesPolicy(),
        broker=MemoryBroker(),
        history=JitteryHistory(),
    )
    async with node:
        token = node.verifier.sign({"sub": "u", "role": "authenticated", "exp": time.time() + 60})
        conn = node.connect(node.verifier.verify(token), ProtocolVersion.V1)
        recorder = Recorder()
        writer = asyncio.create_task(conn.write_loop(recorder))
        await asyncio.sleep(0)
        node.subscribe(conn, "realtime:room", None, presence=False, hold=False)
        await asyncio.gather(
            *(node.publish(OutboundBroadcast("realtime:room", "m", {"n": n})) for n in range(200))
        )
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    assert recorder.offsets == list(range(1, 201))
    assert len(node.channel_locks) == 0
