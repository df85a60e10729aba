"""The WedSync channel catalog: parse a channel name into a typed `ChannelRef`.

The catalog (issue 5, "Channel catalog and access rules"; SPEC.md "Channels"):

* ``supplier:{id}`` — SUPPLIER; ``supplier:{id}:team|clients|forms|journeys`` — SUPPLIER_TEAM,
  SUPPLIER_CLIENTS, SUPPLIER_FORMS, SUPPLIER_JOURNEYS; ``supplier:dashboard:{id}`` —
  SUPPLIER_DASHBOARD (ids: the supplier);
* ``couple:{id}`` — COUPLE; ``couple:{id}:suppliers|tasks|timeline`` — COUPLE_SUPPLIERS,
  COUPLE_TASKS, COUPLE_TIMELINE; ``couple:dashboard:{id}`` — COUPLE_DASHBOARD (ids: the couple);
* ``wedding:{id}`` — WEDDING;
* ``collaboration:{supplier_id}:{couple_id}`` and its alias ``collab:`` — COLLABORATION;
* ``form:{id}`` — FORM; ``form:responses:{id}`` — FORM_RESPONSES;
* ``journey:{journey_id}:{client_id}`` — JOURNEY; ``journey:progress:{journey_id}`` —
  JOURNEY_PROGRESS;
* ``core_fields:{couple_id}`` — CORE_FIELDS;
* ``broadcast:{scope}`` — BROADCAST;
* ``user:{user_id}`` — USER.

Ids are non-empty and contain no ``:`` (so a name splits on ``:`` into exactly its segments);
whitespace is not trimmed. Anything else parses to None: not a catalog channel.

Ambiguities, and the rule that resolves them: a name like ``supplier:dashboard:team`` reads
both as ``supplier:dashboard:{id}`` and as ``supplier:{id}:team``, and
``journey:progress:c1`` both as ``journey:progress:{id}`` and as
``journey:{journey_id}:{client_id}``. **The keyword wins**: the words in `RESERVED_IDS`
(``dashboard`` after ``supplier:``/``couple:``, ``progress`` after ``journey:``, ``responses``
after ``form:``) are never ids in that position. So ``supplier:dashboard:X`` is always the
dashboard of X, ``journey:progress:X`` always the progress of journey X, and a name that would
need the keyword as an id (``supplier:dashboard``, ``couple:dashboard:x:team``,
``form:responses``) is not a catalog channel. Stores must not mint those words as ids.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

__all__ = [
    "CATALOG_SCOPES",
    "RESERVED_IDS",
    "ChannelKind",
    "ChannelRef",
    "in_catalog_namespace",
    "names_any_of",
    "parse_channel",
]


class ChannelKind(enum.StrEnum):
    SUPPLIER = "supplier"
    SUPPLIER_TEAM = "supplier_team"
    SUPPLIER_CLIENTS = "supplier_clients"
    SUPPLIER_FORMS = "supplier_forms"
    SUPPLIER_JOURNEYS = "supplier_journeys"
    SUPPLIER_DASHBOARD = "supplier_dashboard"
    COUPLE = "couple"
    COUPLE_SUPPLIERS = "couple_suppliers"
    COUPLE_TASKS = "couple_tasks"
    COUPLE_TIMELINE = "couple_timeline"
    COUPLE_DASHBOARD = "couple_dashboard"
    WEDDING = "wedding"
    COLLABORATION = "collaboration"
    FORM = "form"
    FORM_RESPONSES = "form_responses"
    JOURNEY = "journey"
    JOURNEY_PROGRESS = "journey_progress"
    CORE_FIELDS = "core_fields"
    BROADCAST = "broadcast"
    USER = "user"


#: The first segments the catalog owns (``collab`` is the alias of ``collaboration``).
CATALOG_SCOPES = frozenset(
    {
        "supplier",
        "couple",
        "wedding",
        "collaboration",
        "collab",
        "form",
        "journey",
        "core_fields",
        "broadcast",
        "user",
    }
)

#: Keywords that are never an id right after their scope (the ambiguity rule above).
RESERVED_IDS: dict[str, frozenset[str]] = {
    "supplier": frozenset({"dashboard"}),
    "couple": frozenset({"dashboard"}),
    "form": frozenset({"responses"}),
    "journey": frozenset({"progress"}),
}

_SUPPLIER_SUB = {
    "team": ChannelKind.SUPPLIER_TEAM,
    "clients": ChannelKind.SUPPLIER_CLIENTS,
    "forms": ChannelKind.SUPPLIER_FORMS,
    "journeys": ChannelKind.SUPPLIER_JOURNEYS,
}
_COUPLE_SUB = {
    "suppliers": ChannelKind.COUPLE_SUPPLIERS,
    "tasks": ChannelKind.COUPLE_TASKS,
    "timeline": ChannelKind.COUPLE_TIMELINE,
}
_SINGLE = {
    "wedding": ChannelKind.WEDDING,
    "core_fields": ChannelKind.CORE_FIELDS,
    "broadcast": ChannelKind.BROADCAST,
    "user": ChannelKind.USER,
}


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """One catalog channel: its kind and its ids, in the order of the name.

    `ids` holds one id, except COLLABORATION (supplier_id, couple_id) and JOURNEY
    (journey_id, client_id).
    """

    kind: ChannelKind
    ids: tuple[str, ...]

    @property
    def id(self) -> str:
        """The first id: the supplier, couple, wedding, form, journey, scope or user."""
        return self.ids[0]

    @property
    def second_id(self) -> str:
        """The couple of a collaboration, the client of a journey instance."""
        if len(self.ids) < 2:
            raise AttributeError(f"a {self.kind} channel has one id")
        return self.ids[1]

    @property
    def name(self) -> str:
        """The canonical name (``collab:`` is written ``collaboration:``)."""
        k = ChannelKind
        if self.kind in _SUPPLIER_SUB.values() or self.kind in _COUPLE_SUB.values():
            scope, sub = self.kind.value.split("_", 1)
            return f"{scope}:{self.id}:{sub}"
        if self.kind in (k.SUPPLIER_DASHBOARD, k.COUPLE_DASHBOARD):
            return f"{self.kind.value.split('_', 1)[0]}:dashboard:{self.id}"
        if self.kind is k.FORM_RESPONSES:
            return f"form:responses:{self.id}"
        if self.kind is k.JOURNEY_PROGRESS:
            return f"journey:progress:{self.id}"
        return ":".join((self.kind.value, *self.ids))


def in_catalog_namespace(channel: str) -> bool:
    """Whether `channel` starts with a scope the catalog owns (whether or not it parses)."""
    return channel.partition(":")[0] in CATALOG_SCOPES


def names_any_of(channel: str, ids: Collection[str]) -> bool:
    """Whether one ``:``-separated segment of `channel` is one of `ids` (any name, catalog or
    not: ``collaboration:{S}:{C}`` names both S and C)."""
    return any(part in ids for part in channel.split(":"))


def parse_channel(channel: str) -> ChannelRef | None:
    """Parse a channel name (the subtopic, without ``realtime:``); None when not in the catalog."""
    parts = channel.split(":")
    if len(parts) < 2 or any(not p for p in parts):
        return None
    scope, rest = parts[0], parts[1:]
    reserved = RESERVED_IDS.get(scope, frozenset())
    k = ChannelKind
    if scope in _SINGLE:
        return ChannelRef(_SINGLE[scope], (rest[0],)) if len(rest) == 1 else None
    if scope in ("supplier", "couple"):
        subs = _SUPPLIER_SUB if scope == "supplier" else _COUPLE_SUB
        dashboard = k.SUPPLIER_DASHBOARD if scope == "supplier" else k.COUPLE_DASHBOARD
        plain = k.SUPPLIER if scope == "supplier" else k.COUPLE
        if rest[0] in reserved:
            return ChannelRef(dashboard, (rest[1],)) if len(rest) == 2 else None
        if len(rest) == 1:
            return ChannelRef(plain, (rest[0],))
        if len(rest) == 2 and rest[1] in subs:
            return ChannelRef(subs[rest[1]], (rest[0],))
        return None
    if scope in ("collaboration", "collab"):
        return ChannelRef(k.COLLABORATION, (rest[0], rest[1])) if len(rest) == 2 else None
    if scope == "form":
        if rest[0] in reserved:
            return ChannelRef(k.FORM_RESPONSES, (rest[1],)) if len(rest) == 2 else None
        return ChannelRef(k.FORM, (rest[0],)) if len(rest) == 1 else None
    if scope == "journey" and len(rest) == 2:
        if rest[0] in reserved:
            return ChannelRef(k.JOURNEY_PROGRESS, (rest[1],))
        return ChannelRef(k.JOURNEY, (rest[0], rest[1]))
    return None
