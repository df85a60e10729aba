"""Broadcast history as the engine uses it: what is stored, what a publish reports, and the
per-channel serialisation that keeps offsets and delivery order in step.

Positions follow Centrifugo (reference/centrifugo-phoenix-collab.md §1.2): each broadcast on a
channel with history gets the next offset of the channel's stream and the stream's epoch, both
sent to clients in the message's `meta` next to its id. A client that reconnects asks for what
came after its last position (`config.broadcast.recover`); the server answers with all of it or,
when history no longer holds all of it, with `recovered: false` and nothing, never a gap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from wedsync_realtime.backends.base import HistoryEntry, StreamPosition
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import PayloadEncoding

__all__ = [
    "ChannelLocks",
    "Published",
    "history_body",
    "message_from_entry",
    "position_meta",
]

#: Longest client-chosen message id accepted (ids are UUIDs or similar keys).
MAX_MESSAGE_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Published:
    """What one publish did. `position` is None on channels without history; `duplicate` when
    the id had been published on the channel within the idempotency window, in which case
    nothing was delivered and `position` is where the first publish put it."""

    id: str
    position: StreamPosition | None
    duplicate: bool = False
    #: Local deliveries (this node's subscribers).
    delivered: int = 0

    def ack(self) -> dict[str, Any]:
        """The `response` of a broadcast ack, and an item of the REST answer."""
        body: dict[str, Any] = {"id": self.id}
        if self.position is not None:
            body["offset"] = self.position.offset
            body["epoch"] = self.position.epoch
        if self.duplicate:
            body["duplicate"] = True
        return body


def position_meta(position: StreamPosition) -> dict[str, Any]:
    return {"offset": position.offset, "epoch": position.epoch}


def history_body(message: OutboundBroadcast) -> dict[str, Any]:
    """What history keeps of a broadcast: enough to send it again in either protocol version."""
    return {
        "event": message.event,
        "payload": message.payload,
        "raw": message.raw,
        "encoding": int(message.encoding),
    }


def message_from_entry(
    topic: str, entry: HistoryEntry, epoch: str, *, replayed: bool
) -> OutboundBroadcast:
    """A stored broadcast as it goes out again; `replayed` marks it the way Supabase marks
    Broadcast Replay messages (`meta.replayed: true`)."""
    body = entry.body
    meta: dict[str, Any] = {"id": entry.id, "offset": entry.offset, "epoch": epoch}
    if replayed:
        meta["replayed"] = True
    return OutboundBroadcast(
        topic=topic,
        event=body["event"],
        payload=body["payload"],
        raw=body["raw"],
        encoding=PayloadEncoding(body["encoding"]),
        meta=meta,
    )


class ChannelLocks:
    """One lock per channel, alive only while someone holds or waits for it.

    Append and fan-out of one channel run under its lock so that the order in which messages
    reach subscribers is the order of their offsets, even with a history store whose appends
    suspend (a network round trip) and could otherwise complete out of order.

    Used as `await locks.acquire(channel)` ... `locks.release(channel)` in try/finally rather
    than as a context manager: this is on every publish, and the uncontended path here is a
    dict lookup, a counter update and `asyncio.Lock.acquire`'s fast path.
    """

    def __init__(self) -> None:
        # channel -> (its lock, holders and waiters)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def acquire(self, channel: str) -> None:
        entry = self._locks.get(channel)
        if entry is None:
            entry = self._locks[channel] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._drop_user(channel, users)
            raise

    def release(self, channel: str) -> None:
        lock, users = self._locks[channel]
        lock.release()
        self._drop_user(channel, users)

    def _drop_user(self, channel: str, users: list[int]) -> None:
        users[0] -= 1
        if users[0] == 0:
            del self._locks[channel]

    def __len__(self) -> int:
        return len(self._locks)
