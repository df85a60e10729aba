"""A plain `websockets` pub/sub server: the peer the fan-out benchmark compares against.

It understands just enough of the Phoenix frames the load generator sends (vsn 1.0.0 objects or
2.0.0 arrays, chosen by the `vsn` query parameter, as in Supabase Realtime):

* `phx_join` on a topic adds the connection to the room, answered `phx_reply` ok;
* `heartbeat` on `phoenix` is answered `phx_reply` ok;
* `broadcast` encodes the outgoing frame ONCE per protocol version and hands it to
  `websockets.broadcast` for the room's other members (like `broadcast.self = false`);
* `phx_leave` leaves the room.

No authentication, no limits, no per-connection queue, no presence: the floor of what a Python
WebSocket fan-out costs with the `websockets` library. Listens on 127.0.0.1 only.

    python -m benchmarks.peer_websockets --port 4100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import defaultdict

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

__all__ = ["PeerServer", "main"]

HOST = "127.0.0.1"


class PeerServer:
    """topic -> (1.0.0 members, 2.0.0 members)."""

    def __init__(self) -> None:
        self.rooms: defaultdict[str, tuple[set[ServerConnection], set[ServerConnection]]] = (
            defaultdict(lambda: (set(), set()))
        )

    async def handler(self, ws: ServerConnection) -> None:
        request = ws.request
        v2 = request is not None and "vsn=2" in request.path
        joined: set[str] = set()
        try:
            async for raw in ws:
                try:
                    message = orjson.loads(raw)
                    if v2:
                        join_ref, ref, topic, event, payload = message
                    else:
                        join_ref = message.get("join_ref")
                        ref, topic = message["ref"], message["topic"]
                        event, payload = message["event"], message["payload"]
                except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
                    continue
                if event == "broadcast":
                    self.publish(ws, topic, payload)
                elif event == "heartbeat":
                    await ws.send(_reply(v2, join_ref, ref, topic, {}))
                elif event == "phx_join":
                    self.rooms[topic][1 if v2 else 0].add(ws)
                    joined.add(topic)
                    await ws.send(_reply(v2, join_ref, ref, topic, {"postgres_changes": []}))
                elif event == "phx_leave":
                    self._leave(ws, topic)
                    joined.discard(topic)
                    await ws.send(_reply(v2, join_ref, ref, topic, {}))
        finally:
            for topic in joined:
                self._leave(ws, topic)

    def publish(self, sender: ServerConnection, topic: str, payload: object) -> None:
        room = self.rooms.get(topic)
        if room is None:
            return
        v1_members, v2_members = room
        for members, v2 in ((v1_members, False), (v2_members, True)):
            if not members:
                continue
            frame = _encode(v2, None, None, topic, "broadcast", payload)
            if sender in members:
                broadcast((c for c in members if c is not sender), frame)
            else:
                broadcast(members, frame)

    def _leave(self, ws: ServerConnection, topic: str) -> None:
        room = self.rooms.get(topic)
        if room is None:
            return
        room[0].discard(ws)
        room[1].discard(ws)
        if not room[0] and not room[1]:
            del self.rooms[topic]


def _encode(
    v2: bool, join_ref: str | None, ref: str | None, topic: str, event: str, payload: object
) -> str:
    if v2:
        return orjson.dumps([join_ref, ref, topic, event, payload]).decode()
    return orjson.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref}).decode()


def _reply(v2: bool, join_ref: str | None, ref: str | None, topic: str, response: object) -> str:
    return _encode(v2, join_ref, ref, topic, "phx_reply", {"status": "ok", "response": response})


async def run(port: int) -> None:
    peer = PeerServer()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    # Same keepalive (20 s pings) and backlog as uvicorn's defaults; no compression, like the
    # wedsync server (ws_per_message_deflate=False).
    async with serve(
        peer.handler,
        HOST,
        port,
        compression=None,
        max_size=1_048_576,
        ping_interval=20,
        ping_timeout=20,
        backlog=2048,
    ):
        print(f"peer listening on {HOST}:{port}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4100)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(run(args.port))
    else:
        asyncio.run(run(args.port))


if __name__ == "__main__":
    main()
