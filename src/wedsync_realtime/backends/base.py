"""Backend role interfaces. Every implementation passes the one contract suite in tests/contract.

A `Broker` carries messages between nodes. It is at-most-once and keeps the publish order of one
publisher on one channel; the node fans out locally first and then publishes, tagging each message
with its origin so that no node delivers its own message twice (python-socketio `host_id`,
centrifuge `Node.publish`).

A `HistoryStore` keeps, per channel, a short stream of recent messages, each at a position
(offset, epoch), so that a client that was briefly away can be sent exactly what it missed, or be
told that this is no longer possible (Centrifugo's history and recovery; see
reference/centrifugo-phoenix-collab.md sections 1.2 and 1.3). History is a cache, never the
source of truth: a caller told `recoverable=False` reloads state from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "AppendResult",
    "Broker",
    "BrokerHandler",
    "BrokerMessage",
    "HistoryEntry",
    "HistoryRead",
    "HistoryStore",
    "StreamPosition",
]


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """A message between nodes: `body` is JSON-compatible, except bytes values."""

    channel: str
    origin: str
    body: dict[str, Any]


class BrokerHandler(Protocol):
    """What a broker calls back into (the node)."""

    async def handle_message(self, message: BrokerMessage) -> None: ...


class Broker(Protocol):
    """Cross-node fan-out."""

    async def start(self, handler: BrokerHandler) -> None: ...

    async def subscribe(self, *channels: str) -> None: ...

    async def unsubscribe(self, *channels: str) -> None: ...

    async def publish(self, message: BrokerMessage) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in a channel's stream: the offset of a message and the stream's epoch.

    Offsets start at 1 for the first message of a stream and grow by 1 per append; offset 0 is
    "before the first message". The epoch is a random string that changes whenever the stream is
    lost and started again (expiry, removal, restart of a memory node), so an offset is only ever
    compared with offsets of the same epoch.
    """

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One stored message: its offset in the stream, its message id, when it was appended
    (wall-clock milliseconds since the Unix epoch; never decreasing within a stream), and its body
    (JSON-compatible, except bytes values)."""

    offset: int
    id: str
    time_ms: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append put the message; `duplicate` when its message id had been appended on the
    channel before (within the idempotency window) and so nothing was appended: `position` is
    then the original append's position, which may belong to an epoch that has since ended."""

    position: StreamPosition
    duplicate: bool


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """The result of `HistoryStore.read`.

    `entries` are oldest first; `top` is the stream's current position (its epoch and the offset
    of its newest message, 0 if none yet); `recoverable` says whether the store still holds
    *every* message of the range asked for (see `HistoryStore.read`), regardless of `limit`.
    """

    entries: list[HistoryEntry]
    top: StreamPosition
    recoverable: bool


class HistoryStore(Protocol):
    """Per-channel message history with offsets, epochs and idempotent appends.

    Semantics (Centrifugo's, where it has one):

    * A channel's stream starts on its first `append` (or `position`/`read`, which start an empty
      one so that subscribers get an epoch before the first message) with a new random epoch and
      offset 0; each append takes the next offset.
    * The stream keeps at most `max_size` entries (the value given with each append; the oldest
      are trimmed) and an entry expires `ttl` seconds after its append. Retained entries are always
      a run ending at the newest: when an entry expires, every older one is dropped with it (so
      with a varying `ttl` an entry can go before its own time).
    * The stream itself (epoch and top offset) expires `max(ttl, meta_ttl)` seconds after its
      last append, or `meta_ttl` seconds after `position`/`read` started it empty; `meta_ttl` is an
      implementation setting (Centrifugo's history meta TTL). With `meta_ttl=0` a stream lives
      exactly as long as its newest entry, no empty stream is kept, and a channel without one
      reports `StreamPosition(0, "")` (an epoch no stream has). The next append then starts a new
      stream: new epoch, offsets from 1.
    * Appends on one channel are serialised: offsets are dense and follow the order in which
      appends complete.

    TTLs are in seconds and are measured on the implementation's clock.
    """

    async def append(
        self, channel: str, body: dict[str, Any], *, message_id: str, max_size: int, ttl: float
    ) -> AppendResult:
        """Append `body` as the channel's next message and return its position.

        If `message_id` was appended on this channel less than `idempotency_ttl` seconds ago (an
        implementation setting, default 300 s, counted from that first append), append nothing
        and return the original position with `duplicate=True` — even if that entry or its
        whole stream is gone since. Removing the stream does not forget message ids.

        Raises ValueError if `max_size < 1` or `ttl <= 0`.
        """
        ...

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> HistoryRead:
        """Read retained entries, oldest first, at most `limit` (0: only `top`).

        * `since`: a recovery read. The entries with offsets after `since.offset`.
          `recoverable` is true iff `since.epoch` is the current epoch and no entry after
          `since.offset` has been dropped (trimmed or expired) and `since.offset <= top.offset`.
          When it is false, `entries` is empty: a recovery is all or nothing.
        * `since_ms`: the retained entries with `time_ms >= since_ms`. `recoverable` is true iff
          the current stream started before `since_ms` and has dropped no entry with
          `time_ms >= since_ms` (conservative at millisecond ties).
        * neither: all retained entries; `recoverable` is true iff the current stream has
          dropped none.

        `recoverable` does not depend on `limit`: to read on, call again with `since` set to the
        last entry's offset and `top.epoch`. Starts an empty stream if the channel has none.
        Raises ValueError if both `since` and `since_ms` are given or `limit < 0`.
        """
        ...

    async def position(self, channel: str) -> StreamPosition:
        """The stream's current top position; starts an empty stream if the channel has none."""
        ...

    async def remove(self, channel: str) -> None:
        """Drop the channel's stream (its next append starts a new epoch); harmless if absent."""
        ...

    async def close(self) -> None:
        """Release resources; later calls other than `close` raise RuntimeError. Idempotent."""
        ...
