"""WedSync data for benchmarks: a plan of couples, suppliers and users, and its embedded seeding.

`SeedPlan.build` decides who exists, independently of where the data will live:

* ``couples`` couples, each with one couple user (named ``bu-c{i}``, the one who edits the core
  fields), one wedding (``bw-{i}``) and ``suppliers_per_couple`` actively connected suppliers,
  one of each category (photographer, caterer, venue, florist, planner, ...);
* every supplier serves ``couples_per_supplier`` couples and has that many users (its team,
  each online on a connection of their own), so the supplier connections always number
  ``couples * suppliers_per_couple``. With the default of 1, every supplier is distinct and has
  one user: 1,000 couples give 5,000 suppliers and 6,000 users;
* every couple starts with the same core fields (`INITIAL_FIELDS`, version 1) and the venue
  directory holds `VENUES`, so a venue change fills the venue's address and capacity.

Ids are uuids made from those names (`bench_id`), as PostgreSQL's schema needs them.
`seed_sqlite` writes a plan into the embedded default's SQLite file through the project's own
store code (`SqliteDirectory`, `SqliteCoreFieldStore`), in one transaction, before the server
starts; `benchmarks.core_fields_postgres` seeds the same plan into PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wedsync_realtime.store.sqlite import SqliteDatabase, database_path
from wedsync_realtime.wedding.core_fields import FieldWrite
from wedsync_realtime.wedding.directory import UserType
from wedsync_realtime.wedding.events import JsonValue
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import SqliteCoreFieldStore

__all__ = [
    "CATEGORIES",
    "INITIAL_FIELDS",
    "VENUES",
    "SeedCouple",
    "SeedPlan",
    "SeedSupplier",
    "bench_id",
    "seed_sqlite",
]

#: Namespace of the benchmark's ids (uuid5 of a readable name: PostgreSQL's ids are uuids, as
#: `auth.uid()` is; the embedded store takes them as they are).
_ID_NAMESPACE = uuid.UUID("6f1c3e52-0c7b-4d0e-9a4f-62656e636866")


def bench_id(name: str) -> str:
    """The benchmark's id for a readable name (``bc-00001`` -> a uuid)."""
    return str(uuid.uuid5(_ID_NAMESPACE, name))


#: One supplier of each category per couple (cycled when a couple has more than 5).
CATEGORIES = ("photographer", "caterer", "venue", "florist", "planner")

#: The venue directory: (id, name, address, capacity).
VENUES: tuple[tuple[str, str, str, int], ...] = (
    ("bv-grand-hotel", "Grand Hotel", "1 Royal Parade, Bath BA1 2AB", 250),
    ("bv-garden-manor", "Garden Manor", "Manor Lane, Stow-on-the-Wold GL54 1AA", 120),
    ("bv-riverside-barn", "Riverside Barn", "Mill Road, Henley-on-Thames RG9 1AB", 180),
)

#: Every couple's core fields before the benchmark writes (each at version 1).
INITIAL_FIELDS: Mapping[str, JsonValue] = {
    "wedding_date": "2027-06-12",
    "venue_name": "Grand Hotel",
    "venue_address": "1 Royal Parade, Bath BA1 2AB",
    "venue_capacity": 250,
    "guest_count": 120,
    "ceremony_time": "14:00",
    "contact_name": "Emma Clarke",
    "contact_email": "emma@example.com",
}


@dataclass(frozen=True, slots=True)
class SeedCouple:
    index: int
    couple_id: str
    #: The couple's one user: it writes the core fields and is online on ``couple:{id}``.
    user_id: str
    wedding_id: str
    supplier_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeedSupplier:
    index: int
    supplier_id: str
    category: str
    #: Its users (its team), each online on ``supplier:{id}:clients``.
    user_ids: tuple[str, ...]
    couple_indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SeedPlan:
    couples: tuple[SeedCouple, ...]
    suppliers: tuple[SeedSupplier, ...]
    couples_per_supplier: int

    @classmethod
    def build(
        cls, couples: int, suppliers_per_couple: int = 5, couples_per_supplier: int = 1
    ) -> SeedPlan:
        """The plan; `couples` must be a multiple of `couples_per_supplier`.

        Supplier ``s`` of couple ``i`` (its ``s``-th category) is supplier number
        ``s * couples / couples_per_supplier + i // couples_per_supplier``: consecutive couples
        share a photographer, a caterer and so on, and no couple has the same supplier twice.
        """
        if couples <= 0 or suppliers_per_couple <= 0 or couples_per_supplier <= 0:
            raise ValueError("couples, suppliers per couple and couples per supplier must be > 0")
        if couples % couples_per_supplier:
            raise ValueError(
                f"{couples} couples do not split into suppliers of {couples_per_supplier} couples"
            )
        per_category = couples // couples_per_supplier
        suppliers: list[SeedSupplier] = []
        for s in range(suppliers_per_couple):
            for k in range(per_category):
                index = s * per_category + k
                suppliers.append(
                    SeedSupplier(
                        index=index,
                        supplier_id=bench_id(f"bs-{index:05d}"),
                        category=CATEGORIES[s % len(CATEGORIES)],
                        user_ids=tuple(
                            bench_id(f"bu-s{index}-{u}") for u in range(couples_per_supplier)
                        ),
                        couple_indexes=tuple(
                            range(k * couples_per_supplier, (k + 1) * couples_per_supplier)
                        ),
                    )
                )
        couple_list = tuple(
            SeedCouple(
                index=i,
                couple_id=bench_id(f"bc-{i:05d}"),
                user_id=bench_id(f"bu-c{i}"),
                wedding_id=bench_id(f"bw-{i:05d}"),
                supplier_ids=tuple(
                    suppliers[s * per_category + i // couples_per_supplier].supplier_id
                    for s in range(suppliers_per_couple)
                ),
            )
            for i in range(couples)
        )
        return cls(couple_list, tuple(suppliers), couples_per_supplier)

    @property
    def supplier_users(self) -> int:
        return sum(len(s.user_ids) for s in self.suppliers)

    def supplier_users_of_couple(self, couple_index: int) -> int:
        """How many supplier users a change of that couple must reach."""
        return len(self.couples[couple_index].supplier_ids) * self.couples_per_supplier


async def seed_sqlite(plan: SeedPlan, data_dir: Path) -> Path:
    """Write `plan` into the embedded store of `data_dir` (created); returns the file's path.

    One transaction through the store API; the store's methods nest into it.
    """
    path = database_path(data_dir)
    database = SqliteDatabase.open(path)
    try:
        directory = SqliteDirectory(database)
        core_fields = SqliteCoreFieldStore(database)
        with database.transaction():
            for venue_id, name, address, capacity in VENUES:
                core_fields.add_venue(venue_id, name, address=address, capacity=capacity)
            for supplier in plan.suppliers:
                directory.add_supplier(
                    supplier.supplier_id,
                    f"Bench {supplier.category.title()} {supplier.index}",
                    category=supplier.category,
                    tier="professional",
                )
                for n, user_id in enumerate(supplier.user_ids):
                    directory.add_user(
                        user_id,
                        UserType.SUPPLIER,
                        supplier_id=supplier.supplier_id,
                        name=f"Supplier {supplier.index}.{n}",
                    )
            for couple in plan.couples:
                directory.add_couple(
                    couple.couple_id, f"Partner A{couple.index}", f"B{couple.index}"
                )
                directory.add_user(
                    couple.user_id,
                    UserType.COUPLE,
                    couple_id=couple.couple_id,
                    name=f"Partner A{couple.index}",
                )
                directory.add_wedding(couple.wedding_id, couple.couple_id)
                for supplier_id in couple.supplier_ids:
                    directory.connect(supplier_id, couple.couple_id)
                await core_fields.write_core_fields(
                    couple.couple_id,
                    [FieldWrite(name, value, 0) for name, value in INITIAL_FIELDS.items()],
                    updated_by=couple.user_id,
                    at="2026-01-01T00:00:00.000Z",
                )
    finally:
        database.close()
    return path
