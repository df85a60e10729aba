"""In-memory backends: the reference implementations, for one process.

Several `MemoryBroker`s sharing one `MemoryBus` behave like nodes sharing a Redis server, which
lets the multi-node paths be tested without one. `MemoryHistory` is the reference `HistoryStore`
for one node: its history (and epochs) end with the process, which clients see as a new epoch.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wedsync_realtime.backends.base import (
    AppendResult,
    BrokerHandler,
    BrokerMessage,
    HistoryEntry,
    HistoryRead,
    StreamPosition,
)

__all__ = ["MemoryBroker", "MemoryBus", "MemoryHistory"]


class MemoryBus:
    """The shared medium of a set of memory brokers."""

    def __init__(self) -> None:
        self.brokers: list[MemoryBroker] = []


class MemoryBroker:
    """Delivers each message to every other broker on the bus subscribed to its channel.

    Handlers are awaited in publish order, so one publisher's order on a channel is kept.
    """

    def __init__(self, bus: MemoryBus | None = None) -> None:
        self._bus = bus if bus is not None else MemoryBus()
        self._handler: BrokerHandler | None = None
        self._channels: set[str] = set()

    async def start(self, handler: BrokerHandler) -> None:
        if self._handler is not None:
            raise RuntimeError("broker already started")
        self._handler = handler
        self._bus.brokers.append(self)

    async def subscribe(self, *channels: str) -> None:
        self._channels.update(channels)

    async def unsubscribe(self, *channels: str) -> None:
        self._channels.difference_update(channels)

    async def publish(self, message: BrokerMessage) -> None:
        if self._handler is None:
            raise RuntimeError("broker not started")
        for broker in self._bus.brokers:
            if broker is not self and message.channel in broker._channels and broker._handler:
                await broker._handler.handle_message(message)

    async def close(self) -> None:
        if self in self._bus.brokers:
            self._bus.brokers.remove(self)
        self._handler = None
        self._channels.clear()


@dataclass(slots=True)
class _Stored:
    entry: HistoryEntry
    # When this entry goes: the earliest deadline among it and every newer entry, so that the
    # deadlines never decrease from oldest to newest and expiry only ever pops the oldest.
    drop_at: float


@dataclass(slots=True)
class _Stream:
    epoch: str
    created_ms: int
    expires_at: float
    top: int = 0
    last_time_ms: int = 0
    # time_ms of the newest entry dropped (trimmed or expired) from this stream, if any.
    dropped_ms: int | None = None
    entries: deque[_Stored] = field(default_factory=deque)

    def drop_oldest(self) -> None:
        self.dropped_ms = self.entries.popleft().entry.time_ms

    def expire_entries(self, now: float) -> None:
        while self.entries and self.entries[0].drop_at <= now:
            self.drop_oldest()

    @property
    def first_offset(self) -> int:
        """The oldest retained offset; top + 1 when nothing is retained."""
        return self.entries[0].entry.offset if self.entries else self.top + 1


def _new_epoch() -> str:
    return secrets.token_urlsafe(6)


class MemoryHistory:
    """The reference `HistoryStore` (semantics in backends/base.py), in this process's memory.

    `clock` (seconds, monotonic) measures every TTL; `wall_clock` (seconds since the Unix epoch)
    stamps `HistoryEntry.time_ms`. `meta_ttl` is how long a stream's epoch and top outlive its
    last append at least (0: only as long as its newest entry); `idempotency_ttl` how long an
    appended message id is remembered per channel.

    Appends need no lock: no method awaits between reading and writing the state, so each call
    is atomic on the event loop, and per-channel serialisation is the loop's own order.

    Memory is bounded by what is live: expired entries, streams and message ids are dropped when
    their channel is next used, and `prune()` drops them for all channels (call it periodically;
    a channel that is never used again is otherwise kept until then).
    """

    def __init__(
        self,
        *,
        idempotency_ttl: float = 300.0,
        meta_ttl: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if idempotency_ttl < 0 or meta_ttl < 0:
            raise ValueError("idempotency_ttl and meta_ttl must be >= 0")
        self._idempotency_ttl = idempotency_ttl
        self._meta_ttl = meta_ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._streams: dict[str, _Stream] = {}
        # channel -> message id -> (original position, forget at). Insertion order is deadline
        # order, since the TTL is one constant and the clock is monotonic.
        self._ids: dict[str, dict[str, tuple[StreamPosition, float]]] = {}
        self._closed = False

    async def append(
        self, channel: str, body: dict[str, Any], *, message_id: str, max_size: int, ttl: float
    ) -> AppendResult:
        self._check_open()
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        now = self._clock()
        ids = self._live_ids(channel, now)
        if ids is not None and message_id in ids:
            return AppendResult(ids[message_id][0], duplicate=True)
        stream = self._live_stream(channel, now)
        if stream is None:
            stream = self._start_stream(channel, now)
        stream.top += 1
        stream.last_time_ms = max(self._now_ms(), stream.last_time_ms)
        deadline = now + ttl
        for older in reversed(stream.entries):
            if older.drop_at <= deadline:
                break
            older.drop_at = deadline
        stream.entries.append(
            _Stored(HistoryEntry(stream.top, message_id, stream.last_time_ms, body), deadline)
        )
        while len(stream.entries) > max_size:
            stream.drop_oldest()
        stream.expires_at = now + max(ttl, self._meta_ttl)
        position = StreamPosition(stream.top, stream.epoch)
        if self._idempotency_ttl > 0:
            self._ids.setdefault(channel, {})[message_id] = (
                position,
                now + self._idempotency_ttl,
            )
        return AppendResult(position, duplicate=False)

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> HistoryRead:
        self._check_open()
        if since is not None and since_ms is not None:
            raise ValueError("give since or since_ms, not both")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        stream = self._stream_for_read(channel)
        top = StreamPosition(stream.top, stream.epoch) if stream else StreamPosition(0, "")
        retained = list(stream.entries) if stream else []
        if since is not None:
            if (
                stream is None
                or since.epoch != stream.epoch
                or not stream.first_offset - 1 <= since.offset <= stream.top
            ):
                return HistoryRead([], top, recoverable=False)
            # Offsets are dense, so the entries after since.offset start at a known index.
            start = since.offset - (stream.first_offset - 1)
            chosen = [s.entry for s in retained[start : start + limit]]
            return HistoryRead(chosen, top, recoverable=True)
        if since_ms is not None:
            recoverable = (
                stream is not None
                and stream.created_ms < since_ms
                and (stream.dropped_ms is None or stream.dropped_ms < since_ms)
            )
            matching = (s.entry for s in retained if s.entry.time_ms >= since_ms)
        else:
            recoverable = stream is not None and stream.dropped_ms is None
            matching = (s.entry for s in retained)
        chosen = [entry for entry, _ in zip(matching, range(limit), strict=False)]
        return HistoryRead(chosen, top, recoverable)

    async def position(self, channel: str) -> StreamPosition:
        self._check_open()
        stream = self._stream_for_read(channel)
        return StreamPosition(stream.top, stream.epoch) if stream else StreamPosition(0, "")

    async def remove(self, channel: str) -> None:
        self._check_open()
        self._streams.pop(channel, None)

    async def close(self) -> None:
        self._closed = True
        self._streams.clear()
        self._ids.clear()

    def prune(self) -> None:
        """Drop every expired entry, stream and message id, for all channels."""
        now = self._clock()
        for channel in list(self._streams):
            self._live_stream(channel, now)
        for channel in list(self._ids):
            self._live_ids(channel, now)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("history store closed")

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _start_stream(self, channel: str, now: float) -> _Stream:
        stream = _Stream(_new_epoch(), self._now_ms(), now + self._meta_ttl)
        self._streams[channel] = stream
        return stream

    def _stream_for_read(self, channel: str) -> _Stream | None:
        """The live stream, started empty if there is none; None only when `meta_ttl` is 0
        (an empty stream would be expired at once, so none is kept)."""
        now = self._clock()
        stream = self._live_stream(channel, now)
        if stream is None and self._meta_ttl > 0:
            stream = self._start_stream(channel, now)
        return stream

    def _live_stream(self, channel: str, now: float) -> _Stream | None:
        stream = self._streams.get(channel)
        if stream is None:
            return None
        if stream.expires_at <= now:
            del self._streams[channel]
            return None
        stream.expire_entries(now)
        return stream

    def _live_ids(self, channel: str, now: float) -> dict[str, tuple[StreamPosition, float]] | None:
        ids = self._ids.get(channel)
        if ids is None:
            return None
        while ids:
            oldest = next(iter(ids))
            if ids[oldest][1] > now:
                break
            del ids[oldest]
        if not ids:
            del self._ids[channel]
            return None
        return ids
