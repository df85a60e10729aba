"""Presence state on the client: the `presence_state` snapshot and `presence_diff` changes the
server pushes, folded into `{key: [meta, ...]}` (Phoenix `presence.js` `syncState`/`syncDiff`).

Metas are told apart by their `phx_ref`, which the client keeps (realtime-js renames it to
`presence_ref`; we leave the server's shape alone). Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PresenceChange", "PresenceState", "sync_diff", "sync_state"]

#: key → the metas tracked under it (one per connection that tracks the key).
PresenceState = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """What changed, and the state after the change."""

    joins: PresenceState = field(default_factory=dict)
    leaves: PresenceState = field(default_factory=dict)
    state: PresenceState = field(default_factory=dict)


def _metas(entry: Any) -> list[dict[str, Any]]:
    metas = entry.get("metas") if isinstance(entry, dict) else None
    return [m for m in metas if isinstance(m, dict)] if isinstance(metas, list) else []


def _grouped(raw: Any) -> PresenceState:
    """`{key: {"metas": [...]}}` from the wire as `{key: [...]}`."""
    if not isinstance(raw, dict):
        return {}
    return {str(key): _metas(entry) for key, entry in raw.items() if _metas(entry)}


def _refs(metas: list[dict[str, Any]]) -> set[Any]:
    return {m.get("phx_ref") for m in metas}


def sync_state(current: PresenceState, raw_state: Any) -> PresenceChange:
    """Replace the state with a `presence_state` snapshot (after every join and rejoin); the
    change lists who appeared and who is gone compared with what we had."""
    new = _grouped(raw_state)
    joins: PresenceState = {}
    leaves: PresenceState = {}
    for key, metas in current.items():
        kept = _refs(new.get(key, []))
        gone = [m for m in metas if m.get("phx_ref") not in kept]
        if gone:
            leaves[key] = gone
    for key, metas in new.items():
        known = _refs(current.get(key, []))
        added = [m for m in metas if m.get("phx_ref") not in known]
        if added:
            joins[key] = added
    return PresenceChange(joins, leaves, new)


def sync_diff(current: PresenceState, raw_diff: Any) -> PresenceChange:
    """Apply a `presence_diff` (`{"joins": ..., "leaves": ...}`): joins first, then leaves, as
    Phoenix does, so an update (a join carrying `phx_ref_prev` plus the leave of the old meta)
    ends with the new meta only."""
    diff = raw_diff if isinstance(raw_diff, dict) else {}
    joins, leaves = _grouped(diff.get("joins")), _grouped(diff.get("leaves"))
    state = {key: list(metas) for key, metas in current.items()}
    for key, metas in joins.items():
        known = _refs(state.get(key, []))
        state[key] = state.get(key, []) + [m for m in metas if m.get("phx_ref") not in known]
    for key, metas in leaves.items():
        gone = _refs(metas)
        remaining = [m for m in state.get(key, []) if m.get("phx_ref") not in gone]
        if remaining:
            state[key] = remaining
        else:
            state.pop(key, None)
    return PresenceChange(joins, leaves, state)
