"""The contract suites' PostgreSQL side: a migrated database's domain tables, written with SQL.

`PgDirectory` is the test-side twin of `SqliteDirectory`'s write API (``add_user``,
``connect``, ``add_form`` ... and the names: ``add_supplier``, ``add_couple``, ``add_venue``) over
the tables of migrations 0002 and 0003, written with synchronous psycopg; every read goes through
the real `PostgresDirectory`. So one suite fills both backends with the same calls and asks both
the same questions.

Ids. PostgreSQL's ids are uuids; the suites speak short ids ("s1", "emma"). `IdMap` maps each id
to a stable uuid on the way in and back on the way out, and the adapter answers in the suite's
ids. An id that already is a uuid is used as it is (the store suites use real uuids). A short id
(up to 16 bytes) becomes the uuid whose bytes are its UTF-8 bytes, zero-padded: stable like a
uuid5, and *order-preserving* — uuid text order is then the short ids' byte order, which is
SQLite's text order, so the `Audience` lists that come "in id order" are compared exactly on both
backends. Longer ids fall back to uuid5 (their order is not preserved).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from wedsync_realtime.wedding.core_fields import Venue
from wedsync_realtime.wedding.directory import FormFacts, JourneyFacts, UserProfile, UserType
from wedsync_realtime.wedding.postgres_stores import PostgresDirectory, domain_pool

__all__ = [
    "DOMAIN_TABLES",
    "IdMap",
    "PgDirectory",
    "open_domain_pool",
    "pg_directory",
    "postgres_directory",
    "truncate_domain",
]

#: Every table the domain stores read or write; emptied between tests.
DOMAIN_TABLES = (
    "public.user_profiles",
    "public.suppliers",
    "public.couples",
    "public.supplier_client_connections",
    "public.supplier_team_members",
    "public.weddings",
    "public.forms",
    "public.form_recipients",
    "public.form_responses",
    "public.journey_instances",
    "public.core_field_values",
    "public.notifications",
    "public.venues",
    "realtime.last_seen",
)

_LONG_ID_NAMESPACE = uuid.UUID("5b0c2f3e-7a0e-4d4c-9a63-2f1f0e4b8d11")


def truncate_domain(url: str) -> None:
    """Empty the domain tables (one statement; much faster than a fresh database per test)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(DOMAIN_TABLES)} CASCADE")


@asynccontextmanager
async def open_domain_pool(url: str) -> AsyncIterator[AsyncConnectionPool]:
    """The application's pool (`domain_pool`) on `url`, open, closed after."""
    pool = domain_pool(url, max_size=4)
    await pool.open(wait=True, timeout=10)
    try:
        yield pool
    finally:
        await pool.close()


class IdMap:
    """Suite ids <-> uuid text, both ways (see the module docstring)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def key(self, name: str) -> str:
        """The uuid (text) that stands for `name` in PostgreSQL."""
        try:
            key = str(uuid.UUID(name))
        except ValueError:
            raw = name.encode()
            key = str(
                uuid.UUID(bytes=raw.ljust(16, b"\0"))
                if len(raw) <= 16
                else uuid.uuid5(_LONG_ID_NAMESPACE, name)
            )
        self._names.setdefault(key, name)
        return key

    def name(self, key: str) -> str:
        """The suite id a uuid stands for (an unknown uuid is returned as it is, so a stray
        value fails the suite's comparison instead of being hidden)."""
        return self._names.get(key, key)

    def optional(self, key: str | None) -> str | None:
        return None if key is None else self.name(key)

    def names(self, keys: Iterable[str]) -> list[str]:
        return [self.name(k) for k in keys]


class PgDirectory:
    """`SqliteDirectory`'s writes as SQL on a migrated database; reads by `PostgresDirectory`.

    As on SQLite, a supplier or couple named by a write but not yet stored is created with its
    id as its name, so the same sequences of calls are accepted by every implementation.
    """

    def __init__(self, url: str, pool: AsyncConnectionPool) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._reader = PostgresDirectory(pool)
        self.ids = IdMap()

    @property
    def reader(self) -> PostgresDirectory:
        """The implementation under test."""
        return self._reader

    def close(self) -> None:
        self._conn.close()

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
        # Checked here, with SqliteDirectory's messages; the table's CHECKs would refuse too,
        # but with constraint names the suite cannot match on.
        kind = UserType(user_type)
        if kind is UserType.SUPPLIER and not supplier_id:
            raise ValueError("a supplier user needs a supplier_id")
        if kind is UserType.COUPLE and not couple_id:
            raise ValueError("a couple user needs a couple_id")
        with self._conn.transaction():
            if supplier_id:
                self._ensure_supplier(supplier_id)
            if couple_id:
                self._ensure_couple(couple_id)
            self._run(
                "INSERT INTO public.user_profiles (id, user_type, display_name, supplier_id,"
                " couple_id) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " user_type = excluded.user_type, display_name = excluded.display_name,"
                " supplier_id = excluded.supplier_id, couple_id = excluded.couple_id",
                (
                    self._key(user_id),
                    kind.value,
                    name or user_id,
                    self._key(supplier_id),
                    self._key(couple_id),
                ),
            )
        return UserProfile(user_id, kind, supplier_id, couple_id)

    def add_team_member(self, supplier_id: str, user_id: str, role: str = "member") -> None:
        with self._conn.transaction():
            self._ensure_supplier(supplier_id)
            self._run(
                "INSERT INTO public.supplier_team_members (supplier_id, user_id, role)"
                " VALUES (%s, %s, %s) ON CONFLICT (supplier_id, user_id)"
                " DO UPDATE SET role = excluded.role",
                (self._key(supplier_id), self._key(user_id), role),
            )

    def remove_team_member(self, supplier_id: str, user_id: str) -> None:
        self._run(
            "DELETE FROM public.supplier_team_members WHERE supplier_id = %s AND user_id = %s",
            (self._key(supplier_id), self._key(user_id)),
        )

    def connect(self, supplier_id: str, couple_id: str) -> None:
        self._set_connection(supplier_id, couple_id, "active")

    def disconnect(self, supplier_id: str, couple_id: str) -> None:
        self._set_connection(supplier_id, couple_id, "ended")

    def add_wedding(self, wedding_id: str, couple_id: str) -> None:
        with self._conn.transaction():
            self._ensure_couple(couple_id)
            self._run(
                "INSERT INTO public.weddings (id, couple_id) VALUES (%s, %s)"
                " ON CONFLICT (id) DO UPDATE SET couple_id = excluded.couple_id",
                (self._key(wedding_id), self._key(couple_id)),
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
        encoded = json.dumps(
            [{"field_id": f, "label": label, "required": req} for f, label, req in fields]
        )
        with self._conn.transaction():
            self._ensure_supplier(supplier_id)
            self._run(
                "INSERT INTO public.forms (id, supplier_id, title, fields)"
                " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT (id) DO UPDATE SET"
                " supplier_id = excluded.supplier_id, title = excluded.title,"
                " fields = excluded.fields",
                (self._key(form_id), self._key(supplier_id), title or form_id, encoded),
            )
            self._run(
                "DELETE FROM public.form_recipients WHERE form_id = %s", (self._key(form_id),)
            )
            for couple_id in sent_to:
                self.send_form(form_id, couple_id)

    def send_form(self, form_id: str, couple_id: str) -> None:
        with self._conn.transaction():
            found = self._conn.execute(
                "SELECT 1 FROM public.forms WHERE id = %s", (self._key(form_id),)
            ).fetchone()
            if found is None:
                raise KeyError(form_id)
            self._ensure_couple(couple_id)
            self._run(
                "INSERT INTO public.form_recipients (form_id, couple_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (self._key(form_id), self._key(couple_id)),
            )

    def add_journey(self, journey_id: str, supplier_id: str, couple_id: str) -> None:
        with self._conn.transaction():
            self._ensure_supplier(supplier_id)
            self._ensure_couple(couple_id)
            self._run(
                "INSERT INTO public.journey_instances (id, supplier_id, couple_id, journey_name)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " supplier_id = excluded.supplier_id, couple_id = excluded.couple_id",
                (self._key(journey_id), self._key(supplier_id), self._key(couple_id), journey_id),
            )

    # -- writes: names and the venue directory ------------------------------------------------

    def add_supplier(
        self, supplier_id: str, name: str, *, category: str | None = None, tier: str = "free"
    ) -> None:
        self._run(
            "INSERT INTO public.suppliers (id, business_name, category, tier)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " business_name = excluded.business_name, category = excluded.category,"
            " tier = excluded.tier",
            (self._key(supplier_id), name, category, tier),
        )

    def add_couple(self, couple_id: str, partner1_name: str, partner2_name: str | None) -> None:
        self._run(
            "INSERT INTO public.couples (id, partner1_name, partner2_name) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET partner1_name = excluded.partner1_name,"
            " partner2_name = excluded.partner2_name",
            (self._key(couple_id), partner1_name, partner2_name),
        )

    def add_venue(
        self, venue_id: str, name: str, *, address: str | None, capacity: int | None
    ) -> None:
        self._run(
            "INSERT INTO public.venues (id, name, address, capacity) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
            " address = excluded.address, capacity = excluded.capacity",
            (self._key(venue_id), name, address, capacity),
        )

    # -- Directory, through PostgresDirectory -------------------------------------------------

    async def user_profile(self, user_id: str) -> UserProfile | None:
        found = await self._reader.user_profile(self.ids.key(user_id))
        if found is None:
            return None
        return UserProfile(
            self.ids.name(found.user_id),
            found.user_type,
            self.ids.optional(found.supplier_id),
            self.ids.optional(found.couple_id),
        )

    async def is_team_member(self, user_id: str, supplier_id: str) -> bool:
        return await self._reader.is_team_member(self.ids.key(user_id), self.ids.key(supplier_id))

    async def is_connected(self, supplier_id: str, couple_id: str) -> bool:
        return await self._reader.is_connected(self.ids.key(supplier_id), self.ids.key(couple_id))

    async def wedding_couple(self, wedding_id: str) -> str | None:
        return self.ids.optional(await self._reader.wedding_couple(self.ids.key(wedding_id)))

    async def wedding_suppliers(self, wedding_id: str) -> frozenset[str]:
        found = await self._reader.wedding_suppliers(self.ids.key(wedding_id))
        return frozenset(self.ids.names(found))

    async def form(self, form_id: str) -> FormFacts | None:
        found = await self._reader.form(self.ids.key(form_id))
        if found is None:
            return None
        return FormFacts(
            self.ids.name(found.form_id),
            self.ids.name(found.supplier_id),
            frozenset(self.ids.names(found.sent_to)),
        )

    async def journey(self, journey_id: str) -> JourneyFacts | None:
        found = await self._reader.journey(self.ids.key(journey_id))
        if found is None:
            return None
        return JourneyFacts(
            self.ids.name(found.journey_id),
            self.ids.name(found.supplier_id),
            self.ids.name(found.couple_id),
        )

    # -- Audience, supplier_couples, VenueDirectory ---------------------------------------------

    async def user_name(self, user_id: str) -> str | None:
        return await self._reader.user_name(self.ids.key(user_id))

    async def couple_name(self, couple_id: str) -> str | None:
        return await self._reader.couple_name(self.ids.key(couple_id))

    async def supplier_name(self, supplier_id: str) -> str | None:
        return await self._reader.supplier_name(self.ids.key(supplier_id))

    async def couple_weddings(self, couple_id: str) -> tuple[str, ...]:
        return tuple(self.ids.names(await self._reader.couple_weddings(self.ids.key(couple_id))))

    async def connected_suppliers(self, couple_id: str) -> tuple[str, ...]:
        found = await self._reader.connected_suppliers(self.ids.key(couple_id))
        return tuple(self.ids.names(found))

    async def supplier_users(self, supplier_id: str) -> tuple[str, ...]:
        found = await self._reader.supplier_users(self.ids.key(supplier_id))
        return tuple(self.ids.names(found))

    async def couple_users(self, couple_id: str) -> tuple[str, ...]:
        return tuple(self.ids.names(await self._reader.couple_users(self.ids.key(couple_id))))

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]:
        found = await self._reader.supplier_couples(self.ids.key(supplier_id))
        return tuple(self.ids.names(found))

    async def venue_by_name(self, name: str) -> Venue | None:
        found = await self._reader.venue_by_name(name)
        if found is None:
            return None
        return Venue(self.ids.name(found.venue_id), found.name, found.address, found.capacity)

    # -- helpers --------------------------------------------------------------------------------

    def _key(self, name: str | None) -> str | None:
        return None if name is None else self.ids.key(name)

    def _run(self, statement: LiteralString, params: Sequence[Any]) -> None:
        self._conn.execute(statement, params)

    def _set_connection(self, supplier_id: str, couple_id: str, status: str) -> None:
        with self._conn.transaction():
            self._ensure_supplier(supplier_id)
            self._ensure_couple(couple_id)
            self._run(
                "INSERT INTO public.supplier_client_connections (supplier_id, couple_id, status)"
                " VALUES (%s, %s, %s) ON CONFLICT (supplier_id, couple_id)"
                " DO UPDATE SET status = excluded.status",
                (self._key(supplier_id), self._key(couple_id), status),
            )

    def _ensure_supplier(self, supplier_id: str) -> None:
        self._run(
            "INSERT INTO public.suppliers (id, business_name) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (self._key(supplier_id), supplier_id),
        )

    def _ensure_couple(self, couple_id: str) -> None:
        self._run(
            "INSERT INTO public.couples (id, partner1_name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (self._key(couple_id), couple_id),
        )


@asynccontextmanager
async def pg_directory(url: str) -> AsyncIterator[PgDirectory]:
    """A `PgDirectory` on `url` with the domain tables emptied first, over an open
    `open_domain_pool`; the directory's connection is closed after, then the pool."""
    truncate_domain(url)
    async with open_domain_pool(url) as pool:
        directory = PgDirectory(url, pool)
        try:
            yield directory
        finally:
            directory.close()


@asynccontextmanager
async def postgres_directory(request: pytest.FixtureRequest) -> AsyncIterator[PgDirectory]:
    """The contract suites' PostgreSQL factory: `pg_directory` on the module's ``postgres_url``
    fixture (a migrated database, requested only when a PostgreSQL case runs)."""
    url: str = request.getfixturevalue("postgres_url")
    async with pg_directory(url) as directory:
        yield directory
