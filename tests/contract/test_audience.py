"""The `Audience` contract (names and reverse lookups), ``supplier_couples`` and the
`VenueDirectory`: SqliteDirectory and PostgresDirectory answer alike.

Both are filled with `SqliteDirectory`'s write API (for PostgreSQL, `PgDirectory` in
``tests/support/pg_directory.py`` writes the same facts with SQL and reads through the real
`PostgresDirectory`; its ids map to uuids whose order is the short ids' order, so the lists that
come "in id order" are compared exactly). Rows are written out of id order on purpose, so that
an implementation returning insertion order fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import pytest

from tests.support.cdc import migrated_database
from tests.support.pg_directory import pg_directory, postgres_directory
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.audience import Audience
from wedsync_realtime.wedding.core_fields import Venue
from wedsync_realtime.wedding.directory import UserProfile, UserType
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import SqliteCoreFieldStore


class WritableAudience(Audience, Protocol):
    """The writes both sides share (`SqliteDirectory`'s), and the reads beyond `Audience`."""

    def add_user(
        self,
        user_id: str,
        user_type: UserType | str,
        *,
        supplier_id: str | None = None,
        couple_id: str | None = None,
        name: str | None = None,
    ) -> UserProfile: ...

    def add_team_member(self, supplier_id: str, user_id: str, role: str = "member") -> None: ...

    def connect(self, supplier_id: str, couple_id: str) -> None: ...

    def disconnect(self, supplier_id: str, couple_id: str) -> None: ...

    def add_wedding(self, wedding_id: str, couple_id: str) -> None: ...

    def add_supplier(
        self, supplier_id: str, name: str, *, category: str | None = None, tier: str = "free"
    ) -> None: ...

    def add_couple(self, couple_id: str, partner1_name: str, partner2_name: str | None) -> None: ...

    def add_venue(
        self, venue_id: str, name: str, *, address: str | None, capacity: int | None
    ) -> None: ...

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]: ...

    async def venue_by_name(self, name: str) -> Venue | None: ...


class _SqliteAudience(SqliteDirectory):
    """`SqliteDirectory` plus the venue directory's write, which lives on the core field store."""

    def add_venue(
        self, venue_id: str, name: str, *, address: str | None, capacity: int | None
    ) -> None:
        SqliteCoreFieldStore(self.database).add_venue(
            venue_id, name, address=address, capacity=capacity
        )


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[WritableAudience]:
    database = SqliteDatabase.open(":memory:")
    try:
        yield _SqliteAudience(database)
    finally:
        database.close()


FACTORIES: dict[
    str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[WritableAudience]]
] = {
    "sqlite": _sqlite,
    "postgres": postgres_directory,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One migrated database for the module (requested by the postgres factory only)."""
    with migrated_database("wedsync_contract_audience") as url:
        yield url


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)]
)
async def audience(request: pytest.FixtureRequest) -> AsyncIterator[WritableAudience]:
    async with FACTORIES[request.param](request) as implementation:
        yield implementation


async def test_unknown_ids_answer_none_or_empty(audience: WritableAudience) -> None:
    assert await audience.user_name("nobody") is None
    assert await audience.couple_name("c1") is None
    assert await audience.supplier_name("s1") is None
    assert await audience.couple_weddings("c1") == ()
    assert await audience.connected_suppliers("c1") == ()
    assert await audience.supplier_users("s1") == ()
    assert await audience.couple_users("c1") == ()
    assert await audience.supplier_couples("s1") == ()
    assert await audience.venue_by_name("Garden Manor") is None


async def test_names_of_users_couples_and_suppliers(audience: WritableAudience) -> None:
    audience.add_supplier("s1", "Lisa's Catering", category="catering")
    audience.add_couple("c1", "James", "Emma")
    audience.add_couple("c2", "Sam", None)
    audience.add_user("emma", UserType.COUPLE, couple_id="c1", name="Emma")
    audience.add_user("lisa", UserType.SUPPLIER, supplier_id="s1", name="Lisa")
    assert await audience.user_name("emma") == "Emma"
    assert await audience.user_name("lisa") == "Lisa"
    assert await audience.couple_name("c1") == "James & Emma"
    assert await audience.couple_name("c2") == "Sam"  # no partner 2: no " & "
    assert await audience.supplier_name("s1") == "Lisa's Catering"


async def test_names_follow_renames(audience: WritableAudience) -> None:
    audience.add_supplier("s1", "Lisa's Catering")
    audience.add_supplier("s1", "Lisa's Fine Catering", tier="professional")
    audience.add_couple("c1", "James", None)
    audience.add_couple("c1", "James", "Emma")
    audience.add_user("emma", UserType.COUPLE, couple_id="c1", name="Em")
    audience.add_user("emma", UserType.COUPLE, couple_id="c1", name="Emma")
    assert await audience.supplier_name("s1") == "Lisa's Fine Catering"
    assert await audience.couple_name("c1") == "James & Emma"
    assert await audience.user_name("emma") == "Emma"


async def test_the_write_api_names_what_it_creates_by_its_id(audience: WritableAudience) -> None:
    """A supplier or couple first named by a write (a connection, a user) is called by its id,
    and so is a user added without a name."""
    audience.connect("s9", "c9")
    audience.add_user("ops", UserType.ADMIN)
    assert await audience.supplier_name("s9") == "s9"
    assert await audience.couple_name("c9") == "c9"
    assert await audience.user_name("ops") == "ops"


async def test_a_couples_weddings_in_id_order(audience: WritableAudience) -> None:
    audience.add_wedding("w3", "c1")
    audience.add_wedding("w1", "c1")
    audience.add_wedding("w2", "c2")
    audience.add_wedding("w10", "c1")
    assert await audience.couple_weddings("c1") == ("w1", "w10", "w3")  # text order
    assert await audience.couple_weddings("c2") == ("w2",)
    audience.add_wedding("w3", "c2")  # moved to another couple
    assert await audience.couple_weddings("c1") == ("w1", "w10")
    assert await audience.couple_weddings("c2") == ("w2", "w3")


async def test_connected_suppliers_are_the_active_ones_in_id_order(
    audience: WritableAudience,
) -> None:
    audience.connect("s3", "c1")
    audience.connect("s1", "c1")
    audience.connect("s2", "c1")
    audience.connect("s4", "c2")
    assert await audience.connected_suppliers("c1") == ("s1", "s2", "s3")
    audience.disconnect("s2", "c1")
    assert await audience.connected_suppliers("c1") == ("s1", "s3")
    audience.disconnect("s5", "c1")  # a connection that never was: ended, never listed
    assert await audience.connected_suppliers("c1") == ("s1", "s3")
    audience.connect("s2", "c1")
    assert await audience.connected_suppliers("c1") == ("s1", "s2", "s3")
    assert await audience.connected_suppliers("c2") == ("s4",)


async def test_a_suppliers_couples_are_its_active_connections_in_id_order(
    audience: WritableAudience,
) -> None:
    audience.connect("s1", "c3")
    audience.connect("s1", "c1")
    audience.connect("s1", "c2")
    audience.connect("s2", "c4")
    assert await audience.supplier_couples("s1") == ("c1", "c2", "c3")
    audience.disconnect("s1", "c1")
    assert await audience.supplier_couples("s1") == ("c2", "c3")
    assert await audience.supplier_couples("s2") == ("c4",)


async def test_a_suppliers_users_are_its_supplier_type_users_in_id_order(
    audience: WritableAudience,
) -> None:
    audience.add_user("tom", UserType.SUPPLIER, supplier_id="s1")
    audience.add_user("lisa", UserType.SUPPLIER, supplier_id="s1")
    audience.add_user("mia", UserType.SUPPLIER, supplier_id="s2")
    audience.add_user("emma", UserType.COUPLE, couple_id="c1")
    audience.add_user("ops", UserType.ADMIN, supplier_id="s1")  # an admin is not its user
    audience.add_team_member("s1", "ann")  # invited, no profile: not a user yet
    assert await audience.supplier_users("s1") == ("lisa", "tom")
    assert await audience.supplier_users("s2") == ("mia",)
    audience.add_user("tom", UserType.SUPPLIER, supplier_id="s2")  # moved
    assert await audience.supplier_users("s1") == ("lisa",)
    assert await audience.supplier_users("s2") == ("mia", "tom")


async def test_a_couples_users_are_its_couple_type_users_in_id_order(
    audience: WritableAudience,
) -> None:
    audience.add_user("james", UserType.COUPLE, couple_id="c1")
    audience.add_user("emma", UserType.COUPLE, couple_id="c1")
    audience.add_user("sam", UserType.COUPLE, couple_id="c2")
    audience.add_user("lisa", UserType.SUPPLIER, supplier_id="s1", couple_id="c1")
    assert await audience.couple_users("c1") == ("emma", "james")
    assert await audience.couple_users("c2") == ("sam",)
    audience.add_user("james", UserType.ADMIN)  # no longer the couple's
    assert await audience.couple_users("c1") == ("emma",)


async def test_venues_are_found_by_name_without_regard_to_case(
    audience: WritableAudience,
) -> None:
    audience.add_venue("v1", "Garden Manor", address="1 Rose Lane, Bath", capacity=120)
    audience.add_venue("v2", "The Old Barn", address=None, capacity=None)
    garden = Venue("v1", "Garden Manor", "1 Rose Lane, Bath", 120)
    assert await audience.venue_by_name("Garden Manor") == garden
    assert await audience.venue_by_name("garden manor") == garden
    assert await audience.venue_by_name("GARDEN MANOR") == garden
    assert await audience.venue_by_name("  Garden Manor  ") == garden  # trimmed
    assert await audience.venue_by_name("the old barn") == Venue("v2", "The Old Barn", None, None)
    assert await audience.venue_by_name("Garden") is None
    assert await audience.venue_by_name("Garden Manor Hotel") is None
    audience.add_venue("v1", "Garden Manor", address="2 Rose Lane, Bath", capacity=150)
    assert await audience.venue_by_name("garden manor") == Venue(
        "v1", "Garden Manor", "2 Rose Lane, Bath", 150
    )


async def test_venue_names_match_without_regard_to_case_beyond_ascii(
    audience: WritableAudience,
) -> None:
    """Wedding venues are often named in French, Spanish, Italian ... "case-insensitive"
    (`VenueDirectory.venue_by_name`) holds for their accented letters too."""
    audience.add_venue("v1", "Château de Vaux", address=None, capacity=200)
    chateau = Venue("v1", "Château de Vaux", None, 200)
    assert await audience.venue_by_name("château de vaux") == chateau  # ASCII folding suffices
    assert await audience.venue_by_name("CHÂTEAU DE VAUX") == chateau


async def test_audience_answers_agree_with_the_directory(audience: WritableAudience) -> None:
    """`Audience` extends `Directory`: the same facts through both kinds of question."""
    audience.add_wedding("w1", "c1")
    audience.connect("s2", "c1")
    audience.connect("s1", "c1")
    assert await audience.wedding_suppliers("w1") == frozenset(
        await audience.connected_suppliers("c1")
    )
    assert await audience.couple_weddings("c1") == ("w1",)
    assert await audience.wedding_couple("w1") == "c1"


@pytest.mark.postgres
async def test_postgres_ids_that_are_not_uuids_name_nothing(postgres_url: str) -> None:
    """PostgreSQL's ids are uuids: any other id answers None/False/empty, never an error."""
    async with pg_directory(postgres_url) as writer:
        writer.add_user("emma", UserType.COUPLE, couple_id="c1")  # some rows to miss
        writer.connect("s1", "c1")
        directory = writer.reader
        for odd in ("emma", "", "not-a-uuid", "'; DROP TABLE couples; --"):
            assert await directory.user_profile(odd) is None
            assert not await directory.is_team_member(odd, odd)
            assert not await directory.is_connected(odd, odd)
            assert await directory.wedding_couple(odd) is None
            assert await directory.wedding_suppliers(odd) == frozenset()
            assert await directory.form(odd) is None
            assert await directory.journey(odd) is None
            assert await directory.user_name(odd) is None
            assert await directory.couple_name(odd) is None
            assert await directory.supplier_name(odd) is None
            assert await directory.couple_weddings(odd) == ()
            assert await directory.connected_suppliers(odd) == ()
            assert await directory.supplier_users(odd) == ()
            assert await directory.couple_users(odd) == ()
            assert await directory.supplier_couples(odd) == ()
        assert await writer.couple_users("c1") == ("emma",)  # the rows are there
