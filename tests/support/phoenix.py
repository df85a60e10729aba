"""A raw Phoenix-protocol test client over real sockets: frames in, frames out, nothing hidden.

Used by integration tests to assert exact wire behaviour; the official clients are exercised in
tests/conformance.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from wedsync_realtime.protocol.frames import PayloadEncoding

TIMEOUT = 5.0


@dataclass
class Frame:
    """A received frame in one shape for both versions (binary kind 4 frames too)."""

    topic: str
    event: str
    payload: Any
    ref: str | None
    join_ref: str | None
    binary: bool = False
    raw: Any = None


def _decode(vsn: str, data: str | bytes) -> Frame:
    if isinstance(data, bytes):
        kind, topic_len, event_len, meta_len, enc = data[:5]
        assert kind == 4, f"unexpected binary kind {kind}"
        offset = 5
        topic = data[offset : offset + topic_len].decode()
        offset += topic_len
        event = data[offset : offset + event_len].decode()
        offset += event_len
        meta = orjson.loads(data[offset : offset + meta_len]) if meta_len else None
        offset += meta_len
        body = data[offset:]
        inner = orjson.loads(body) if enc == PayloadEncoding.JSON else body
        payload = {"type": "broadcast", "event": event, "payload": inner}
        if meta:
            payload["meta"] = meta
        return Frame(topic, "broadcast", payload, None, None, binary=True, raw=data)
    value = orjson.loads(data)
    if vsn == "1.0.0":
        assert "ref" in value, f"1.0.0 frame without ref: {value}"
        return Frame(
            value["topic"],
            value["event"],
            value["payload"],
            value["ref"],
            value.get("join_ref"),
            raw=value,
        )
    join_ref, ref, topic, event, payload = value
    return Frame(topic, event, payload, ref, join_ref, raw=value)


class PhoenixClient:
    """One WebSocket connection speaking vsn 1.0.0 or 2.0.0."""

    def __init__(self, ws: ClientConnection, vsn: str) -> None:
        self.ws = ws
        self.vsn = vsn
        self._refs = itertools.count(1)

    @classmethod
    async def connect(
        cls,
        base_url: str,
        token: str | None,
        vsn: str = "1.0.0",
        path: str = "/socket/websocket",
        **kwargs: Any,
    ) -> PhoenixClient:
        query = f"vsn={vsn}" + (f"&apikey={token}" if token else "")
        ws = await connect(f"{base_url}{path}?{query}", open_timeout=TIMEOUT, **kwargs)
        return cls(ws, vsn)

    def next_ref(self) -> str:
        return str(next(self._refs))

    async def send(
        self,
        topic: str,
        event: str,
        payload: Any,
        ref: str | None = None,
        join_ref: str | None = None,
    ) -> None:
        if self.vsn == "1.0.0":
            frame = {
                "topic": topic,
                "event": event,
                "payload": payload,
                "ref": ref,
                "join_ref": join_ref,
            }
        else:
            frame = [join_ref, ref, topic, event, payload]
        await self.ws.send(orjson.dumps(frame).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = TIMEOUT) -> Frame:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        return _decode(self.vsn, data)

    async def recv_until(
        self, predicate: Callable[[Frame], bool], timeout: float = TIMEOUT
    ) -> Frame:
        """The first frame matching `predicate`, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if predicate(frame):
                    return frame

    async def reply_to(self, ref: str | None, timeout: float = TIMEOUT) -> Frame:
        return await self.recv_until(lambda f: f.event == "phx_reply" and f.ref == ref, timeout)

    async def join(
        self, channel: str, config: dict[str, Any] | None = None, access_token: str | None = None
    ) -> tuple[str, Frame]:
        """Send phx_join and return (join_ref, reply)."""
        ref = self.next_ref()
        payload: dict[str, Any] = {"config": config or {}}
        if access_token is not None:
            payload["access_token"] = access_token
        await self.send(f"realtime:{channel}", "phx_join", payload, ref, ref)
        return ref, await self.reply_to(ref)

    async def broadcast(
        self, channel: str, join_ref: str, event: str, payload: dict[str, Any]
    ) -> str:
        ref = self.next_ref()
        body = {"type": "broadcast", "event": event, "payload": payload}
        await self.send(f"realtime:{channel}", "broadcast", body, ref, join_ref)
        return ref

    async def close(self) -> None:
        await self.ws.close()
