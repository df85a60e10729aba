"""The facts the catalog's access rules read, and an in-memory reference implementation.

Issue 5, "Channel catalog and access rules": "Data the rules read: users with their type
(supplier, couple, admin), their supplier or couple, team membership, supplier-couple
connections, weddings, forms, journeys" — tables of the server's store on the embedded default,
the WedSync tables of the migrations on PostgreSQL. `Directory` is that read interface;
`MemoryDirectory` is the reference used by tests and, later, the embedded default.

The directory holds facts only; what they allow is `wedding.policy.CatalogPolicy`'s business.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Directory",
    "FormFacts",
    "JourneyFacts",
    "MemoryDirectory",
    "UserProfile",
    "UserType",
    "checked_user_type",
]


class UserType(enum.StrEnum):
    SUPPLIER = "supplier"
    COUPLE = "couple"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A row of `user_profiles`: the user's type and the supplier or couple they belong to."""

    user_id: str
    user_type: UserType
    supplier_id: str | None = None
    couple_id: str | None = None

    @property
    def acting_supplier_id(self) -> str | None:
        """The supplier this user acts for: their supplier, if they are a supplier user."""
        return self.supplier_id if self.user_type is UserType.SUPPLIER else None

    @property
    def acting_couple_id(self) -> str | None:
        """The couple this user acts for: their couple, if they are a couple user."""
        return self.couple_id if self.user_type is UserType.COUPLE else None


def checked_user_type(
    user_type: UserType | str, *, supplier_id: str | None, couple_id: str | None
) -> UserType:
    """`user_type` as a `UserType`, once the ids a profile of that type needs are given (the
    check of every directory's `add_user`); ValueError otherwise."""
    kind = UserType(user_type)
    if kind is UserType.SUPPLIER and not supplier_id:
        raise ValueError("a supplier user needs a supplier_id")
    if kind is UserType.COUPLE and not couple_id:
        raise ValueError("a couple user needs a couple_id")
    return kind


@dataclass(frozen=True, slots=True)
class FormFacts:
    """A form: the supplier that owns it and the couples it was sent to."""

    form_id: str
    supplier_id: str
    sent_to: frozenset[str]


@dataclass(frozen=True, slots=True)
class JourneyFacts:
    """A journey instance: the supplier running it and its client couple."""

    journey_id: str
    supplier_id: str
    couple_id: str


class Directory(Protocol):
    """Read-only facts for the access rules. Unknown ids answer None, False or empty."""

    async def user_profile(self, user_id: str) -> UserProfile | None: ...

    async def is_team_member(self, user_id: str, supplier_id: str) -> bool:
        """Whether `user_id` is on the team of `supplier_id` (an invited team member)."""
        ...

    async def is_connected(self, supplier_id: str, couple_id: str) -> bool:
        """Whether the supplier-couple connection exists and is active now."""
        ...

    async def wedding_couple(self, wedding_id: str) -> str | None:
        """The couple whose wedding it is."""
        ...

    async def wedding_suppliers(self, wedding_id: str) -> frozenset[str]:
        """The suppliers actively connected to that wedding."""
        ...

    async def form(self, form_id: str) -> FormFacts | None: ...

    async def journey(self, journey_id: str) -> JourneyFacts | None: ...


class MemoryDirectory:
    """`Directory` in memory, filled with `add_*` calls.

    A wedding's suppliers are the suppliers actively connected to the wedding's couple, so
    disconnecting a supplier from a couple also takes it off the couple's weddings.
    """

    def __init__(self) -> None:
        self._profiles: dict[str, UserProfile] = {}
        self._teams: dict[str, set[str]] = {}
        self._connections: set[tuple[str, str]] = set()
        self._weddings: dict[str, str] = {}
        self._forms: dict[str, FormFacts] = {}
        self._journeys: dict[str, JourneyFacts] = {}

    # -- writes (tests, demo data, the embedded default) --------------------------------------

    def add_user(
        self,
        user_id: str,
        user_type: UserType | str,
        *,
        supplier_id: str | None = None,
        couple_id: str | None = None,
    ) -> UserProfile:
        """Add or replace a user's profile."""
        kind = checked_user_type(user_type, supplier_id=supplier_id, couple_id=couple_id)
        profile = UserProfile(user_id, kind, supplier_id, couple_id)
        self._profiles[user_id] = profile
        return profile

    def add_team_member(self, supplier_id: str, user_id: str) -> None:
        self._teams.setdefault(supplier_id, set()).add(user_id)

    def remove_team_member(self, supplier_id: str, user_id: str) -> None:
        self._teams.get(supplier_id, set()).discard(user_id)

    def connect(self, supplier_id: str, couple_id: str) -> None:
        """Make the supplier-couple connection active."""
        self._connections.add((supplier_id, couple_id))

    def disconnect(self, supplier_id: str, couple_id: str) -> None:
        self._connections.discard((supplier_id, couple_id))

    def add_wedding(self, wedding_id: str, couple_id: str) -> None:
        self._weddings[wedding_id] = couple_id

    def add_form(self, form_id: str, supplier_id: str, sent_to: tuple[str, ...] = ()) -> None:
        self._forms[form_id] = FormFacts(form_id, supplier_id, frozenset(sent_to))

    def send_form(self, form_id: str, couple_id: str) -> None:
        """Record that the form was sent to a couple."""
        facts = self._forms[form_id]
        self._forms[form_id] = FormFacts(form_id, facts.supplier_id, facts.sent_to | {couple_id})

    def add_journey(self, journey_id: str, supplier_id: str, couple_id: str) -> None:
        self._journeys[journey_id] = JourneyFacts(journey_id, supplier_id, couple_id)

    # -- Directory -----------------------------------------------------------------------------

    async def user_profile(self, user_id: str) -> UserProfile | None:
        return self._profiles.get(user_id)

    async def is_team_member(self, user_id: str, supplier_id: str) -> bool:
        return user_id in self._teams.get(supplier_id, ())

    async def is_connected(self, supplier_id: str, couple_id: str) -> bool:
        return (supplier_id, couple_id) in self._connections

    async def wedding_couple(self, wedding_id: str) -> str | None:
        return self._weddings.get(wedding_id)

    async def wedding_suppliers(self, wedding_id: str) -> frozenset[str]:
        couple = self._weddings.get(wedding_id)
        if couple is None:
            return frozenset()
        return frozenset(s for s, c in self._connections if c == couple)

    async def form(self, form_id: str) -> FormFacts | None:
        return self._forms.get(form_id)

    async def journey(self, journey_id: str) -> JourneyFacts | None:
        return self._journeys.get(journey_id)
