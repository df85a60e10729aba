"""The `Directory` contract: MemoryDirectory, SqliteDirectory and PostgresDirectory answer the
same facts alike.

Each is filled with the same calls (the `MemoryDirectory` write API, which `SqliteDirectory`
mirrors, and which `tests.support.pg_directory.PgDirectory` implements in SQL over a migrated
PostgreSQL database, mapping the suite's short ids to uuids and back), then asked the questions
`CatalogPolicy` asks. To add an implementation, add a factory to `FACTORIES`.

PostgreSQL: one migrated database for the module, its tables emptied before each test; down, the
``postgres`` cases skip outside CI and fail in CI (`tests.support.cdc.admin_connection`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.cdc import migrated_database
from tests.support.pg_directory import postgres_directory
from wedsync_realtime.store.sqlite import SCHEMA_STEPS, SqliteDatabase, database_path
from wedsync_realtime.wedding.directory import (
    Directory,
    FormFacts,
    JourneyFacts,
    MemoryDirectory,
    UserProfile,
    UserType,
)
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory


class WritableDirectory(Directory, Protocol):
    """The write calls both implementations share."""

    def add_user(
        self,
        user_id: str,
        user_type: UserType | str,
        *,
        supplier_id: str | None = None,
        couple_id: str | None = None,
    ) -> UserProfile: ...

    def add_team_member(self, supplier_id: str, user_id: str) -> None: ...

    def remove_team_member(self, supplier_id: str, user_id: str) -> None: ...

    def connect(self, supplier_id: str, couple_id: str) -> None: ...

    def disconnect(self, supplier_id: str, couple_id: str) -> None: ...

    def add_wedding(self, wedding_id: str, couple_id: str) -> None: ...

    def add_form(self, form_id: str, supplier_id: str, sent_to: tuple[str, ...] = ()) -> None: ...

    def send_form(self, form_id: str, couple_id: str) -> None: ...

    def add_journey(self, journey_id: str, supplier_id: str, couple_id: str) -> None: ...


@asynccontextmanager
async def _memory(request: pytest.FixtureRequest) -> AsyncIterator[WritableDirectory]:
    yield MemoryDirectory()


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[WritableDirectory]:
    database = SqliteDatabase.open(":memory:")
    try:
        yield SqliteDirectory(database)
    finally:
        database.close()


FACTORIES: dict[
    str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[WritableDirectory]]
] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": postgres_directory,
}
#: Marks per factory: the PostgreSQL cases need the server (and are selected by ``-m postgres``).
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One migrated database for the module (requested by the postgres factory only)."""
    with migrated_database("wedsync_contract_directory") as url:
        yield url


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)]
)
async def directory(request: pytest.FixtureRequest) -> AsyncIterator[WritableDirectory]:
    async with FACTORIES[request.param](request) as implementation:
        yield implementation


async def test_unknown_ids_answer_none_false_or_empty(directory: WritableDirectory) -> None:
    assert await directory.user_profile("nobody") is None
    assert not await directory.is_team_member("nobody", "s1")
    assert not await directory.is_connected("s1", "c1")
    assert await directory.wedding_couple("w1") is None
    assert await directory.wedding_suppliers("w1") == frozenset()
    assert await directory.form("f1") is None
    assert await directory.journey("j1") is None


async def test_profiles_keep_type_and_affiliation(directory: WritableDirectory) -> None:
    directory.add_user("emma", UserType.COUPLE, couple_id="c1")
    directory.add_user("sarah", "supplier", supplier_id="s1")
    directory.add_user("ops", UserType.ADMIN)
    assert await directory.user_profile("emma") == UserProfile("emma", UserType.COUPLE, None, "c1")
    assert await directory.user_profile("sarah") == UserProfile(
        "sarah", UserType.SUPPLIER, "s1", None
    )
    assert await directory.user_profile("ops") == UserProfile("ops", UserType.ADMIN)


async def test_a_profile_can_be_replaced(directory: WritableDirectory) -> None:
    directory.add_user("lisa", UserType.SUPPLIER, supplier_id="s1")
    directory.add_user("lisa", UserType.SUPPLIER, supplier_id="s2")
    profile = await directory.user_profile("lisa")
    assert profile is not None and profile.supplier_id == "s2"


@pytest.mark.parametrize(
    ("user_type", "kwargs"),
    [(UserType.SUPPLIER, {}), (UserType.COUPLE, {}), (UserType.COUPLE, {"supplier_id": "s1"})],
)
def test_a_supplier_or_couple_user_needs_its_affiliation(
    directory: WritableDirectory, user_type: UserType, kwargs: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="needs a"):
        directory.add_user("x", user_type, **kwargs)


def test_an_unknown_user_type_is_refused(directory: WritableDirectory) -> None:
    with pytest.raises(ValueError):
        directory.add_user("x", "vendor", supplier_id="s1")


async def test_team_membership_comes_and_goes(directory: WritableDirectory) -> None:
    directory.add_team_member("s1", "tom")
    assert await directory.is_team_member("tom", "s1")
    assert not await directory.is_team_member("tom", "s2")
    directory.remove_team_member("s1", "tom")
    assert not await directory.is_team_member("tom", "s1")
    directory.remove_team_member("s1", "never-there")  # harmless


async def test_connections_are_per_pair_and_can_end(directory: WritableDirectory) -> None:
    directory.connect("s1", "c1")
    assert await directory.is_connected("s1", "c1")
    assert not await directory.is_connected("s1", "c2")
    assert not await directory.is_connected("s2", "c1")
    directory.connect("s1", "c1")  # idempotent
    directory.disconnect("s1", "c1")
    assert not await directory.is_connected("s1", "c1")
    directory.connect("s1", "c1")  # reconnecting works
    assert await directory.is_connected("s1", "c1")


async def test_a_weddings_suppliers_are_the_couples_active_connections(
    directory: WritableDirectory,
) -> None:
    directory.add_wedding("w1", "c1")
    directory.add_wedding("w2", "c2")
    directory.connect("s1", "c1")
    directory.connect("s2", "c1")
    directory.connect("s3", "c2")
    assert await directory.wedding_couple("w1") == "c1"
    assert await directory.wedding_suppliers("w1") == frozenset({"s1", "s2"})
    directory.disconnect("s2", "c1")
    assert await directory.wedding_suppliers("w1") == frozenset({"s1"})
    assert await directory.wedding_suppliers("w2") == frozenset({"s3"})


async def test_forms_know_their_supplier_and_recipients(directory: WritableDirectory) -> None:
    directory.add_form("f1", "s1", sent_to=("c1",))
    assert await directory.form("f1") == FormFacts("f1", "s1", frozenset({"c1"}))
    directory.send_form("f1", "c2")
    directory.send_form("f1", "c2")  # idempotent
    assert await directory.form("f1") == FormFacts("f1", "s1", frozenset({"c1", "c2"}))
    directory.add_form("f2", "s2")
    assert await directory.form("f2") == FormFacts("f2", "s2", frozenset())


def test_sending_an_unknown_form_fails(directory: WritableDirectory) -> None:
    with pytest.raises(KeyError):
        directory.send_form("nope", "c1")


async def test_journeys_know_their_supplier_and_client(directory: WritableDirectory) -> None:
    directory.add_journey("j1", "s1", "c1")
    assert await directory.journey("j1") == JourneyFacts("j1", "s1", "c1")
    directory.add_journey("j1", "s1", "c2")  # replaced
    assert await directory.journey("j1") == JourneyFacts("j1", "s1", "c2")


async def test_the_sqlite_directory_survives_a_reopen(tmp_path: Path) -> None:
    """Facts are in the file, and opening it again applies no schema step twice."""
    path = database_path(tmp_path / "data")
    with SqliteDatabase.open(path) as first:
        SqliteDirectory(first).connect("s1", "c1")
        assert first.schema_version == len(SCHEMA_STEPS)
    with SqliteDatabase.open(path) as again:
        assert again.apply_schema() == []
        assert await SqliteDirectory(again).is_connected("s1", "c1")
