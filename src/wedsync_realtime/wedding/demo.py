"""The demo wedding: James & Emma and their five suppliers, loadable (idempotently) into a store.

Issue 5, "Demo data": James & Emma; Sarah (photographer, with the form "Shot List Preferences"),
Lisa's Catering, Mike (venue owner, journey steps "Venue Walkthrough" -> "Contract Review"), a
florist and a planner, all connected to James & Emma; the venue directory ("Grand Hotel", "Garden
Manor", "Riverside Barn"); the couple's core fields (venue: Grand Hotel). For the privacy cases
there is a second couple, Olivia & Noah, with a supplier of their own (Rival Lens Studio) that is
not connected to James & Emma, and an admin.

`load_demo` only upserts fixed ids and never overwrites the couple's core fields once set, so
running it twice (or on a store where the demo was already played with) is harmless. The CLI
prints a token per `DEMO_USERS` entry. On PostgreSQL, where ids are uuids, every demo id is
`demo_uuid` of it (`demo_postgres` loads the same wedding there).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.directory import UserType
from wedsync_realtime.wedding.events import JsonValue, iso_timestamp, utc_now
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import (
    SqliteCoreFieldStore,
    SqliteJourneyStore,
    _dump,
)

__all__ = ["DEMO_NAMESPACE", "DEMO_USERS", "DemoUser", "demo", "demo_uuid", "load_demo"]

#: The namespace of the demo's uuids (fixed: the same demo ids on every PostgreSQL database).
DEMO_NAMESPACE = uuid.UUID("4e24e52f-2506-5725-b6d8-bd660dd596f7")


def demo_uuid(name: str) -> uuid.UUID:
    """The uuid the demo's readable id `name` ("c-james-emma", "emma", ...) has on PostgreSQL:
    uuid5 of `DEMO_NAMESPACE`, stable across runs and databases."""
    return uuid.uuid5(DEMO_NAMESPACE, name)


@dataclass(frozen=True, slots=True)
class DemoIds:
    """The demo's ids, named for what they are."""

    couple: str = "c-james-emma"
    other_couple: str = "c-olivia-noah"
    wedding: str = "w-james-emma"
    other_wedding: str = "w-olivia-noah"
    photographer: str = "s-sarah-photo"
    caterer: str = "s-lisas-catering"
    venue_owner: str = "s-mike-venue"
    florist: str = "s-petal-florist"
    planner: str = "s-pat-planner"
    rival: str = "s-rival-photo"
    shot_list_form: str = "f-shot-list"
    venue_journey: str = "jt-venue-booking"
    walkthrough: str = "j-venue-walkthrough"
    grand_hotel: str = "v-grand-hotel"
    garden_manor: str = "v-garden-manor"
    riverside_barn: str = "v-riverside-barn"

    @property
    def connected_suppliers(self) -> tuple[str, ...]:
        """James & Emma's five suppliers."""
        return (self.photographer, self.caterer, self.venue_owner, self.florist, self.planner)


#: The demo's ids.
demo = DemoIds()


@dataclass(frozen=True, slots=True)
class DemoUser:
    user_id: str
    name: str
    user_type: UserType
    supplier_id: str | None = None
    couple_id: str | None = None


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("james", "James", UserType.COUPLE, couple_id=demo.couple),
    DemoUser("emma", "Emma", UserType.COUPLE, couple_id=demo.couple),
    DemoUser("sarah", "Sarah", UserType.SUPPLIER, supplier_id=demo.photographer),
    DemoUser("tom", "Tom", UserType.SUPPLIER, supplier_id=demo.photographer),
    DemoUser("lisa", "Lisa", UserType.SUPPLIER, supplier_id=demo.caterer),
    DemoUser("mike", "Mike", UserType.SUPPLIER, supplier_id=demo.venue_owner),
    DemoUser("petra", "Petra", UserType.SUPPLIER, supplier_id=demo.florist),
    DemoUser("pat", "Pat", UserType.SUPPLIER, supplier_id=demo.planner),
    DemoUser("olivia", "Olivia", UserType.COUPLE, couple_id=demo.other_couple),
    DemoUser("noah", "Noah", UserType.COUPLE, couple_id=demo.other_couple),
    DemoUser("rita", "Rita", UserType.SUPPLIER, supplier_id=demo.rival),
    DemoUser("admin", "WedSync Operations", UserType.ADMIN),
)

_SUPPLIERS = (
    (demo.photographer, "Sarah Mitchell Photography", "photographer", "professional"),
    (demo.caterer, "Lisa's Catering", "caterer", "free"),
    (demo.venue_owner, "Garden Manor Events", "venue", "professional"),
    (demo.florist, "Petal & Stem", "florist", "free"),
    (demo.planner, "Perfect Day Planning", "planner", "scale"),
    (demo.rival, "Rival Lens Studio", "photographer", "free"),
)

_VENUES = (
    (demo.grand_hotel, "Grand Hotel", "1 Royal Parade, Bath BA1 2AB", 250),
    (demo.garden_manor, "Garden Manor", "Manor Lane, Stow-on-the-Wold GL54 1AA", 120),
    (demo.riverside_barn, "Riverside Barn", "Mill Road, Henley-on-Thames RG9 1AB", 180),
)

#: Sarah's team at her studio: (demo user, role).
_TEAM = (("sarah", "owner"), ("tom", "second shooter"))

#: "Shot List Preferences": (field_id, label, required) in display order.
_SHOT_LIST_FIELDS = (
    ("family_groups", "Family group photos", True),
    ("must_have_shots", "Must-have shots", True),
    ("photo_style", "Photo style", False),
    ("avoid", "Anything to avoid", False),
)

#: "Venue Booking": (step_id, name, kind) in order.
_VENUE_STEPS = (
    ("venue-walkthrough", "Venue Walkthrough", "meeting"),
    ("contract-review", "Contract Review", "task"),
    ("final-details", "Final Details", "email"),
)

#: Who wrote the couple's initial core fields.
_CORE_FIELDS_BY = "emma"

_CORE_FIELDS: dict[str, JsonValue] = {
    "wedding_date": "2025-06-14",
    "venue_name": "Grand Hotel",
    "venue_address": "1 Royal Parade, Bath BA1 2AB",
    "venue_capacity": 250,
    "guest_count": 120,
    "ceremony_time": "14:00",
    "contact_name": "Emma Clarke",
    "contact_email": "emma@example.com",
}


def load_demo(database: SqliteDatabase) -> DemoIds:
    """Load the demo wedding into `database` (idempotent); return its ids."""
    directory = SqliteDirectory(database)
    for supplier_id, name, category, tier in _SUPPLIERS:
        directory.add_supplier(supplier_id, name, category=category, tier=tier)
    directory.add_couple(demo.couple, "James", "Emma")
    directory.add_couple(demo.other_couple, "Olivia", "Noah")
    for user in DEMO_USERS:
        directory.add_user(
            user.user_id,
            user.user_type,
            supplier_id=user.supplier_id,
            couple_id=user.couple_id,
            name=user.name,
        )
    for user_id, role in _TEAM:
        directory.add_team_member(demo.photographer, user_id, role)
    for supplier_id in demo.connected_suppliers:
        directory.connect(supplier_id, demo.couple)
    directory.connect(demo.rival, demo.other_couple)
    directory.add_wedding(demo.wedding, demo.couple)
    directory.add_wedding(demo.other_wedding, demo.other_couple)
    directory.add_form(
        demo.shot_list_form,
        demo.photographer,
        (demo.couple,),
        title="Shot List Preferences",
        fields=_SHOT_LIST_FIELDS,
    )

    core_fields = SqliteCoreFieldStore(database)
    for venue_id, name, address, capacity in _VENUES:
        core_fields.add_venue(venue_id, name, address=address, capacity=capacity)
    journeys = SqliteJourneyStore(database)
    journeys.add_journey(
        demo.venue_journey,
        demo.venue_owner,
        "Venue Booking",
        _VENUE_STEPS,
    )
    journeys.start_journey(demo.walkthrough, demo.venue_journey, demo.couple)

    now = iso_timestamp(utc_now())
    with database.transaction() as conn:
        for field_name, value in _CORE_FIELDS.items():
            conn.execute(
                "INSERT INTO core_field_values"
                " (couple_id, field_name, value, version, updated_by, updated_at)"
                " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT DO NOTHING",
                (demo.couple, field_name, _dump(value), _CORE_FIELDS_BY, now),
            )
    return demo
