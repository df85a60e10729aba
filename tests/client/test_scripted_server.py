"""The client's own guarantees, against a scripted server that misbehaves on purpose: copies of
delivered messages, a gap on a live connection, and a server that knows nothing of positions.

The real server de-duplicates and never leaves gaps, so these paths are only reachable this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.client.support import WAIT, Recorder, fast_client
from wedsync_realtime.client import ConnectionState

pytestmark = pytest.mark.integration

TOPIC = "realtime:room"

Script = Callable[["Peer"], Awaitable[None]]


class Peer:
    """The server side of one client connection, speaking vsn 1.0.0."""

    def __init__(self, ws: ServerConnection, joins: list[dict[str, Any]]) -> None:
        self.ws = ws
        self.joins = joins
        self.join_ref: str | None = None

    async def expect_join(self) -> dict[str, Any]:
        """Answer heartbeats until a join arrives; returns its payload."""
        async with asyncio.timeout(WAIT):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame["event"] == "heartbeat":
                    await self.reply(frame, "phoenix", {})
                elif frame["event"] == "phx_join":
                    self.join_ref = frame["ref"]
                    self.joins.append(frame["payload"])
                    return dict(frame["payload"])
        raise AssertionError("the client went away without joining")

    async def reply(self, frame: dict[str, Any], topic: str, response: dict[str, Any]) -> None:
        await self.send(topic, "phx_reply", {"status": "ok", "response": response}, frame["ref"])

    async def join_reply(self, response: dict[str, Any]) -> None:
        await self.reply({"ref": self.join_ref}, TOPIC, {"postgres_changes": [], **response})

    async def broadcast(self, n: int, offset: int | None = None, replayed: bool = False) -> None:
        body: dict[str, Any] = {"type": "broadcast", "event": "msg", "payload": {"n": n}}
        if offset is not None:
            body["meta"] = {"id": f"m{offset}", "offset": offset, "epoch": "E"}
            if replayed:
                body["meta"]["replayed"] = True
        await self.send(TOPIC, "broadcast", body, None)

    async def send(self, topic: str, event: str, payload: Any, ref: str | None) -> None:
        frame = {"topic": topic, "event": event, "payload": payload, "ref": ref}
        await self.ws.send(orjson.dumps(frame).decode())

    async def serve_heartbeats(self) -> None:
        """Answer heartbeats and the leave at the end."""
        async for raw in self.ws:
            frame = orjson.loads(raw)
            if frame["event"] in ("heartbeat", "phx_leave"):
                await self.reply(frame, frame["topic"], {})


@asynccontextmanager
async def scripted_server(*scripts: Script) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A server running `scripts[i]` for the i-th connection; yields (url, join payloads)."""
    joins: list[dict[str, Any]] = []
    connection = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connection
        script = scripts[min(connection, len(scripts) - 1)]
        connection += 1
        await script(Peer(ws, joins))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", joins


async def test_copies_are_dropped_and_a_live_gap_is_recovered_by_a_rejoin() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect_join()
        await peer.join_reply({"position": {"offset": 5, "epoch": "E"}})
        for n, offset in [(6, 6), (7, 7), (6, 6), (7, 7), (8, 8), (10, 10)]:
            await peer.broadcast(n, offset)
        # Offset 9 never came: the client must rejoin, recovering after 8.
        await peer.expect_join()
        await peer.join_reply({"position": {"offset": 10, "epoch": "E"}, "recovered": True})
        await peer.broadcast(9, 9, replayed=True)
        await peer.broadcast(10, 10, replayed=True)
        await peer.broadcast(10, 10)  # a live copy of a replayed message
        await peer.broadcast(11, 11)
        await peer.serve_heartbeats()

    async with scripted_server(script) as (url, joins):
        async with fast_client(url, "token") as client, client.channel("room") as channel:
            recorder = Recorder().attach(channel)
            await recorder.wait_count(6)
            assert recorder.values == [6, 7, 8, 9, 10, 11]
            assert recorder.reloads == [] and channel.recovered is True
            assert channel.duplicates_dropped == 3
        assert "recover" not in joins[0]["config"]["broadcast"]
        assert joins[1]["config"]["broadcast"]["recover"] == {"offset": 8, "epoch": "E"}
        assert joins[1]["access_token"] == "token"


async def test_a_server_without_positions_gets_plain_delivery_and_reloads() -> None:
    async def first(peer: Peer) -> None:
        await peer.expect_join()
        await peer.join_reply({})
        await peer.broadcast(1)
        await peer.broadcast(1)  # without ids or offsets a copy cannot be told apart
        await peer.ws.close()

    async def second(peer: Peer) -> None:
        await peer.expect_join()
        await peer.join_reply({})
        await peer.broadcast(2)
        await peer.serve_heartbeats()

    async with scripted_server(first, second) as (url, joins):
        client = fast_client(url, "token")
        async with client, client.channel("room") as channel:
            recorder = Recorder().attach(channel)
            await recorder.wait_for(lambda r: r.values == [1, 1, 2] and len(r.reloads) == 1)
            assert recorder.reloads[0].position is None
            assert client.state is ConnectionState.CONNECTED
        # No position was ever known, so no recovery was asked for.
        assert all("recover" not in join["config"]["broadcast"] for join in joins)


async def test_a_silent_server_counts_as_a_drop() -> None:
    async def mute(peer: Peer) -> None:
        await peer.expect_join()
        await peer.join_reply({})
        await peer.ws.wait_closed()  # answers nothing until the client gives up

    async with scripted_server(mute) as (url, _):
        client = fast_client(url, "token", heartbeat_interval=0.1)
        async with client, client.channel("room"):
            await client.wait_for_state(ConnectionState.RECONNECTING, timeout=WAIT)
            assert "heartbeat" in client.state_reason
