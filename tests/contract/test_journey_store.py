"""The contract of `JourneyStore`: `SqliteJourneyStore` (embedded default) and
`PostgresJourneyStore` (production mode) alike.

A journey is defined and started for a couple the way each backend's writer does it: on SQLite
with `SqliteJourneyStore.add_journey`/`start_journey`, on PostgreSQL with the platform's SQL
(`PgJourneys`, the same rows: the first step available, the others locked). Then both stores are
asked the same questions. Times are `timestamps.iso_millis`'s form, which both give back as given
(see `test_domain_stores.py`); ids are uuids where PostgreSQL's columns are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.support.cdc import migrated_database
from tests.support.pg_directory import PgDirectory, open_domain_pool, truncate_domain
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.journeys import (
    JourneyInstance,
    JourneyStep,
    JourneyStore,
    StepKind,
    StepStatus,
)
from wedsync_realtime.wedding.postgres_stores import PostgresJourneyStore
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import SqliteJourneyStore

SUPPLIER = "5ee00000-0000-4000-8000-000000000001"
C1 = "c0c00000-0000-4000-8000-000000000001"
C2 = "c0c00000-0000-4000-8000-000000000002"
EMMA = "e0e00000-0000-4000-8000-000000000001"
MIKE = "e0e00000-0000-4000-8000-000000000002"
BOOKING = "10100000-0000-4000-8000-000000000001"
RUN_1 = "1a100000-0000-4000-8000-000000000001"
RUN_2 = "1a100000-0000-4000-8000-000000000002"
MISSING = "1a100000-0000-4000-8000-0000000000ff"
#: In journey order; the step ids sort otherwise, so order is the position, not the id.
STEPS: tuple[tuple[str, str, StepKind], ...] = (
    ("walkthrough", "Venue Walkthrough", StepKind.MEETING),
    ("contract", "Contract Review", StepKind.TASK),
    ("details", "Final Details", StepKind.EMAIL),
)


def at(minute: int) -> str:
    return f"2026-01-01T10:{minute:02d}:00.000Z"


Define = Callable[[str, str, str, Sequence[tuple[str, str, StepKind]]], None]
Start = Callable[[str, str, str], None]


@dataclass
class Backend:
    name: str
    journeys: JourneyStore
    #: (journey_id, supplier_id, name, steps): define a journey, as its writer does.
    define: Define
    #: (instance_id, journey_id, couple_id): start it for a couple, as its writer does.
    start: Start


class PgJourneys:
    """The platform's writes of journeys on PostgreSQL: `SqliteJourneyStore`'s writes in SQL."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def define(
        self, journey_id: str, supplier_id: str, name: str, steps: Sequence[tuple[str, str, Any]]
    ) -> None:
        with self._conn.transaction():
            self._conn.execute(
                "INSERT INTO journeys (id, supplier_id, name) VALUES (%s, %s, %s)",
                (journey_id, supplier_id, name),
            )
            # Inserted last step first: reads must order by position.
            for position, (step_id, step_name, kind) in reversed(list(enumerate(steps))):
                self._conn.execute(
                    "INSERT INTO journey_steps (journey_id, step_id, position, name, kind)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (journey_id, step_id, position, step_name, StepKind(kind).value),
                )

    def start(self, instance_id: str, journey_id: str, couple_id: str) -> None:
        with self._conn.transaction():
            self._conn.execute(
                "INSERT INTO journey_instances (id, journey_id, supplier_id, couple_id,"
                " journey_name) SELECT %s, id, supplier_id, %s, name FROM journeys WHERE id = %s",
                (instance_id, couple_id, journey_id),
            )
            self._conn.execute(
                "INSERT INTO journey_instance_steps (instance_id, step_id, status)"
                " SELECT %s, step_id, CASE WHEN position = (SELECT min(position)"
                " FROM journey_steps WHERE journey_id = %s) THEN 'available' ELSE 'locked' END"
                " FROM journey_steps WHERE journey_id = %s",
                (instance_id, journey_id, journey_id),
            )


def _seed_names(writer: SqliteDirectory | PgDirectory) -> None:
    writer.add_supplier(SUPPLIER, "Mike's Venue")
    writer.add_couple(C1, "James", "Emma")
    writer.add_couple(C2, "Sam", None)


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    database = SqliteDatabase.open(":memory:")
    try:
        _seed_names(SqliteDirectory(database))
        store = SqliteJourneyStore(database)

        def define(
            journey_id: str, supplier_id: str, name: str, steps: Sequence[tuple[str, str, Any]]
        ) -> None:
            store.add_journey(journey_id, supplier_id, name, steps)

        def start(instance_id: str, journey_id: str, couple_id: str) -> None:
            assert store.start_journey(instance_id, journey_id, couple_id)

        yield Backend("sqlite", store, define, start)
    finally:
        database.close()


@asynccontextmanager
async def _postgres(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    url: str = request.getfixturevalue("postgres_url")
    truncate_domain(url)  # journeys and their steps go with their suppliers (CASCADE)
    async with open_domain_pool(url) as pool:
        writer = PgDirectory(url, pool)
        try:
            _seed_names(writer)
        finally:
            writer.close()
        platform = PgJourneys(url)
        try:
            yield Backend("postgres", PostgresJourneyStore(pool), platform.define, platform.start)
        finally:
            platform.close()


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Backend]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with migrated_database("wedsync_contract_journeys") as url:
        yield url


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with FACTORIES[request.param](request) as implementation:
        implementation.define(BOOKING, SUPPLIER, "Venue Booking", STEPS)
        implementation.start(RUN_1, BOOKING, C1)
        yield implementation


def _statuses(instance: JourneyInstance | None) -> list[str]:
    assert instance is not None
    return [s.status.value for s in instance.steps]


async def _complete(backend: Backend, step_id: str, minute: int, run: str = RUN_1) -> bool:
    return await backend.journeys.complete_journey_step(
        run, step_id, completed_by=EMMA, at=at(minute)
    )


# -- reading ---------------------------------------------------------------------------------------


async def test_a_started_journey_has_its_steps_in_order_the_first_available(
    backend: Backend,
) -> None:
    found = await backend.journeys.journey_instance(RUN_1)
    assert found == JourneyInstance(
        RUN_1,
        "Venue Booking",
        SUPPLIER,
        C1,
        "active",
        (
            JourneyStep(
                "walkthrough", "Venue Walkthrough", 0, StepKind.MEETING, StepStatus.AVAILABLE
            ),
            JourneyStep("contract", "Contract Review", 1, StepKind.TASK, StepStatus.LOCKED),
            JourneyStep("details", "Final Details", 2, StepKind.EMAIL, StepStatus.LOCKED),
        ),
    )
    assert found.progress_percentage == 0


async def test_an_unknown_instance_is_none(backend: Backend) -> None:
    assert await backend.journeys.journey_instance(MISSING) is None
    assert await backend.journeys.journey_instance("not-a-uuid") is None
    assert await backend.journeys.journey_instance(BOOKING) is None  # a journey, not a run


# -- completing steps ------------------------------------------------------------------------------


async def test_completing_the_available_step_opens_the_next_one(backend: Backend) -> None:
    assert await _complete(backend, "walkthrough", 5)
    found = await backend.journeys.journey_instance(RUN_1)
    assert found is not None
    assert found.steps[0] == JourneyStep(
        "walkthrough",
        "Venue Walkthrough",
        0,
        StepKind.MEETING,
        StepStatus.COMPLETED,
        completed_at=at(5),
        completed_by=EMMA,
    )
    assert _statuses(found) == ["completed", "available", "locked"]
    assert found.status == "active"
    assert found.progress_percentage == 33
    assert [s.step_id for s in found.next_steps] == ["contract"]


async def test_a_locked_or_completed_or_unknown_step_changes_nothing(backend: Backend) -> None:
    before = await backend.journeys.journey_instance(RUN_1)
    assert not await _complete(backend, "contract", 1)  # locked
    assert not await _complete(backend, "no-such-step", 1)
    assert not await _complete(backend, "walkthrough", 1, run=MISSING)
    assert await backend.journeys.journey_instance(RUN_1) == before

    assert await _complete(backend, "walkthrough", 2)
    done = await backend.journeys.journey_instance(RUN_1)
    assert not await backend.journeys.complete_journey_step(
        RUN_1, "walkthrough", completed_by=MIKE, at=at(3)
    )
    assert await backend.journeys.journey_instance(RUN_1) == done  # still Emma's, at minute 2


async def test_the_last_step_completes_the_instance(backend: Backend) -> None:
    for minute, (step_id, _, _) in enumerate(STEPS, start=1):
        assert await _complete(backend, step_id, minute)
    found = await backend.journeys.journey_instance(RUN_1)
    assert found is not None
    assert _statuses(found) == ["completed"] * 3
    assert [s.completed_at for s in found.steps] == [at(1), at(2), at(3)]
    assert found.status == "completed"
    assert found.progress_percentage == 100
    assert found.next_steps == ()


async def test_runs_of_one_journey_are_independent(backend: Backend) -> None:
    backend.start(RUN_2, BOOKING, C2)
    assert await _complete(backend, "walkthrough", 1)
    other = await backend.journeys.journey_instance(RUN_2)
    assert other is not None
    assert (other.couple_id, other.supplier_id, other.journey_name) == (
        C2,
        SUPPLIER,
        "Venue Booking",
    )
    assert _statuses(other) == ["available", "locked", "locked"]
    assert _statuses(await backend.journeys.journey_instance(RUN_1)) == [
        "completed",
        "available",
        "locked",
    ]


async def test_concurrent_completions_of_one_step_one_wins(backend: Backend) -> None:
    outcomes = await asyncio.gather(*(_complete(backend, "walkthrough", m) for m in range(1, 7)))
    assert sorted(outcomes) == [False] * 5 + [True]
    found = await backend.journeys.journey_instance(RUN_1)
    assert _statuses(found) == ["completed", "available", "locked"]
    assert found is not None and found.steps[0].completed_at == at(outcomes.index(True) + 1)


# -- email opened ----------------------------------------------------------------------------------


async def test_only_the_first_opening_of_an_email_is_recorded(backend: Backend) -> None:
    assert await backend.journeys.record_email_opened(RUN_1, "details", at=at(4))
    assert not await backend.journeys.record_email_opened(RUN_1, "details", at=at(9))
    found = await backend.journeys.journey_instance(RUN_1)
    assert found is not None
    assert found.step("details").email_opened_at == at(4)
    assert found.step("details").status is StepStatus.LOCKED  # opening completes nothing
    assert found.step("walkthrough").email_opened_at is None
    assert not await backend.journeys.record_email_opened(RUN_1, "no-such-step", at=at(4))
    assert not await backend.journeys.record_email_opened(MISSING, "details", at=at(4))
