"""`SqliteDirectory`: the access rules' `Directory` (and the services' `Audience`) on SQLite.

The embedded default's facts live in the `SqliteDatabase` tables; this class reads them for
`CatalogPolicy` and the domain services, and writes them with the same calls as
`MemoryDirectory` (so one contract suite, ``tests/contract/test_directory.py``, runs against
both), plus the richer writes the demo needs (names, tiers, form titles and fields).

`MemoryDirectory`'s writes take bare ids; here a supplier or couple named by such a call but not
yet in the store is created with its id as its name, so both implementations accept the same
sequences of calls. Reads are single indexed statements, run inline (see `store.sqlite`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.audience import couple_display_name
from wedsync_realtime.wedding.core_fields import Venue
from wedsync_realtime.wedding.directory import (
    FormFacts,
    JourneyFacts,
    UserProfile,
    UserType,
    checked_user_type,
)

__all__ = ["SqliteDirectory"]


class SqliteDirectory:
    """`Directory`, `Audience` and `VenueDirectory` over a `SqliteDatabase`, with
    `MemoryDirectory`'s writes."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    @property
    def database(self) -> SqliteDatabase:
        return self._db

    # -- writes: the MemoryDirectory API ------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        user_type: UserType | str,
        *,
        supplier_id: str | None = None,
        couple_id: str | None = None,
        name: str | None = None,
    ) -> UserProfile:
        """Add or replace a user's profile (`name` defaults to the id)."""
        kind = checked_user_type(user_type, supplier_id=supplier_id, couple_id=couple_id)
        with self._db.transaction() as conn:
            if supplier_id:
                self._ensure_supplier(supplier_id)
            if couple_id:
                self._ensure_couple(couple_id)
            conn.execute(
                "INSERT INTO users (id, type, name, supplier_id, couple_id) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET type = excluded.type, name = excluded.name,"
                " supplier_id = excluded.supplier_id, couple_id = excluded.couple_id",
                (user_id, kind.value, name or user_id, supplier_id, couple_id),
            )
        return UserProfile(user_id, kind, supplier_id, couple_id)

    def add_team_member(self, supplier_id: str, user_id: str, role: str = "member") -> None:
        with self._db.transaction() as conn:
            self._ensure_supplier(supplier_id)
            conn.execute(
                "INSERT INTO supplier_team_members (supplier_id, user_id, role) VALUES (?, ?, ?)"
                " ON CONFLICT DO UPDATE SET role = excluded.role",
                (supplier_id, user_id, role),
            )

    def remove_team_member(self, supplier_id: str, user_id: str) -> None:
        self._db.execute(
            "DELETE FROM supplier_team_members WHERE supplier_id = ? AND user_id = ?",
            (supplier_id, user_id),
        )

    def connect(self, supplier_id: str, couple_id: str) -> None:
        """Make the supplier-couple connection active."""
        self._set_connection(supplier_id, couple_id, "active")

    def disconnect(self, supplier_id: str, couple_id: str) -> None:
        """End the connection (kept as a row with status ``ended``)."""
        self._set_connection(supplier_id, couple_id, "ended")

    def add_wedding(self, wedding_id: str, couple_id: str) -> None:
        with self._db.transaction() as conn:
            self._ensure_couple(couple_id)
            conn.execute(
                "INSERT INTO weddings (id, couple_id) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET couple_id = excluded.couple_id",
                (wedding_id, couple_id),
            )

    def add_form(
        self,
        form_id: str,
        supplier_id: str,
        sent_to: tuple[str, ...] = (),
        *,
        title: str | None = None,
        fields: Sequence[tuple[str, str, bool]] = (),
    ) -> None:
        """Add or replace a form; `fields` are (field_id, label, required) in display order."""
        encoded = json.dumps(
            [{"field_id": f, "label": label, "required": req} for f, label, req in fields]
        )
        with self._db.transaction() as conn:
            self._ensure_supplier(supplier_id)
            conn.execute(
                "INSERT INTO forms (id, supplier_id, title, fields) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET supplier_id = excluded.supplier_id,"
                " title = excluded.title, fields = excluded.fields",
                (form_id, supplier_id, title or form_id, encoded),
            )
            conn.execute("DELETE FROM form_recipients WHERE form_id = ?", (form_id,))
            for couple_id in sent_to:
                self.send_form(form_id, couple_id)

    def send_form(self, form_id: str, couple_id: str) -> None:
        """Record that the form was sent to a couple."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM forms WHERE id = ?", (form_id,)).fetchone() is None:
                raise KeyError(form_id)
            self._ensure_couple(couple_id)
            conn.execute(
                "INSERT INTO form_recipients (form_id, couple_id) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (form_id, couple_id),
            )

    def add_journey(self, journey_id: str, supplier_id: str, couple_id: str) -> None:
        """Add a journey instance with no steps (`JourneyStore` adds journeys with steps)."""
        with self._db.transaction() as conn:
            self._ensure_supplier(supplier_id)
            self._ensure_couple(couple_id)
            conn.execute(
                "INSERT INTO journey_instances (id, supplier_id, couple_id) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET supplier_id = excluded.supplier_id,"
                " couple_id = excluded.couple_id",
                (journey_id, supplier_id, couple_id),
            )

    # -- writes: names --------------------------------------------------------------------------

    def add_supplier(
        self, supplier_id: str, name: str, *, category: str | None = None, tier: str = "free"
    ) -> None:
        """Add or rename a supplier."""
        self._db.execute(
            "INSERT INTO suppliers (id, name, category, tier) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
            " category = excluded.category, tier = excluded.tier",
            (supplier_id, name, category, tier),
        )

    def add_couple(self, couple_id: str, partner1_name: str, partner2_name: str | None) -> None:
        """Add or rename a couple."""
        self._db.execute(
            "INSERT INTO couples (id, partner1_name, partner2_name) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET partner1_name = excluded.partner1_name,"
            " partner2_name = excluded.partner2_name",
            (couple_id, partner1_name, partner2_name),
        )

    # -- Directory ------------------------------------------------------------------------------

    async def user_profile(self, user_id: str) -> UserProfile | None:
        row = self._db.query_one(
            "SELECT type, supplier_id, couple_id FROM users WHERE id = ?", (user_id,)
        )
        if row is None:
            return None
        return UserProfile(user_id, UserType(row["type"]), row["supplier_id"], row["couple_id"])

    async def is_team_member(self, user_id: str, supplier_id: str) -> bool:
        row = self._db.query_one(
            "SELECT 1 FROM supplier_team_members WHERE supplier_id = ? AND user_id = ?",
            (supplier_id, user_id),
        )
        return row is not None

    async def is_connected(self, supplier_id: str, couple_id: str) -> bool:
        row = self._db.query_one(
            "SELECT 1 FROM connections WHERE supplier_id = ? AND couple_id = ?"
            " AND status = 'active'",
            (supplier_id, couple_id),
        )
        return row is not None

    async def wedding_couple(self, wedding_id: str) -> str | None:
        row = self._db.query_one("SELECT couple_id FROM weddings WHERE id = ?", (wedding_id,))
        return None if row is None else str(row["couple_id"])

    async def wedding_suppliers(self, wedding_id: str) -> frozenset[str]:
        rows = self._db.query(
            "SELECT c.supplier_id FROM weddings w JOIN connections c ON c.couple_id = w.couple_id"
            " WHERE w.id = ? AND c.status = 'active'",
            (wedding_id,),
        )
        return frozenset(str(r[0]) for r in rows)

    async def form(self, form_id: str) -> FormFacts | None:
        row = self._db.query_one("SELECT supplier_id FROM forms WHERE id = ?", (form_id,))
        if row is None:
            return None
        sent = self._db.query("SELECT couple_id FROM form_recipients WHERE form_id = ?", (form_id,))
        return FormFacts(form_id, str(row["supplier_id"]), frozenset(str(r[0]) for r in sent))

    async def journey(self, journey_id: str) -> JourneyFacts | None:
        row = self._db.query_one(
            "SELECT supplier_id, couple_id FROM journey_instances WHERE id = ?", (journey_id,)
        )
        if row is None:
            return None
        return JourneyFacts(journey_id, str(row["supplier_id"]), str(row["couple_id"]))

    # -- Audience -------------------------------------------------------------------------------

    async def user_name(self, user_id: str) -> str | None:
        row = self._db.query_one("SELECT name FROM users WHERE id = ?", (user_id,))
        return None if row is None else str(row["name"])

    async def couple_name(self, couple_id: str) -> str | None:
        row = self._db.query_one(
            "SELECT partner1_name, partner2_name FROM couples WHERE id = ?", (couple_id,)
        )
        if row is None:
            return None
        return couple_display_name(row["partner1_name"], row["partner2_name"])

    async def supplier_name(self, supplier_id: str) -> str | None:
        row = self._db.query_one("SELECT name FROM suppliers WHERE id = ?", (supplier_id,))
        return None if row is None else str(row["name"])

    async def couple_weddings(self, couple_id: str) -> tuple[str, ...]:
        return _ids(
            self._db.query("SELECT id FROM weddings WHERE couple_id = ? ORDER BY id", (couple_id,))
        )

    async def connected_suppliers(self, couple_id: str) -> tuple[str, ...]:
        return _ids(
            self._db.query(
                "SELECT supplier_id FROM connections WHERE couple_id = ? AND status = 'active'"
                " ORDER BY supplier_id",
                (couple_id,),
            )
        )

    async def supplier_users(self, supplier_id: str) -> tuple[str, ...]:
        return _ids(
            self._db.query(
                "SELECT id FROM users WHERE supplier_id = ? AND type = 'supplier' ORDER BY id",
                (supplier_id,),
            )
        )

    async def couple_users(self, couple_id: str) -> tuple[str, ...]:
        return _ids(
            self._db.query(
                "SELECT id FROM users WHERE couple_id = ? AND type = 'couple' ORDER BY id",
                (couple_id,),
            )
        )

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]:
        """The couples the supplier is actively connected to, in id order."""
        return _ids(
            self._db.query(
                "SELECT couple_id FROM connections WHERE supplier_id = ? AND status = 'active'"
                " ORDER BY couple_id",
                (supplier_id,),
            )
        )

    # -- VenueDirectory -------------------------------------------------------------------------

    async def venue_by_name(self, name: str) -> Venue | None:
        row = self._db.query_one(
            "SELECT id, name, address, capacity FROM venues WHERE casefold(name) = casefold(?)",
            (name.strip(),),
        )
        if row is None:
            return None
        return Venue(row["id"], row["name"], row["address"], row["capacity"])

    # -- helpers --------------------------------------------------------------------------------

    def _set_connection(self, supplier_id: str, couple_id: str, status: str) -> None:
        with self._db.transaction() as conn:
            self._ensure_supplier(supplier_id)
            self._ensure_couple(couple_id)
            conn.execute(
                "INSERT INTO connections (supplier_id, couple_id, status) VALUES (?, ?, ?)"
                " ON CONFLICT DO UPDATE SET status = excluded.status",
                (supplier_id, couple_id, status),
            )

    def _ensure_supplier(self, supplier_id: str) -> None:
        self._db.execute(
            "INSERT INTO suppliers (id, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (supplier_id, supplier_id),
        )

    def _ensure_couple(self, couple_id: str) -> None:
        self._db.execute(
            "INSERT INTO couples (id, partner1_name) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (couple_id, couple_id),
        )


def _ids(rows: Iterable[sqlite3.Row]) -> tuple[str, ...]:
    return tuple(str(row[0]) for row in rows)
