"""Channel presence on one node: who is tracked under which key, and the diffs clients see.

Shapes follow Phoenix.Presence as Supabase sends it (reference notes §2.4): the state is
`{key: {"metas": [{..., "phx_ref": ...}]}}` and a change is `{"joins": {...}, "leaves": {...}}`.
Each connection has at most one meta per channel; re-tracking an unchanged payload changes
nothing, a changed payload is an update: the new meta joins (with `phx_ref_prev`) and the old one
leaves, as Phoenix does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

__all__ = ["PresenceDiff", "PresenceRegistry"]

PresenceState = dict[str, dict[str, list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    joins: PresenceState
    leaves: PresenceState

    def payload(self) -> dict[str, Any]:
        return {"joins": self.joins, "leaves": self.leaves}


@dataclass(slots=True)
class _Entry:
    key: str
    payload: dict[str, Any]
    meta: dict[str, Any]


class PresenceRegistry:
    """Presence entries of every channel on this node, keyed by (channel, connection id)."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self._refs = itertools.count(1)
        self._channels: dict[str, dict[str, _Entry]] = {}

    def _next_ref(self) -> str:
        return f"{self._node_id}-{next(self._refs)}"

    def track(
        self, channel: str, conn_id: str, key: str, payload: dict[str, Any]
    ) -> PresenceDiff | None:
        """Track or update `conn_id`'s presence; None when nothing changed."""
        entries = self._channels.setdefault(channel, {})
        old = entries.get(conn_id)
        if old is not None and old.key == key and old.payload == payload:
            return None
        meta = {**payload, "phx_ref": self._next_ref()}
        leaves: PresenceState = {}
        if old is not None:
            meta["phx_ref_prev"] = old.meta["phx_ref"]
            leaves = {old.key: {"metas": [old.meta]}}
        entries[conn_id] = _Entry(key, dict(payload), meta)
        return PresenceDiff(joins={key: {"metas": [meta]}}, leaves=leaves)

    def untrack(self, channel: str, conn_id: str) -> PresenceDiff | None:
        """Remove `conn_id`'s presence; None when it had none."""
        entries = self._channels.get(channel)
        if not entries or conn_id not in entries:
            return None
        old = entries.pop(conn_id)
        if not entries:
            del self._channels[channel]
        return PresenceDiff(joins={}, leaves={old.key: {"metas": [old.meta]}})

    def state(self, channel: str) -> PresenceState:
        """The channel's presence state, grouped by key."""
        state: PresenceState = {}
        for entry in self._channels.get(channel, {}).values():
            state.setdefault(entry.key, {"metas": []})["metas"].append(entry.meta)
        return state

    def count(self, channel: str) -> int:
        return len(self._channels.get(channel, {}))
