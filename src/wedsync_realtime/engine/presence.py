"""Channel presence on one node: who is tracked under which key, and the diffs clients see.

Shapes follow Phoenix.Presence as Supabase sends it (reference notes §2.4): the state is
`{key: {"metas": [{..., "phx_ref": ...}]}}` and a change is `{"joins": {...}, "leaves": {...}}`.
Each connection has at most one meta per channel; re-tracking an unchanged payload changes
nothing, a changed payload is an update: the new meta joins (with `phx_ref_prev`) and the old one
leaves, as Phoenix does.

A presence may be *hidden* ("appear offline", `engine.presence_status`): only connections of its
owner (the tracking user) see it. A diff that touches a hidden presence carries the owner and
what everyone else sees instead (`PresenceDiff.others`): a visible presence going hidden is a
leave for the others, a hidden one coming back a join, a change while hidden nothing at all.
Diffs without a hidden presence are shared by every subscriber (one encoding per version).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PresenceDiff", "PresenceEntry", "PresenceRegistry"]

PresenceState = dict[str, dict[str, list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    joins: PresenceState
    leaves: PresenceState
    #: Set when the change touches a hidden presence: only `owner`'s connections get
    #: `joins`/`leaves`; everyone else gets `others` (None: nothing at all).
    owner: str | None = None
    others: PresenceDiff | None = None

    def payload(self) -> dict[str, Any]:
        return {"joins": self.joins, "leaves": self.leaves}


@dataclass(slots=True)
class PresenceEntry:
    key: str
    #: What the client tracked.
    payload: dict[str, Any]
    #: What subscribers see: the payload (or the server's change of it) and `phx_ref`.
    meta: dict[str, Any]
    #: The user (or connection) it belongs to: who still sees it while hidden.
    owner: str = ""
    hidden: bool = False
    #: The server changed the meta (a decayed status): re-tracking the payload is a change.
    server_changed: bool = False


def _diff(old: PresenceEntry | None, new: PresenceEntry | None, owner: str) -> PresenceDiff | None:
    """The diff from `old` to `new` (either may be None), split when one of them is hidden."""
    joins: PresenceState = {new.key: {"metas": [new.meta]}} if new is not None else {}
    leaves: PresenceState = {old.key: {"metas": [old.meta]}} if old is not None else {}
    if not (old is not None and old.hidden) and not (new is not None and new.hidden):
        return PresenceDiff(joins, leaves)
    others_joins = joins if new is not None and not new.hidden else {}
    others_leaves = leaves if old is not None and not old.hidden else {}
    others = PresenceDiff(others_joins, others_leaves) if others_joins or others_leaves else None
    return PresenceDiff(joins, leaves, owner=owner, others=others)


class PresenceRegistry:
    """Presence entries of every channel on this node, keyed by (channel, connection id)."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self._refs = itertools.count(1)
        self._channels: dict[str, dict[str, PresenceEntry]] = {}

    def _next_ref(self) -> str:
        return f"{self._node_id}-{next(self._refs)}"

    def track(
        self,
        channel: str,
        conn_id: str,
        key: str,
        payload: dict[str, Any],
        *,
        owner: str | None = None,
        hidden: bool = False,
    ) -> PresenceDiff | None:
        """Track or update `conn_id`'s presence; None when nothing changed. A `hidden`
        presence is seen by connections of `owner` (default: `conn_id`) only."""
        entries = self._channels.setdefault(channel, {})
        old = entries.get(conn_id)
        if (
            old is not None
            and old.key == key
            and old.payload == payload
            and old.hidden == hidden
            and not old.server_changed
        ):
            return None
        owner = owner or conn_id
        new = PresenceEntry(key, dict(payload), self._meta(payload, old), owner, hidden)
        entries[conn_id] = new
        return _diff(old, new, owner)

    def replace_meta(
        self, channel: str, conn_id: str, overrides: Mapping[str, Any]
    ) -> PresenceDiff | None:
        """The server changes a presence (a decayed status): the new meta is the tracked
        payload with `overrides`; an update diff, or None when nothing changed."""
        old = self._channels.get(channel, {}).get(conn_id)
        if old is None:
            return None
        fields = {**old.payload, **overrides}
        if fields == {k: v for k, v in old.meta.items() if k not in ("phx_ref", "phx_ref_prev")}:
            return None
        new = PresenceEntry(
            old.key, old.payload, self._meta(fields, old), old.owner, old.hidden, bool(overrides)
        )
        self._channels[channel][conn_id] = new
        return _diff(old, new, old.owner)

    def _meta(self, fields: Mapping[str, Any], old: PresenceEntry | None) -> dict[str, Any]:
        meta = {**fields, "phx_ref": self._next_ref()}
        if old is not None:
            meta["phx_ref_prev"] = old.meta["phx_ref"]
        return meta

    def untrack(self, channel: str, conn_id: str) -> PresenceDiff | None:
        """Remove `conn_id`'s presence; None when it had none."""
        entries = self._channels.get(channel)
        if not entries or conn_id not in entries:
            return None
        old = entries.pop(conn_id)
        if not entries:
            del self._channels[channel]
        return _diff(old, None, old.owner)

    def get(self, channel: str, conn_id: str) -> PresenceEntry | None:
        return self._channels.get(channel, {}).get(conn_id)

    def entries(self) -> Iterator[tuple[str, str, PresenceEntry]]:
        """Every (channel, connection id, entry) on this node."""
        for channel, entries in self._channels.items():
            for conn_id, entry in entries.items():
                yield channel, conn_id, entry

    def state(self, channel: str, viewer: str | None = None) -> PresenceState:
        """The channel's presence state, grouped by key, as `viewer` (an owner) sees it:
        hidden presences of anyone else are left out."""
        state: PresenceState = {}
        for entry in self._channels.get(channel, {}).values():
            if entry.hidden and entry.owner != viewer:
                continue
            state.setdefault(entry.key, {"metas": []})["metas"].append(entry.meta)
        return state

    def count(self, channel: str) -> int:
        return len(self._channels.get(channel, {}))
