"""The offline outbox: broadcasts the application made while it could not reach the server.

SPEC.md "Offline": changes are queued locally in order and applied in order on reconnect; each
one lives 5 minutes (the server forgets message ids after 5 minutes too, so a later retry could
no longer be de-duplicated). Each entry carries the message id it will be published with, so a
message whose first attempt did reach the server (the ack was lost with the connection) is
recognised and not published twice.

Storage is stdlib `sqlite3`: a file survives a restart of the application (the "3 changes waiting"
must not vanish with the process), and `:memory:` is the default when no path is given. SQLite
calls block, and a commit on a file waits for the disk, so every call runs on one dedicated
worker thread (`OutboxStore` is confined to it): the event loop never waits on the disk, and one
thread keeps the calls in the order they were made. The counts the application watches are kept
in memory as well, so the bound check and `size` never wait.

Ordering is by `seq`, a number taken when `send()` is called, not when the row is written: a
message that was in flight when the connection dropped goes into the outbox later than one sent
after the drop, yet it must be published first.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from wedsync_realtime.client.errors import OutboxFull

__all__ = ["DEFAULT_MAX_SIZE", "DEFAULT_TTL", "Outbox", "OutboxEntry", "OutboxStore"]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 1000
#: Seconds an entry lives (SPEC.md: buffered messages live 5 minutes).
DEFAULT_TTL = 300.0

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY,  -- send() order, kept across restarts
    channel    TEXT    NOT NULL,     -- channel name, without the realtime: prefix
    message_id TEXT    NOT NULL,     -- sent as meta.id: the server de-duplicates on it
    event      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,     -- JSON
    created_at REAL    NOT NULL      -- wall clock, seconds: TTLs must survive a restart
);
CREATE INDEX IF NOT EXISTS outbox_channel ON outbox (channel, seq);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    channel: str
    message_id: str
    event: str
    payload: dict[str, Any]
    created_at: float


class OutboxStore:
    """The SQLite table, synchronous. Not thread-safe: one thread at a time (see `Outbox`)."""

    def __init__(self, path: str | Path | None, *, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("outbox ttl must be > 0")
        self.ttl = ttl
        # check_same_thread=False: opened on the caller's thread, used on the worker thread.
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False
        )
        if path is not None:
            # WAL with synchronous=NORMAL: a commit survives an application crash without an
            # fsync per message (it may lose the last commits on a power cut).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def put(self, entry: OutboxEntry) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO outbox (seq, channel, message_id, event, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.channel,
                    entry.message_id,
                    entry.event,
                    orjson.dumps(entry.payload),
                    entry.created_at,
                ),
            )

    def remove(self, seq: int) -> bool:
        with self._db:
            return self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount > 0

    def expire(self, now: float) -> Counter[str]:
        """Delete entries older than the TTL; returns how many went, per channel."""
        cutoff = now - self.ttl
        rows = self._db.execute(
            "SELECT channel, COUNT(*) FROM outbox WHERE created_at <= ? GROUP BY channel",
            (cutoff,),
        ).fetchall()
        if rows:
            with self._db:
                self._db.execute("DELETE FROM outbox WHERE created_at <= ?", (cutoff,))
        return Counter({channel: count for channel, count in rows})

    def peek(self, channel: str, limit: int) -> list[OutboxEntry]:
        """The oldest `limit` entries of `channel`, in send order (expired ones included: call
        `expire` first)."""
        rows = self._db.execute(
            "SELECT seq, channel, message_id, event, payload, created_at FROM outbox "
            "WHERE channel = ? ORDER BY seq LIMIT ?",
            (channel, limit),
        ).fetchall()
        return [
            OutboxEntry(seq, ch, mid, event, orjson.loads(payload), created)
            for seq, ch, mid, event, payload, created in rows
        ]

    def counts(self) -> Counter[str]:
        rows = self._db.execute("SELECT channel, COUNT(*) FROM outbox GROUP BY channel")
        return Counter({channel: count for channel, count in rows})

    def max_seq(self) -> int:
        value = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
        return int(value) if value is not None else 0


class Outbox:
    """The asyncio face of `OutboxStore`: bounded, observable, with TTLs.

    `size` and the `on_change` callbacks are what the "3 changes waiting" banner shows; `expired`
    counts entries dropped because they outlived the TTL.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_size < 1:
            raise ValueError("outbox max_size must be >= 1")
        self.path = path
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._store: OutboxStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._counts: Counter[str] = Counter()
        self._next_seq = 1
        self.expired = 0
        self._listeners: list[Callable[[int], None]] = []

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the store, drop expired entries, load the counts."""
        if self._store is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wedsync-outbox")
        self._store = await self._run(OutboxStore, self.path, ttl=self.ttl)
        store = self._store
        gone = await self._run(store.expire, self._clock())
        self._note_expired(gone)
        self._counts = await self._run(store.counts)
        self._next_seq = await self._run(store.max_seq) + 1
        self._notify()

    async def close(self) -> None:
        store, executor = self._store, self._executor
        self._store = self._executor = None
        if store is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, store.close)
        if executor is not None:
            executor.shutdown(wait=False)

    # -- observing -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Messages waiting, all channels together."""
        return self._counts.total()

    def count(self, channel: str) -> int:
        return self._counts[channel]

    def on_change(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(size)` whenever the size changes; returns a function that removes it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _notify(self) -> None:
        size = self.size
        for listener in list(self._listeners):
            try:
                listener(size)
            except Exception:
                log.exception("outbox listener failed")

    # -- operations ----------------------------------------------------------------------------

    def reserve_seq(self) -> int:
        """A place in the send order, taken when the application sends (see the module doc)."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    async def put(
        self,
        seq: int,
        channel: str,
        message_id: str,
        event: str,
        payload: dict[str, Any],
    ) -> OutboxEntry:
        """Queue a message.

        Raises:
            OutboxFull: `max_size` messages are already waiting.
        """
        if self.size >= self.max_size:
            raise OutboxFull(self.size)
        entry = OutboxEntry(seq, channel, message_id, event, payload, self._clock())
        # Counted before the write so that the bound holds for concurrent calls.
        self._counts[channel] += 1
        try:
            await self._run(self._require().put, entry)
        except BaseException:
            self._decrement(channel, 1)
            raise
        self._notify()
        return entry

    async def peek(self, channel: str, limit: int = 100) -> list[OutboxEntry]:
        """The oldest unexpired entries of `channel`, in send order."""
        store = self._require()
        gone = await self._run(store.expire, self._clock())
        self._note_expired(gone)
        return await self._run(store.peek, channel, limit)

    async def remove(self, entry: OutboxEntry) -> None:
        """Drop an entry that the server has (or has refused for good)."""
        if await self._run(self._require().remove, entry.seq):
            self._decrement(entry.channel, 1)
            self._notify()

    # -- internals -----------------------------------------------------------------------------

    def _note_expired(self, gone: Counter[str]) -> None:
        if not gone:
            return
        total = gone.total()
        self.expired += total
        log.warning("outbox: %d messages older than %.0f s dropped", total, self.ttl)
        for channel, count in gone.items():
            self._decrement(channel, count)
        self._notify()

    def _decrement(self, channel: str, count: int) -> None:
        self._counts[channel] -= count
        if self._counts[channel] <= 0:
            del self._counts[channel]

    def _require(self) -> OutboxStore:
        if self._store is None:
            raise RuntimeError("outbox is not open")
        return self._store

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        executor = self._executor
        if executor is None:
            raise RuntimeError("outbox is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: function(*args, **kwargs))
