"""`presence_updated`: a user's status, announced to the people who may see it.

SPEC.md "Events": ``presence_updated`` ``{user_id, user_name, user_type, status, current_page?,
is_typing, device_type, timestamp}``; "Presence": "active supplier-couple pairs see each other;
competitors and other couples never"; "appear offline". Phoenix presence (``presence_diff`` on the
channel a client tracks on) only reaches the people joined to that channel; this module tells a
supplier's dashboard about its clients, and a couple about its suppliers, on the channels they
already hold, without joining each other's presence channels.

**What is announced.** A user's *aggregate* presence on this node: the best of their tracked
presences as `wedding.presence.best_presence` ranks them (online, busy, idle, away, offline),
where a presence that appears offline counts as offline, and none at all is offline. An event
goes out when the aggregate's status or its current page changes — not on activity that changes
neither (a re-track, a broadcast), and not twice for the same value: the aggregate is compared
with the last one announced, so several tabs tracking at once give one event. Offline is
announced without page, device, typing or last activity (a user who appears offline is
indistinguishable from one who left).

**Where it goes** (`channels_for`), as one `DomainEvent` through the runtime's router:

* a couple's user: ``couple:{C}`` (the partner, and the user's own other tabs) and
  ``supplier:{S}:clients`` of every supplier actively connected to C. Not ``wedding:{W}``:
  everyone who may read it (the couple and the suppliers connected to the wedding) already gets
  the event on one of those channels, so it would only be a second copy on the channel kept for
  urgent wedding-day messages;
* a supplier's user: ``supplier:{S}:team`` (team members always see each other) and
  ``couple:{C}`` of every couple S is actively connected to. Never a wedding channel: the other
  suppliers of a wedding may be competitors;
* admins and users unknown to the directory: nowhere.

**How.** `PresenceAnnouncer.presence_changed` is the engine's hook (`engine.node.
PresenceChangeListener`); it only notes which of the user's presences changed and wakes one
worker task, so the presence path never waits for the directory or the router, and nothing the
worker does can raise into it. The worker handles users one at a time, in order, so the events
of one user are published in the order their statuses changed. While the node shuts down
nothing is announced: its users are not leaving, their clients will reconnect elsewhere.

Only this node's presences are considered (as the REST presence API does); with several nodes,
each announces what it sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from wedsync_realtime.engine.node import Node
from wedsync_realtime.engine.presence_status import PresenceListener, Status, iso_time
from wedsync_realtime.wedding.audience import CoupleAudience
from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.directory import UserProfile, UserType
from wedsync_realtime.wedding.events import (
    Clock,
    DomainEvent,
    Payload,
    channel_name,
    iso_timestamp,
    unique,
    utc_now,
)
from wedsync_realtime.wedding.presence import LivePresence, best_presence

__all__ = [
    "PRESENCE_UPDATED",
    "PresenceAnnouncer",
    "PresenceAudience",
    "PresenceHooks",
    "Snapshot",
    "channels_for",
]

log = logging.getLogger(__name__)

PRESENCE_UPDATED = "presence_updated"

#: How the router is reached (`WeddingRuntime.route`).
Route = Callable[[tuple[DomainEvent, ...]], Awaitable[object]]


class PresenceAudience(Protocol):
    """The facts an announcement reads (`WeddingRuntime.directory` has them all)."""

    async def user_profile(self, user_id: str) -> UserProfile | None: ...

    async def user_name(self, user_id: str) -> str | None: ...

    async def connected_suppliers(self, couple_id: str) -> tuple[str, ...]: ...

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A user's aggregate presence, as announced."""

    status: str
    current_page: str | None = None
    is_typing: bool = False
    device_type: str | None = None
    #: Wall time of the last activity (None: unknown, or offline).
    last_activity: float | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        """What must change for a new announcement: the status and the page."""
        return self.status, self.current_page


OFFLINE = Snapshot(str(Status.OFFLINE))


def _str(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    return value if isinstance(value, str) else None


def snapshot_of(presences: list[LivePresence]) -> Snapshot:
    """The aggregate of one user's presences (hidden ones already count as offline)."""
    if not presences:
        return OFFLINE
    best = best_presence(presences)
    if best.status == Status.OFFLINE or best.hidden:
        return OFFLINE
    meta = best.meta
    return Snapshot(
        best.status,
        _str(meta, "current_page"),
        meta.get("is_typing") is True,
        _str(meta, "device_type"),
        best.last_activity,
    )


async def channels_for(audience: PresenceAudience, profile: UserProfile) -> tuple[str, ...]:
    """Where a status of the user goes (see the module's docstring); empty for admins."""
    if profile.user_type is UserType.COUPLE and profile.couple_id is not None:
        couple = profile.couple_id
        suppliers = await audience.connected_suppliers(couple)
        # The couple's channels without the wedding channel (module docstring).
        return unique(CoupleAudience(couple, (), suppliers).channels())
    if profile.user_type is UserType.SUPPLIER and profile.supplier_id is not None:
        supplier = profile.supplier_id
        couples = await audience.supplier_couples(supplier)
        return unique(
            (
                channel_name(ChannelKind.SUPPLIER_TEAM, supplier),
                *(channel_name(ChannelKind.COUPLE, c) for c in couples),
            )
        )
    return ()


class PresenceAnnouncer:
    """Turns the node's presence changes into `presence_updated` events (module docstring)."""

    def __init__(
        self,
        node: Node,
        audience: PresenceAudience,
        route: Route,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._node = node
        self._audience = audience
        self._route = route
        self._clock = clock
        #: user -> the (topic, connection id) of their presences the hook named.
        self._presences: dict[str, set[tuple[str, str]]] = {}
        #: Users whose aggregate may have changed, in the order they did (an ordered set).
        self._dirty: dict[str, None] = {}
        #: user -> the last aggregate announced; absent: offline.
        self._announced: dict[str, Snapshot] = {}
        self._worker: asyncio.Task[None] | None = None

    # -- the engine's hook ------------------------------------------------------------------

    def presence_changed(self, user_id: str, topic: str, conn_id: str) -> None:
        """One of `user_id`'s presences changed: look again soon. Never raises."""
        try:
            self._presences.setdefault(user_id, set()).add((topic, conn_id))
            self._dirty[user_id] = None
            if self._worker is None or self._worker.done():
                self._worker = asyncio.get_running_loop().create_task(
                    self._work(), name="presence-announcer"
                )
        except Exception:
            log.exception("presence announcement of %s not scheduled", user_id)

    # -- reading the node -------------------------------------------------------------------

    def snapshot(self, user_id: str) -> Snapshot:
        """`user_id`'s aggregate presence on the node now (forgets presences that are gone)."""
        keys = self._presences.get(user_id)
        if not keys:
            self._presences.pop(user_id, None)
            return OFFLINE
        node = self._node
        live: list[LivePresence] = []
        for topic, conn_id in list(keys):
            entry = node.presence.get(topic, conn_id)
            if entry is None:
                keys.discard((topic, conn_id))
                continue
            tracked = node.presence_clock.get(topic, conn_id)
            # A plain meta (no status the server manages) is someone present: online.
            status = str(tracked.current) if tracked is not None else str(Status.ONLINE)
            last = tracked.since_wall if tracked is not None else None
            if entry.hidden:
                status, last = str(Status.OFFLINE), None
            live.append(LivePresence(user_id, topic, entry.meta, status, last, entry.hidden))
        if not keys:
            del self._presences[user_id]
        return snapshot_of(live)

    # -- announcing ------------------------------------------------------------------------

    async def settled(self) -> None:
        """Wait until every change noted so far has been announced (or dropped)."""
        while (worker := self._worker) is not None and not worker.done():
            await asyncio.shield(worker)

    async def _work(self) -> None:
        while self._dirty:
            user_id = next(iter(self._dirty))
            del self._dirty[user_id]
            try:
                await self._announce(user_id)
            except Exception:
                log.exception("presence_updated of %s not announced", user_id)

    async def _announce(self, user_id: str) -> None:
        now = self.snapshot(user_id)
        if now.key == self._announced.get(user_id, OFFLINE).key:
            return
        if now.status == Status.OFFLINE:
            self._announced.pop(user_id, None)
        else:
            self._announced[user_id] = now
        if not self._node.accepting:
            return  # shutting down: the users are not leaving (module docstring)
        profile = await self._audience.user_profile(user_id)
        if profile is None:
            return
        channels = await channels_for(self._audience, profile)
        if not channels:
            return
        name = await self._audience.user_name(user_id)
        payload: Payload = {
            "user_id": user_id,
            "user_name": name if name is not None else user_id,
            "user_type": str(profile.user_type),
            "status": now.status,
            "current_page": now.current_page,
            "is_typing": now.is_typing,
            "device_type": now.device_type,
            "last_activity": iso_time(now.last_activity) if now.last_activity is not None else None,
            "timestamp": iso_timestamp(self._clock()),
        }
        if profile.user_type is UserType.COUPLE:
            payload["couple_id"] = profile.couple_id
        else:
            payload["supplier_id"] = profile.supplier_id
        await self._route((DomainEvent(PRESENCE_UPDATED, channels, payload),))


class PresenceHooks:
    """The node's presence listener on the WedSync domain: every sighting to last seen
    (`LastSeenRecorder`), every presence change to the announcer."""

    def __init__(self, last_seen: PresenceListener, announcer: PresenceAnnouncer) -> None:
        self.last_seen = last_seen
        self.announcer = announcer

    def seen(self, user_id: str, status: str | None, at: float) -> None:
        self.last_seen.seen(user_id, status, at)

    def presence_changed(self, user_id: str, topic: str, conn_id: str) -> None:
        self.announcer.presence_changed(user_id, topic, conn_id)
