"""The audit log of real-time access and events (SPEC.md "Security and privacy"), kept off the
hot path.

What is recorded, in the specification's tables (SPEC.md "Data model"):

* ``realtime_subscriptions`` — a user joining a channel (`connected_at`, tier, channel cap,
  `filters`: the join's Postgres Changes bindings) and leaving it (`disconnected_at`); one row
  per user and channel (a rejoin updates it). The user is the JWT `sub`, or the role for keys
  without one. Several connections of one user on one channel are one subscription: connected
  when the first joins, disconnected when the last leaves. `last_activity` is touched at most
  once a minute per subscription (a broadcast or a presence track on the channel).
* ``realtime_presence`` — one row per user and channel, upserted whenever one of the user's
  presences there changes (tracked, decayed, hidden, untracked). A user with several tabs is
  shown by the most available one; when the last leaves the row says ``offline``. The table's
  statuses are online, away, busy and offline: ``idle`` is written as ``away``, and "appear
  offline" as ``offline``.
* ``realtime_events`` — every event routed through the domain router and every ``POST
  /api/realtime/events``: `broadcast_count` the channels it was published on (an idempotent
  repeat is not), `delivered_count` this node's local deliveries, `failed_count` the channels
  whose publish failed; and every refused access as ``access_denied`` (a join, a read or a
  write the policy refused) or ``access_revoked`` (a joined channel closed because the rights
  went away), the same moments the ``wedsync_realtime.audit`` log lines are written.
* ``realtime_metrics`` — a snapshot of a few of the node's figures every minute
  (`node_figures`).
* ``realtime_channels`` — every channel named by a row above, by name, with its type
  (`channel_type`, given by the composition root).

**Never on the hot path.** The engine calls `AuditRecorder` synchronously; each call builds one
small record and appends it to a bounded queue (O(1), no I/O, never raises). One background
task writes the queue to the `AuditLog` in batches (``executemany`` in one transaction) every
`flush_every_s` or as soon as `batch_size` records wait. A slow or dead database therefore never
blocks a join or a broadcast: records wait in the queue, which drops its oldest record when full
(counted in `AuditRecorder.dropped`, logged once per burst). A failed write keeps its batch for a
retry (with backoff, up to `max_attempts` attempts, then the batch is dropped and counted).
Closing flushes what is queued, for at most `CLOSE_TIMEOUT_S`.

`AuditLog` is the storage role: `MemoryAuditLog` here is its reference implementation;
`store.audit_sqlite` and `store.audit_postgres` pass the same contract suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from wedsync_realtime.engine.presence_status import ACTIVE
from wedsync_realtime.protocol.session import CHANNEL_PREFIX

if TYPE_CHECKING:
    from wedsync_realtime.engine.node import Node

__all__ = [
    "ACCESS_DENIED",
    "ACCESS_REVOKED",
    "DEFAULT_EXPIRES_S",
    "AuditLog",
    "AuditRecord",
    "AuditRecorder",
    "EventRecord",
    "Figure",
    "MemoryAuditLog",
    "MetricRecord",
    "PresenceRecord",
    "Subscription",
    "SubscriptionActive",
    "SubscriptionJoined",
    "SubscriptionLeft",
    "millis",
    "node_figures",
    "presence_status",
]

log = logging.getLogger(__name__)

#: `event_type` of a refused join, read or write.
ACCESS_DENIED = "access_denied"
#: `event_type` of a joined channel closed because the caller lost the right to read it.
ACCESS_REVOKED = "access_revoked"

#: Statuses ``realtime_presence.status`` allows (its CHECK constraint).
PRESENCE_STATUSES = ("online", "busy", "away", "offline")
#: Device types ``realtime_presence.device_type`` allows besides ``unknown``.
DEVICE_TYPES = frozenset({"desktop", "mobile", "tablet"})
#: ``realtime_events.expires_at`` default: SPEC.md "now + 5 min".
DEFAULT_EXPIRES_S = 300.0
DEFAULT_PRIORITY = 5

#: Records queued at most; beyond it the oldest is dropped.
QUEUE_MAX = 10_000
#: Records written per batch (one transaction), and the queue length that wakes the writer.
BATCH_SIZE = 500
#: Seconds between two writes of what is queued.
FLUSH_EVERY_S = 1.0
#: Attempts to write one batch before it is dropped.
MAX_ATTEMPTS = 5
#: Longest wait between two attempts (doubling from `FLUSH_EVERY_S`).
MAX_BACKOFF_S = 30.0
#: Longest a closing recorder spends writing what is left.
CLOSE_TIMEOUT_S = 5.0
#: A subscription's `last_activity` is written at most this often.
ACTIVITY_EVERY_S = 60.0
#: Seconds between two snapshots of the node's figures.
METRICS_EVERY_S = 60.0
#: Seconds between two prunes of rows older than the retention.
PRUNE_EVERY_S = 3_600.0
#: Channels whose figures go into each metrics snapshot (the busiest).
METRICS_CHANNELS = 5


def millis(wall: float) -> float:
    """Wall time `wall` (epoch seconds) truncated to the millisecond: what every backend keeps
    (SQLite stores ISO text with milliseconds), so a time reads back equal to what was written.

    Instants are epoch seconds (floats) in records and rows alike: building a datetime per
    record would cost the engine more than the record itself.
    """
    return math.floor(wall * 1000) / 1000


# -- records and rows ---------------------------------------------------------------------------


@dataclass(slots=True)
class SubscriptionJoined:
    """`user_id` joined `channel`: the subscription row is created, or reset when it exists."""

    user_id: str
    channel: str
    filters: Mapping[str, Any]
    tier: str
    max_channels_allowed: int
    at: float


@dataclass(slots=True)
class SubscriptionLeft:
    """`user_id` left `channel`: `disconnected_at` is set (no row: nothing happens)."""

    user_id: str
    channel: str
    at: float


@dataclass(slots=True)
class SubscriptionActive:
    """Activity on a subscription: `last_activity` is set (no row: nothing happens)."""

    user_id: str
    channel: str
    at: float


@dataclass(slots=True)
class Subscription:
    """A ``realtime_subscriptions`` row, as the read API returns it."""

    user_id: str
    channel: str
    filters: Mapping[str, Any]
    tier: str
    max_channels_allowed: int
    connected_at: float
    last_activity: float
    disconnected_at: float | None


@dataclass(slots=True)
class PresenceRecord:
    """A ``realtime_presence`` row: written as an upsert per (user, channel), read back as is."""

    user_id: str
    channel: str
    #: One of `PRESENCE_STATUSES`.
    status: str
    current_page: str | None
    is_typing: bool
    #: desktop, mobile, tablet, unknown (a value the table does not know) or None (not given).
    device_type: str | None
    last_activity: float
    presence_data: Mapping[str, Any]


@dataclass(slots=True)
class EventRecord:
    """A ``realtime_events`` row (inserted)."""

    event_type: str
    #: None: an event on no channel.
    channel: str | None
    user_id: str | None
    payload: Mapping[str, Any]
    broadcast_count: int
    delivered_count: int
    failed_count: int
    priority: int
    created_at: float
    expires_at: float


@dataclass(slots=True)
class MetricRecord:
    """A ``realtime_metrics`` row (inserted)."""

    name: str
    value: float
    unit: str | None
    channel: str | None
    user_id: str | None
    recorded_at: float


AuditRecord: TypeAlias = (
    SubscriptionJoined
    | SubscriptionLeft
    | SubscriptionActive
    | PresenceRecord
    | EventRecord
    | MetricRecord
)

#: (metric name, value, unit, channel or None): one figure of a snapshot.
Figure: TypeAlias = tuple[str, float, str | None, str | None]


class AuditLog(Protocol):
    """Where audit records are stored (memory, SQLite, PostgreSQL), and a small read API.

    `write` applies a batch in order, atomically where the backend can: first it makes sure
    every channel of `channels` (name → type: private, shared, broadcast or resource) has its
    ``realtime_channels`` row (an existing row keeps its type); every channel a record names
    is among them. Reads answer in a stable order (see each).
    """

    async def write(self, channels: Mapping[str, str], records: Sequence[AuditRecord]) -> None:
        """Apply `records` in order (see each record type)."""
        ...

    async def prune(self, before: float) -> int:
        """Delete ended subscriptions (`disconnected_at`), presences (`last_activity`), events
        (`created_at`) and metrics (`recorded_at`) before `before` (epoch seconds); returns
        how many."""
        ...

    async def channels(self) -> dict[str, str]:
        """Every channel row: name → type."""
        ...

    async def subscriptions(self, user_id: str | None = None) -> list[Subscription]:
        """The subscriptions (of `user_id`, when given), by user then channel."""
        ...

    async def presence(self, user_id: str | None = None) -> list[PresenceRecord]:
        """The presence rows (of `user_id`, when given), by user then channel."""
        ...

    async def events(self, limit: int = 100, *, event_type: str | None = None) -> list[EventRecord]:
        """The newest `limit` events (of `event_type`, when given), newest first."""
        ...

    async def metrics(self, name: str | None = None, limit: int = 100) -> list[MetricRecord]:
        """The newest `limit` metric rows (named `name`, when given), newest first."""
        ...


class MemoryAuditLog:
    """The reference `AuditLog`: the tables as Python values (tests; no persistence)."""

    def __init__(self) -> None:
        self._channels: dict[str, str] = {}
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._presence: dict[tuple[str, str], PresenceRecord] = {}
        self._events: list[EventRecord] = []
        self._metrics: list[MetricRecord] = []

    async def write(self, channels: Mapping[str, str], records: Sequence[AuditRecord]) -> None:
        known = {**channels, **self._channels}
        for record in records:
            channel = record.channel
            if channel is not None and channel not in known:
                raise ValueError(f"record names channel {channel!r}, which is not in `channels`")
        self._channels = known
        for record in records:
            self._apply(record)

    def _apply(self, record: AuditRecord) -> None:
        subscriptions = self._subscriptions
        match record:
            case SubscriptionJoined():
                key = (record.user_id, record.channel)
                subscriptions[key] = Subscription(
                    record.user_id,
                    record.channel,
                    dict(record.filters),
                    record.tier,
                    record.max_channels_allowed,
                    record.at,
                    record.at,
                    None,
                )
            case SubscriptionLeft():
                key = (record.user_id, record.channel)
                if key in subscriptions:
                    subscriptions[key] = replace(subscriptions[key], disconnected_at=record.at)
            case SubscriptionActive():
                key = (record.user_id, record.channel)
                if key in subscriptions:
                    subscriptions[key] = replace(subscriptions[key], last_activity=record.at)
            case PresenceRecord():
                self._presence[(record.user_id, record.channel)] = replace(
                    record, presence_data=dict(record.presence_data)
                )
            case EventRecord():
                self._events.append(replace(record, payload=dict(record.payload)))
            case MetricRecord():
                self._metrics.append(record)

    async def prune(self, before: float) -> int:
        subscriptions = {
            key: row
            for key, row in self._subscriptions.items()
            if row.disconnected_at is None or row.disconnected_at >= before
        }
        presence = {k: p for k, p in self._presence.items() if p.last_activity >= before}
        events = [e for e in self._events if e.created_at >= before]
        metrics = [m for m in self._metrics if m.recorded_at >= before]
        removed = (
            len(self._subscriptions)
            - len(subscriptions)
            + len(self._presence)
            - len(presence)
            + len(self._events)
            - len(events)
            + len(self._metrics)
            - len(metrics)
        )
        self._subscriptions, self._presence = subscriptions, presence
        self._events, self._metrics = events, metrics
        return removed

    async def channels(self) -> dict[str, str]:
        return dict(self._channels)

    async def subscriptions(self, user_id: str | None = None) -> list[Subscription]:
        return [
            row
            for key, row in sorted(self._subscriptions.items())
            if user_id is None or key[0] == user_id
        ]

    async def presence(self, user_id: str | None = None) -> list[PresenceRecord]:
        rows = sorted(self._presence.items())
        return [row for key, row in rows if user_id is None or key[0] == user_id]

    async def events(self, limit: int = 100, *, event_type: str | None = None) -> list[EventRecord]:
        # Newest first; among equal times the later written first (a stable sort of the
        # reversed list keeps that order).
        chosen = [e for e in reversed(self._events) if event_type in (None, e.event_type)]
        return sorted(chosen, key=lambda e: e.created_at, reverse=True)[:limit]

    async def metrics(self, name: str | None = None, limit: int = 100) -> list[MetricRecord]:
        chosen = [m for m in reversed(self._metrics) if name in (None, m.name)]
        return sorted(chosen, key=lambda m: m.recorded_at, reverse=True)[:limit]


# -- presence as the table records it ------------------------------------------------------------

#: Most available first: which of a user's presences on a channel the row shows.
_RANK = {status: rank for rank, status in enumerate(PRESENCE_STATUSES)}


def presence_status(status: str | None, *, hidden: bool) -> str:
    """The table's status for a presence: "appear offline" is ``offline``, ``idle`` is
    ``away`` (the table has no idle), a plain meta (no known status) ``online``."""
    if hidden:
        return "offline"
    if status == "idle":
        return "away"
    return status if status in _RANK else "online"


def _device(value: Any) -> str | None:
    if value is None:
        return None
    return value if value in DEVICE_TYPES else "unknown"


def _best(records: Iterable[PresenceRecord]) -> PresenceRecord:
    return min(records, key=lambda p: (_RANK[p.status], -p.last_activity))


# -- the recorder --------------------------------------------------------------------------------


class AuditRecorder:
    """What the engine tells the audit log: synchronous, O(1), never blocking nor raising;
    a background task (`start`) writes the bounded queue to `log` in batches.

    `channel_type` gives the ``realtime_channels.type`` of a channel name; `figures` the
    node's figures for the metrics snapshot (`node_figures`); `clock` is monotonic seconds,
    `wall_clock` epoch seconds (tests pass fake ones).
    """

    def __init__(
        self,
        log: AuditLog,
        *,
        channel_type: Callable[[str], str] = lambda name: "shared",
        figures: Callable[[], Iterable[Figure]] | None = None,
        retention_days: float = 30.0,
        queue_max: int = QUEUE_MAX,
        batch_size: int = BATCH_SIZE,
        flush_every_s: float = FLUSH_EVERY_S,
        max_attempts: int = MAX_ATTEMPTS,
        metrics_every_s: float = METRICS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_max < 1 or batch_size < 1 or max_attempts < 1:
            raise ValueError("queue_max, batch_size and max_attempts must be at least 1")
        self.log = log
        self._channel_type = channel_type
        self.figures = figures
        self._retention_s = retention_days * 86_400
        self._queue: deque[AuditRecord] = deque()
        self._queue_max = queue_max
        self._batch_size = batch_size
        self._flush_every_s = flush_every_s
        self._max_attempts = max_attempts
        self._metrics_every_s = metrics_every_s
        self._clock = clock
        self._wall_clock = wall_clock
        #: Records dropped (queue full, or a batch that failed `max_attempts` times).
        self.dropped = 0
        #: Records written.
        self.written = 0
        self._burst = 0
        self._failures = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._metrics_at = -math.inf
        self._pruned_at = -math.inf
        self._prune_due = False
        # Subscriptions: (connection id, topic) → user; (user, topic) → joined connections;
        # (user, topic) → monotonic time `last_activity` was last written.
        self._members: dict[tuple[str, str], str] = {}
        self._joined: dict[tuple[str, str], int] = {}
        self._touched: dict[tuple[str, str], float] = {}
        # Presence: (user, topic) → connection id → its presence as the table shows it.
        self._presences: dict[tuple[str, str], dict[str, PresenceRecord]] = {}

    # -- what the engine reports (synchronous, O(1)) -------------------------------------------

    def joined(
        self,
        conn_id: str,
        topic: str,
        user_id: str,
        *,
        tier: str,
        max_channels: int,
        bindings: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """A connection joined `topic` as `user_id` (the join reply went out). `bindings`: the
        join's Postgres Changes bindings, written as ``{"postgres_changes": [...]}``."""
        key = (user_id, topic)
        self._members[(conn_id, topic)] = user_id
        count = self._joined.get(key, 0)
        self._joined[key] = count + 1
        if count:  # the user's other connection holds the subscription already
            self._touch(key)
            return
        filters = {"postgres_changes": [dict(b) for b in bindings]} if bindings else {}
        self._touched[key] = self._clock()
        channel = _channel(topic)
        at = millis(self._wall_clock())
        limit = max_channels if max_channels > 0 else 1  # the table's CHECK: > 0
        self._put(SubscriptionJoined(user_id, channel, filters, tier, limit, at))

    def left(self, conn_id: str, topic: str) -> None:
        """A connection left `topic` (or its socket went); unknown ones are ignored."""
        user_id = self._members.pop((conn_id, topic), None)
        if user_id is None:
            return
        key = (user_id, topic)
        count = self._joined[key] - 1
        if count > 0:
            self._joined[key] = count
            return
        del self._joined[key]
        self._touched.pop(key, None)
        at = millis(self._wall_clock())
        self._put(SubscriptionLeft(user_id, _channel(topic), at))

    def activity(self, conn_id: str, topic: str) -> None:
        """Activity of a connection on `topic` (a broadcast, a presence track)."""
        user_id = self._members.get((conn_id, topic))
        if user_id is not None:
            self._touch((user_id, topic))

    def _touch(self, key: tuple[str, str]) -> None:
        now = self._clock()
        if now - self._touched.get(key, -math.inf) < ACTIVITY_EVERY_S:
            return
        self._touched[key] = now
        self._put(SubscriptionActive(key[0], _channel(key[1]), self._now()))

    def presence(
        self,
        conn_id: str,
        topic: str,
        user_id: str,
        payload: Mapping[str, Any] | None,
        *,
        status: str | None = None,
        last_activity: float | None = None,
        hidden: bool = False,
    ) -> None:
        """A presence of `conn_id` on `topic` changed: `payload` is what it tracks now (None:
        untracked), `status` its current status (the node's status clock; None: the
        payload's own), `last_activity` wall time of its last activity (None: now)."""
        key = (user_id, topic)
        tabs = self._presences.get(key)
        wall = self._wall_clock()
        if payload is None:
            gone = tabs.pop(conn_id, None) if tabs is not None else None
            if tabs is None or gone is None:
                return
            if tabs:
                record = _best(tabs.values())
            else:
                del self._presences[key]
                # Last seen as the node counts it: now if they were active until now.
                active = gone.status in ACTIVE
                record = replace(
                    gone,
                    status="offline",
                    current_page=None,
                    is_typing=False,
                    last_activity=millis(wall) if active else gone.last_activity,
                )
            self._put(record)
            return
        raw_status = status if status is not None else payload.get("status")
        page = payload.get("current_page")
        mine = PresenceRecord(
            user_id,
            _channel(topic),
            presence_status(raw_status if isinstance(raw_status, str) else None, hidden=hidden),
            page if isinstance(page, str) else None,
            payload.get("is_typing") is True,
            _device(payload.get("device_type")),
            millis(last_activity if last_activity is not None else wall),
            payload,
        )
        if tabs is None:
            tabs = self._presences[key] = {}
        tabs[conn_id] = mine
        self._put(_best(tabs.values()) if len(tabs) > 1 else mine)

    def event(
        self,
        event_type: str,
        channel: str | None,
        payload: Mapping[str, Any],
        *,
        user_id: str | None = None,
        broadcast_count: int = 0,
        delivered_count: int = 0,
        failed_count: int = 0,
        priority: int = DEFAULT_PRIORITY,
        expires_in_s: float = DEFAULT_EXPIRES_S,
    ) -> None:
        """An event (or a refused access) on `channel` (a channel name, no ``realtime:``)."""
        wall = self._wall_clock()
        self._put(
            EventRecord(
                event_type,
                channel,
                user_id,
                payload,
                max(0, broadcast_count),
                max(0, delivered_count),
                max(0, failed_count),
                min(max(priority, 1), 10),  # the table's CHECK: 1-10
                millis(wall),
                millis(wall + expires_in_s),
            )
        )

    def access(
        self, event_type: str, channel: str, user_id: str, details: Mapping[str, Any]
    ) -> None:
        """A refused access (`ACCESS_DENIED`, `ACCESS_REVOKED`) of `user_id` to `channel`."""
        self.event(event_type, _channel(channel), details, user_id=user_id)

    def housekeeping(self) -> None:
        """The node's sweeper tick: a metrics snapshot every `metrics_every_s`; a prune of
        rows older than the retention every `PRUNE_EVERY_S` (done by the writer)."""
        now = self._clock()
        if self.figures is not None and now - self._metrics_at >= self._metrics_every_s:
            self._metrics_at = now
            at = self._now()
            try:
                figures = list(self.figures())
            except Exception:
                log.exception("audit: reading the node's figures failed")
                figures = []
            for name, value, unit, channel in figures:
                self._put(MetricRecord(name, float(value), unit, channel, None, at))
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self._prune_due = True
            self._wake.set()

    # -- the queue -------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _now(self) -> float:
        return millis(self._wall_clock())

    def _put(self, record: AuditRecord) -> None:
        queue = self._queue
        if len(queue) >= self._queue_max:
            queue.popleft()
            self.dropped += 1
            self._burst += 1
            if self._burst == 1:
                log.warning(
                    "audit: %d records queued (the log is not keeping up): dropping the oldest",
                    len(queue) + 1,
                )
        queue.append(record)
        if len(queue) >= self._batch_size:
            self._wake.set()

    # -- the writer ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background writer (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def close(self) -> None:
        """Stop the writer, then write what is queued; gives up after `CLOSE_TIMEOUT_S` (a
        database that does not answer), counting what was not written as dropped."""
        task, self._task = self._task, None
        written = False
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if task is not None:
                    async with self._lock:  # never cancel a write half-way, unless it hangs
                        task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                written = await self.flush(retry=False)
        except TimeoutError:
            pass
        finally:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if not written and self._queue:
            log.error("audit: %d records not written at shutdown", len(self._queue))
            self.dropped += len(self._queue)
            self._queue.clear()

    async def _run(self) -> None:
        delay = self._flush_every_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            ok = await self.flush()
            if ok and self._prune_due:
                self._prune_due = False
                await self.prune()
            failures = self._failures
            delay = (
                self._flush_every_s
                if ok or not failures
                else min(self._flush_every_s * 2 ** (failures - 1), MAX_BACKOFF_S)
            )

    async def flush(self, *, retry: bool = True) -> bool:
        """Write what is queued, batch by batch. Never raises: False when a write failed (its
        batch is queued again for a retry, or dropped after `max_attempts` failures or when
        `retry` is False)."""
        async with self._lock:
            while self._queue:
                if not await self._write_batch(retry):
                    return False
            return True

    async def _write_batch(self, retry: bool) -> bool:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(len(queue), self._batch_size))]
        try:
            await self.log.write(self._channels_of(batch), batch)
        except asyncio.CancelledError:
            self._requeue(batch)
            raise
        except Exception as exc:
            self._write_failed(batch, exc, retry)
            return False
        self.written += len(batch)
        if self._failures:
            log.warning("audit: writing works again after %d failed attempts", self._failures)
            self._failures = 0
        if self._burst:
            log.warning("audit: %d records were dropped while the queue was full", self._burst)
            self._burst = 0
        return True

    def _write_failed(self, batch: list[AuditRecord], exc: Exception, retry: bool) -> None:
        self._failures += 1
        if self._failures == 1:
            log.error("audit: writing %d records failed: %s", len(batch), exc, exc_info=exc)
        if not retry or self._failures >= self._max_attempts:
            log.error(
                "audit: dropping %d records after %d failed attempts", len(batch), self._failures
            )
            self.dropped += len(batch)
            self._failures = 0
            return
        self._requeue(batch)

    def _requeue(self, batch: list[AuditRecord]) -> None:
        """Put `batch` back at the head of the queue, dropping its oldest beyond the bound."""
        room = max(self._queue_max - len(self._queue), 0)
        if room < len(batch):
            self.dropped += len(batch) - room
            batch = batch[len(batch) - room :]
        self._queue.extendleft(reversed(batch))

    def _channels_of(self, batch: Iterable[AuditRecord]) -> dict[str, str]:
        channels: dict[str, str] = {}
        for record in batch:
            name = record.channel
            if name is not None and name not in channels:
                try:
                    channels[name] = self._channel_type(name)
                except Exception:
                    channels[name] = "shared"
        return channels

    async def prune(self) -> int:
        """Delete rows older than the retention; never raises (0 when it failed)."""
        before = millis(self._wall_clock() - self._retention_s)
        async with self._lock:
            try:
                removed = await self.log.prune(before)
            except Exception as exc:
                log.error("audit: pruning rows before %s failed: %s", before, exc)
                return 0
        if removed:
            log.info("audit: pruned %d rows older than %s", removed, before)
        return removed


def _channel(topic: str) -> str:
    return topic.removeprefix(CHANNEL_PREFIX)


def node_figures(node: Node, channels: int = METRICS_CHANNELS) -> list[Figure]:
    """The figures of the metrics snapshot: `GET /api/realtime/metrics`'s connection stats, the
    peak of distinct users, the audit records dropped so far, and the average delivery time and
    messages of the `channels` busiest channels."""
    metrics = node.metrics
    open_connections = len(node.connections)
    figures: list[Figure] = [
        ("active_connections", open_connections, "connections", None),
        ("total_channels", metrics.active_channels, "channels", None),
        ("messages_per_minute", metrics.messages_per_minute(), "messages/min", None),
        (
            "connection_uptime_percent",
            metrics.connection_uptime_percent(open_connections),
            "percent",
            None,
        ),
        ("peak_concurrent_users", metrics.peak_users, "users", None),
    ]
    if node.audit is not None:
        figures.append(("audit_records_dropped", node.audit.dropped, "records", None))
    for topic, stats in metrics.top_channels(channels):
        name = _channel(topic)
        figures.append(("channel_messages_sent", stats.messages, "messages", name))
        figures.append(("channel_average_delivery_ms", stats.average_delivery_ms, "ms", name))
    return figures
