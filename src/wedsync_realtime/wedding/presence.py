"""WedSync presence seen from the domain: who may see whom, live statuses, and last seen.

SPEC.md "Presence": "team members always see each other; active supplier-couple pairs see each
other; competitors and other couples never; 'appear offline'"; "last seen is kept 7 days".

* `may_see` is that privacy rule, for the REST reads (a channel's own presence follows the
  channel's read rule instead, as the socket's `presence_state` does).
* `live_presences` reads the node's presence registry and status clock: one `LivePresence` per
  tracked presence on this node (other nodes' presences are not merged).
* `LastSeenRecorder` is the node's `PresenceListener`: the engine tells it when a user is seen
  (activity, a leave, going "appear offline"); it coalesces those in memory and writes them to the
  last-seen store on the node's housekeeping tick (every few seconds), and drops records older
  than the retention (7 days) once an hour. A user appearing offline is never reported, so their
  last seen stays at the moment they hid.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wedsync_realtime.engine.node import Node
from wedsync_realtime.engine.presence_status import Status, iso_time
from wedsync_realtime.wedding.directory import Directory, UserProfile, UserType

__all__ = [
    "LastSeenRecorder",
    "LastSeenStore",
    "LivePresence",
    "best_presence",
    "live_presences",
    "may_see",
    "parse_time",
]

#: Seconds between two prunes of old last-seen records.
PRUNE_EVERY_S = 3_600.0

#: Most available first: which of a user's presences (tabs, channels) speaks for them.
_RANK = {
    Status.ONLINE: 0,
    Status.BUSY: 1,
    Status.IDLE: 2,
    Status.AWAY: 3,
    Status.OFFLINE: 4,
}


class LastSeenStore(Protocol):
    """`SqliteLastSeenStore`'s methods (times are ISO 8601 UTC text)."""

    async def record_last_seen(self, user_id: str, *, at: str, status: str | None) -> None: ...

    async def last_seen(self, user_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]: ...

    async def forget_last_seen_before(self, cutoff: str) -> int: ...


def parse_time(text: str) -> float:
    """Wall time of an ISO 8601 timestamp as `iso_time` writes it."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class LastSeenRecorder:
    """The engine's `PresenceListener`, writing last-seen times to `store` in batches."""

    def __init__(
        self,
        store: LastSeenStore,
        *,
        retention_days: float = 7.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention_s = retention_days * 86_400
        self._wall_clock = wall_clock
        self._pending: dict[str, tuple[float, str | None]] = {}
        self._pruned_at = float("-inf")
        self._tasks: set[asyncio.Task[Any]] = set()

    def seen(self, user_id: str, status: str | None, at: float) -> None:
        """Remember the latest moment `user_id` was seen (written on the next flush)."""
        previous = self._pending.get(user_id)
        if previous is None or at >= previous[0]:
            self._pending[user_id] = (at, status)

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for user_id, (at, status) in pending.items():
            await self._store.record_last_seen(user_id, at=iso_time(at), status=status)

    async def prune(self) -> int:
        """Drop records older than the retention; returns how many."""
        cutoff = iso_time(self._wall_clock() - self._retention_s)
        return await self._store.forget_last_seen_before(cutoff)

    def housekeeping(self) -> None:
        """The node's sweeper tick: flush what was seen; prune once an hour."""
        now = self._wall_clock()
        if self._pending:
            self._spawn(self.flush())
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self._spawn(self.prune())

    async def last_seen(self, user_ids: Sequence[str]) -> dict[str, tuple[float, str | None]]:
        """user_id -> (wall time, status then) for the users seen within the retention."""
        await self.flush()
        cutoff = self._wall_clock() - self._retention_s
        rows = await self._store.last_seen(list(user_ids))
        found = {user: (parse_time(at), status) for user, (at, status) in rows.items()}
        return {user: seen for user, seen in found.items() if seen[0] >= cutoff}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(frozen=True, slots=True)
class LivePresence:
    """One tracked presence on this node."""

    user_id: str
    channel: str
    meta: dict[str, Any]
    status: str
    #: Wall time of the last activity; None for a plain meta (no status clock).
    last_activity: float | None
    hidden: bool


def live_presences(node: Node, topic: str | None = None) -> list[LivePresence]:
    """The presences tracked on this node (on `topic` only, when given) by users (a JWT
    `sub`); status and last activity from the status clock when the meta is managed."""
    found = []
    for channel, conn_id, entry in node.presence.entries():
        if topic is not None and channel != topic:
            continue
        conn = node.connections.get(conn_id)
        subject = conn.principal.subject if conn is not None else None
        if subject is None:
            continue
        tracked = node.presence_clock.get(channel, conn_id)
        if tracked is not None:
            status, last = str(tracked.current), tracked.since_wall
        else:
            raw = entry.meta.get("status")
            status, last = (raw if isinstance(raw, str) else str(Status.ONLINE)), None
        found.append(LivePresence(subject, channel, entry.meta, status, last, entry.hidden))
    return found


def best_presence(presences: Sequence[LivePresence]) -> LivePresence:
    """The presence that speaks for a user: the most available, then the latest active."""

    def rank(p: LivePresence) -> tuple[int, float]:
        try:
            order = _RANK[Status(p.status)]
        except ValueError:
            order = len(_RANK)
        return order, -(p.last_activity or 0.0)

    return min(presences, key=rank)


async def may_see(directory: Directory, viewer: UserProfile, target_id: str) -> bool:
    """SPEC.md's presence privacy: yourself; admins see everyone; users of one supplier (and its
    team members) see each other; the partners of a couple see each other; a supplier and a
    couple see each other while actively connected. Competitors and other couples never."""
    if viewer.user_id == target_id or viewer.user_type is UserType.ADMIN:
        return True
    target = await directory.user_profile(target_id)
    if target is None:
        return False
    if viewer.supplier_id is not None and viewer.user_type is UserType.SUPPLIER:
        if target.user_type is UserType.SUPPLIER and target.supplier_id == viewer.supplier_id:
            return True
        if await directory.is_team_member(target_id, viewer.supplier_id):
            return True
        if target.user_type is UserType.COUPLE and target.couple_id is not None:
            return await directory.is_connected(viewer.supplier_id, target.couple_id)
    if target.user_type is UserType.SUPPLIER and target.supplier_id is not None:
        if await directory.is_team_member(viewer.user_id, target.supplier_id):
            return True
        if viewer.user_type is UserType.COUPLE and viewer.couple_id is not None:
            return await directory.is_connected(target.supplier_id, viewer.couple_id)
    return (
        viewer.user_type is UserType.COUPLE
        and target.user_type is UserType.COUPLE
        and viewer.couple_id == target.couple_id
    )
