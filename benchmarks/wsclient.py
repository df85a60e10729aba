"""A minimal WebSocket client as an asyncio Protocol, fast enough to be a load generator.

One `WsClient` per connection. It does the HTTP/1.1 upgrade itself, parses the server's unmasked
frames by hand and masks its own (small) frames, so receiving a frame costs one slice and one
dict lookup: every broadcast frame is looked up in a cache shared by all connections (in a
one-channel fan-out all subscribers receive the same bytes), and only a cache miss is parsed
with orjson. No per-frame coroutine, no per-frame task switch.

Deliveries are accounted in a shared `Stats`: a per-sequence-number counter (to count losses and
duplicates) and an array of latencies (receive clock minus the send stamp in the payload; both
are `time.perf_counter_ns()` of this same process).

Only 127.0.0.1 is ever dialled (see `open_ws`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar, cast

import orjson

__all__ = [
    "LOOPBACK",
    "HttpPublisher",
    "Stats",
    "WsClient",
    "encode_frame",
    "open_client",
    "open_ws",
]

LOOPBACK = "127.0.0.1"

_clock = time.perf_counter_ns
_BROADCAST = b'"broadcast"'
_CACHE_MAX = 200_000
_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class Stats:
    """Counters shared by every connection of one run."""

    __slots__ = (
        "cache",
        "close_codes",
        "counts",
        "deliveries",
        "first_ns",
        "last_ns",
        "latencies",
        "lost_connections",
        "other_events",
        "other_frames",
        "stray",
        "worst",
    )

    def __init__(self, max_messages: int) -> None:
        #: seq -> deliveries received.
        self.counts: list[int] = [0] * max_messages
        #: seq -> latency of its slowest delivery (ns).
        self.worst: list[int] = [0] * max_messages
        #: Delivery latency in nanoseconds, one entry per delivery.
        self.latencies: array[int] = array("q")
        #: Broadcast frame bytes -> (seq, send stamp).
        self.cache: dict[bytes, tuple[int, int]] = {}
        self.deliveries = 0
        self.first_ns = 0
        self.last_ns = 0
        #: Broadcasts with a sequence number outside the run (should stay 0).
        self.stray = 0
        self.other_frames = 0
        self.other_events: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()
        self.lost_connections = 0

    def record(self, seq: int, sent: int, now: int) -> None:
        """Account one delivery of broadcast `seq` stamped `sent`, received at `now` (ns)."""
        try:
            self.counts[seq] += 1
        except IndexError:
            self.stray += 1
            return
        latency = now - sent
        self.latencies.append(latency)
        if latency > self.worst[seq]:
            self.worst[seq] = latency
        self.deliveries += 1
        self.last_ns = now


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.3: clients must mask)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    mask = os.urandom(4)
    if n == 0:
        return header + mask
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        n, "little"
    )
    return header + mask + masked


class WsClient(asyncio.Protocol):
    """One WebSocket connection. `counting` clients account broadcasts in `stats`."""

    def __init__(self, path: str, port: int, stats: Stats, *, counting: bool = True) -> None:
        self.path = path
        self.port = port
        self.stats = stats
        self.counting = counting
        self.v2 = "vsn=2" in path
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        #: Resolves to the HTTP status of the upgrade response (101 when accepted).
        self.opened: asyncio.Future[int] = loop.create_future()
        self.error_body = b""
        self._handshaking = True
        self._head = b""
        self._buf = b""
        self._ref = 0
        #: ref -> future resolved with the (status, response) of its phx_reply.
        self._replies: dict[str, asyncio.Future[tuple[str, Any]]] = {}
        self.closed_by_us = False
        self.alive = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {LOOPBACK}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.alive and not self.closed_by_us:
            self.stats.lost_connections += 1
        self.alive = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self._replies.clear()

    def data_received(self, data: bytes) -> None:
        if self._handshaking:
            data = self._handshake(data)
            if not data:
                return
        now = _clock()
        if self._buf:
            data = self._buf + data
            self._buf = b""
        n = len(data)
        pos = 0
        stats = self.stats
        cache = stats.cache
        while n - pos >= 2:
            length = data[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            opcode = data[pos] & 0x0F
            frame = data[start:end]
            pos = end
            if opcode == _OP_TEXT:
                hit = cache.get(frame)
                if hit is not None and self.counting:
                    # The hot path: a broadcast some other connection already decoded.
                    stats.record(hit[0], hit[1], now)
                else:
                    self._text(frame, now)
            else:
                self._control(opcode, frame)
        if pos < n:
            self._buf = data[pos:]

    # -- frames --------------------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self._head = head
            return b""
        self._handshaking = False
        self._head = b""
        status_line = head[: head.find(b"\r\n")]
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = 0
        if status != 101:
            self.error_body = head[end + 4 :]
            if not self.opened.done():
                self.opened.set_result(status)
            self.close()
            return b""
        self.alive = True
        if not self.opened.done():
            self.opened.set_result(101)
        return head[end + 4 :]

    def _text(self, frame: bytes, now: int) -> None:
        stats = self.stats
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            stats.other_events["<malformed>"] += 1
            return
        if self.v2:
            _join_ref, ref, _topic, event, payload = message
        else:
            ref, event, payload = message.get("ref"), message["event"], message["payload"]
        if event == "broadcast" and _BROADCAST in frame:
            inner = payload.get("payload") or {}
            seq, sent = inner.get("s"), inner.get("t")
            if isinstance(seq, int) and isinstance(sent, int):
                if len(stats.cache) >= _CACHE_MAX:
                    stats.cache.clear()
                stats.cache[frame] = (seq, sent)
                if self.counting:
                    stats.record(seq, sent, now)
                return
        if event == "phx_reply" and ref is not None:
            fut = self._replies.pop(ref, None)
            if fut is not None and not fut.done():
                fut.set_result((payload.get("status"), payload.get("response")))
                return
        stats.other_frames += 1
        if event != "phx_reply":
            stats.other_events[event] += 1

    def _control(self, opcode: int, frame: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        if opcode == _OP_PING:
            transport.write(encode_frame(_OP_PONG, frame))
        elif opcode == _OP_CLOSE:
            code = int.from_bytes(frame[:2], "big") if len(frame) >= 2 else 1005
            self.stats.close_codes[code] += 1
            if self.alive and not self.closed_by_us:
                self.stats.lost_connections += 1
                self.alive = False
            if not transport.is_closing():
                transport.write(encode_frame(_OP_CLOSE, frame[:2]))
                transport.close()
        elif opcode == _OP_BINARY:
            self.stats.other_frames += 1
            self.stats.other_events["<binary>"] += 1

    # -- output --------------------------------------------------------------------------------

    def next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    def encode(
        self, topic: str, event: str, payload: Any, ref: str | None, join_ref: str | None
    ) -> bytes:
        """A Phoenix text message in this connection's serializer version, unframed."""
        if self.v2:
            return orjson.dumps([join_ref, ref, topic, event, payload])
        return orjson.dumps(
            {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}
        )

    def send_text(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(_OP_TEXT, data))

    def send_raw(self, frames: bytes) -> None:
        """Write already framed (masked) bytes."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frames)

    def request(
        self, topic: str, event: str, payload: Any
    ) -> tuple[str, asyncio.Future[tuple[str, Any]]]:
        """Send a message that gets a phx_reply: (its ref, a future of (status, response)).

        A `phx_join` is its own join_ref, as the Phoenix clients do."""
        ref = self.next_ref()
        fut: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = fut
        join_ref = ref if event == "phx_join" else None
        self.send_text(self.encode(topic, event, payload, ref, join_ref))
        return ref, fut

    def heartbeat(self) -> None:
        self.send_text(self.encode("phoenix", "heartbeat", {}, self.next_ref(), None))

    def close(self) -> None:
        self.closed_by_us = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self.alive:
                transport.write(encode_frame(_OP_CLOSE, struct.pack("!H", 1000)))
            transport.close()
        self.alive = False


C = TypeVar("C", bound=WsClient)


async def open_ws(port: int, factory: Callable[[], C], *, timeout: float = 30.0) -> C:
    """Connect to 127.0.0.1:`port` with the protocol `factory()` builds and complete the upgrade.

    Raises:
        ConnectionError: refused, closed, or answered with something other than 101.
        TimeoutError: no upgrade response within `timeout`.
    """
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(loop.create_connection(factory, LOOPBACK, port), timeout)
    status = await asyncio.wait_for(client.opened, timeout)
    if status != 101:
        raise ConnectionError(f"upgrade refused: HTTP {status} {client.error_body[:200]!r}")
    return client


async def open_client(
    port: int, path: str, stats: Stats, *, counting: bool = True, timeout: float = 30.0
) -> WsClient:
    """`open_ws` for a plain `WsClient`."""
    return await open_ws(
        port, lambda: WsClient(path, port, stats, counting=counting), timeout=timeout
    )


class HttpPublisher(asyncio.Protocol):
    """Keep-alive HTTP/1.1 client for `POST /api/broadcast`; one request in flight at a time.

    Messages submitted while a request is in flight go out in the next request (a batch).
    """

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._in_flight = False
        self._buf = b""
        self.requests = 0
        self.errors: Counter[int] = Counter()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.idle = asyncio.Event()
        self.idle.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.idle.set()

    def submit(self, items: list[bytes]) -> None:
        """Queue pre-encoded message objects (`{"topic":...,"event":...,"payload":...}`)."""
        self._pending.extend(items)
        if not self._in_flight:
            self._flush()

    def _flush(self) -> None:
        if not self._pending or self.transport is None:
            return
        body = b'{"messages":[' + b",".join(self._pending[:1000]) + b"]}"
        del self._pending[:1000]
        head = (
            "POST /api/broadcast HTTP/1.1\r\n"
            f"Host: {LOOPBACK}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._in_flight = True
        self.idle.clear()
        self.requests += 1
        self.transport.write(head + body)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length :]
            if status != 202:
                self.errors[status] += 1
            self._in_flight = False
            if self._pending:
                self._flush()
            else:
                self.idle.set()
        self._buf = buf
