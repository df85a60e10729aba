"""WedSync presence statuses and the server-side clock that decays them (SPEC.md "Presence").

A presence meta is *managed* when it carries a `status` the server knows (online, idle, away,
busy, offline); any other meta is plain Supabase presence and is never touched, so clients that
track `{"name": "Alice"}` see exactly what they tracked (reference notes §2.4).

Rules, for managed metas:

* The client *declares* a status with each `track`. Declaring `online` or `busy` is activity;
  declaring `idle` or `away` is the client reporting inactivity and restarts nothing.
* A broadcast the connection sends on the channel is activity too (typing indicators, edits). A
  heartbeat is not: a background tab heartbeats forever.
* After `idle_after_s` without activity `online` becomes `idle`, after `away_after_s` `away`,
  after `offline_after_s` `offline` (all measured from the last activity). The server only ever
  lowers a status; `busy` is the user's choice and skips idle and away, but still goes `offline`
  after `offline_after_s` (a busy user gone for an hour is not there).
* Activity after a decay restores the status the client last declared.
* Declaring `offline`, or `appear_offline: true`, is "appear offline": the presence is hidden
  from everyone but its owner (see `PresenceRegistry`); it never decays further.

`StatusClock` holds, per (topic, connection), the declared status, the current one and the time
of the last activity, with a heap of deadlines so that the node wakes exactly when the next
status is due instead of scanning every presence. It takes times as arguments: tests drive it
with a fake clock.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wedsync_realtime.timestamps import iso_from_epoch

__all__ = [
    "ACTIVE",
    "PresenceListener",
    "Status",
    "StatusChange",
    "StatusClock",
    "Thresholds",
    "decayed",
    "declared_status",
    "is_hidden",
    "iso_time",
]


class Status(enum.StrEnum):
    ONLINE = "online"
    IDLE = "idle"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"


#: Declaring one of these is activity.
ACTIVE = frozenset({Status.ONLINE, Status.BUSY})

#: The meta flag of "appear offline".
APPEAR_OFFLINE = "appear_offline"


def declared_status(payload: Mapping[str, Any]) -> Status | None:
    """The status a tracked payload declares; None for a plain (unmanaged) meta."""
    value = payload.get("status")
    if not isinstance(value, str):
        return None
    try:
        return Status(value)
    except ValueError:
        return None


def is_hidden(payload: Mapping[str, Any]) -> bool:
    """Whether the payload asks to appear offline (hidden from everyone but its owner)."""
    return payload.get(APPEAR_OFFLINE) is True or declared_status(payload) is Status.OFFLINE


#: ``2025-06-14T14:00:00.000Z``, as the WedSync events write times (wall seconds in).
iso_time = iso_from_epoch


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Seconds without activity before each lower status (cumulative, not per step)."""

    idle_s: float = 120.0
    away_s: float = 600.0
    offline_s: float = 3_600.0


def decayed(declared: Status, inactive_s: float, thresholds: Thresholds) -> Status:
    """The status of a presence that declared `declared` and has been inactive `inactive_s`."""
    if declared is Status.OFFLINE or inactive_s >= thresholds.offline_s:
        return Status.OFFLINE
    if declared is Status.BUSY:
        return Status.BUSY
    if declared is Status.AWAY or inactive_s >= thresholds.away_s:
        return Status.AWAY
    if declared is Status.IDLE or inactive_s >= thresholds.idle_s:
        return Status.IDLE
    return Status.ONLINE


def _next_change(declared: Status, inactive_s: float, thresholds: Thresholds) -> float | None:
    """Inactivity at which the status next changes; None when it never will."""
    current = decayed(declared, inactive_s, thresholds)
    for at in sorted((thresholds.idle_s, thresholds.away_s, thresholds.offline_s)):
        if at > inactive_s and decayed(declared, at, thresholds) is not current:
            return at
    return None


class PresenceListener(Protocol):
    """Told when a user is seen (last-seen records); must not block: queue, write later."""

    def seen(self, user_id: str, status: str | None, at: float) -> None:
        """`user_id` was seen at wall time `at` with `status` (None: a plain meta)."""
        ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status the clock moved: the presence's new status and its last activity."""

    topic: str
    conn_id: str
    status: Status
    last_activity: float
    """Wall time of the last activity."""


@dataclass(slots=True)
class _Tracked:
    declared: Status
    current: Status
    since: float
    since_wall: float
    generation: int


class StatusClock:
    """Declared and current status and last activity of every managed presence on the node."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._generations = itertools.count()

    def __len__(self) -> int:
        return len(self._tracked)

    def get(self, topic: str, conn_id: str) -> _Tracked | None:
        return self._tracked.get((topic, conn_id))

    def track(
        self, topic: str, conn_id: str, declared: Status, now: float, wall: float
    ) -> float | None:
        """A `track` declaring `declared`; returns the deadline of its next change, if any."""
        old = self._tracked.get((topic, conn_id))
        if declared in ACTIVE or old is None:
            since, since_wall = now, wall
        else:
            since, since_wall = old.since, old.since_wall
        entry = _Tracked(declared, declared, since, since_wall, next(self._generations))
        self._tracked[(topic, conn_id)] = entry
        return self._schedule(topic, conn_id, entry, now)

    def activity(self, topic: str, conn_id: str, now: float, wall: float) -> Status | None:
        """Activity other than a track (a broadcast): restarts the inactivity clock. Returns
        the restored status when the presence had decayed, else None."""
        entry = self._tracked.get((topic, conn_id))
        if entry is None or entry.declared is Status.OFFLINE:
            return None
        entry.since, entry.since_wall = now, wall
        entry.generation = next(self._generations)
        restored = entry.current is not entry.declared
        entry.current = entry.declared
        self._schedule(topic, conn_id, entry, now)
        return entry.declared if restored else None

    def forget(self, topic: str, conn_id: str) -> _Tracked | None:
        """The presence is gone (or no longer managed); its heap entries go stale."""
        return self._tracked.pop((topic, conn_id), None)

    def next_deadline(self) -> float | None:
        """When the next status change is due (monotonic clock); None when none is."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[StatusChange]:
        """Move every presence whose deadline has passed to its decayed status."""
        changes: list[StatusChange] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            if not self._live(item):
                continue
            _, _, topic, conn_id = item
            entry = self._tracked[(topic, conn_id)]
            status = decayed(entry.declared, now - entry.since, self.thresholds)
            entry.generation = next(self._generations)
            if status is not entry.current:
                entry.current = status
                changes.append(StatusChange(topic, conn_id, status, entry.since_wall))
            self._schedule(topic, conn_id, entry, now)
        return changes

    def _live(self, item: tuple[float, int, str, str]) -> bool:
        entry = self._tracked.get((item[2], item[3]))
        return entry is not None and entry.generation == item[1]

    def _schedule(self, topic: str, conn_id: str, entry: _Tracked, now: float) -> float | None:
        inactive = now - entry.since
        if decayed(entry.declared, inactive, self.thresholds) is not entry.current:
            deadline = now  # e.g. `idle` declared long after the last activity: away at once
        else:
            at = _next_change(entry.declared, inactive, self.thresholds)
            if at is None:
                return None
            deadline = entry.since + at
        heapq.heappush(self._heap, (deadline, entry.generation, topic, conn_id))
        return deadline
