"""Who hears about a couple: the facts the services read to address events and notifications.

`Audience` extends the access rules' `Directory` with names (for "Emma changed the venue to
Garden Manor") and the reverse lookups the services need: a couple's weddings and connected
suppliers, a supplier's and a couple's users. `couple_channels` is the one place that says where
an event about a couple goes (issue 5: "domain events about a couple are delivered on the couple's
channels, the wedding channel, and each connected supplier's `supplier:{id}:clients` channel"),
so that a supplier that is not actively connected never appears in the list.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.directory import Directory, UserProfile, UserType
from wedsync_realtime.wedding.events import channel_name

__all__ = [
    "Audience",
    "CoupleAudience",
    "couple_audience",
    "couple_display_name",
    "may_act_for_couple",
]


class Audience(Directory, Protocol):
    """`Directory` plus names and reverse lookups. Unknown ids answer None or empty."""

    async def user_name(self, user_id: str) -> str | None:
        """The user's display name ("Emma")."""
        ...

    async def couple_name(self, couple_id: str) -> str | None:
        """The couple's display name ("James & Emma")."""
        ...

    async def supplier_name(self, supplier_id: str) -> str | None:
        """The supplier's business name ("Lisa's Catering")."""
        ...

    async def couple_weddings(self, couple_id: str) -> tuple[str, ...]:
        """The couple's weddings, in id order."""
        ...

    async def connected_suppliers(self, couple_id: str) -> tuple[str, ...]:
        """The suppliers actively connected to the couple, in id order."""
        ...

    async def supplier_users(self, supplier_id: str) -> tuple[str, ...]:
        """The users (type supplier) of the supplier, in id order."""
        ...

    async def couple_users(self, couple_id: str) -> tuple[str, ...]:
        """The users (type couple) of the couple, in id order."""
        ...


@dataclass(frozen=True, slots=True)
class CoupleAudience:
    """A couple's weddings and actively connected suppliers, read once per event."""

    couple_id: str
    weddings: tuple[str, ...]
    suppliers: tuple[str, ...]

    def channels(self, *first: str) -> tuple[str, ...]:
        """`first`, then ``couple:{C}``, each ``wedding:{W}``, each ``supplier:{S}:clients``."""
        return (
            *first,
            channel_name(ChannelKind.COUPLE, self.couple_id),
            *(channel_name(ChannelKind.WEDDING, w) for w in self.weddings),
            *(channel_name(ChannelKind.SUPPLIER_CLIENTS, s) for s in self.suppliers),
        )


async def couple_audience(audience: Audience, couple_id: str) -> CoupleAudience:
    # Both reads at once: on PostgreSQL each is a round trip, and change capture announces
    # every change of a busy platform through here.
    weddings, suppliers = await asyncio.gather(
        audience.couple_weddings(couple_id), audience.connected_suppliers(couple_id)
    )
    return CoupleAudience(couple_id, weddings, suppliers)


def couple_display_name(partner1_name: str | None, partner2_name: str | None) -> str:
    """The couple's display name from its partners' names ("James & Emma"; blanks skipped)."""
    return " & ".join(n for n in (partner1_name, partner2_name) if n)


def may_act_for_couple(profile: UserProfile | None, couple_id: str) -> bool:
    """Whether the user is one of the couple's users or an admin."""
    if profile is None:
        return False
    if profile.user_type is UserType.ADMIN:
        return True
    return profile.user_type is UserType.COUPLE and profile.couple_id == couple_id
