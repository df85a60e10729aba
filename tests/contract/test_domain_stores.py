"""The contracts of `CoreFieldStore`, `FormStore` and `LastSeenStore`: the SQLite stores
(`sqlite_stores`) and the PostgreSQL stores (`postgres_stores`) alike.

Times: the stores take ISO 8601 text and the services always write `timestamps.iso_millis`'s form
("2026-01-01T00:00:00.000Z"). SQLite keeps the text given, PostgreSQL answers its timestamptz
in that same form, so for that form both give back the very string given and the suite compares
exactly. (`test_notification_store.py` shows the other spellings, where only instants agree.)

Ids are uuids where PostgreSQL's columns are (couples, forms, the writers of a value); the
couples, supplier and forms the stores refer to are written first, on each backend with the same
`SqliteDirectory` calls (`PgDirectory` on PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.support.cdc import migrated_database
from tests.support.pg_directory import PgDirectory, open_domain_pool, truncate_domain
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.core_fields import (
    AppliedChange,
    CoreFieldStore,
    CoreFieldValue,
    FieldWrite,
    VersionConflict,
)
from wedsync_realtime.wedding.errors import NotFound
from wedsync_realtime.wedding.events import JsonValue
from wedsync_realtime.wedding.forms import FormDefinition, FormField, FormResponse, FormStore
from wedsync_realtime.wedding.postgres_stores import (
    PostgresCoreFieldStore,
    PostgresFormStore,
    PostgresLastSeenStore,
)
from wedsync_realtime.wedding.presence import LastSeenStore
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import (
    SqliteCoreFieldStore,
    SqliteFormStore,
    SqliteLastSeenStore,
)

SUPPLIER = "5ee00000-0000-4000-8000-000000000001"
C1 = "c0c00000-0000-4000-8000-000000000001"
C2 = "c0c00000-0000-4000-8000-000000000002"
EMMA = "e0e00000-0000-4000-8000-000000000001"
JAMES = "e0e00000-0000-4000-8000-000000000002"
MENU = "f0f00000-0000-4000-8000-000000000001"
EMPTY_FORM = "f0f00000-0000-4000-8000-000000000002"
MISSING_FORM = "f0f00000-0000-4000-8000-0000000000ff"
MENU_FIELDS = (("starter", "Starter", True), ("diet", "Dietary needs", False))


def at(minute: int) -> str:
    return f"2026-01-01T10:{minute:02d}:00.000Z"


@dataclass
class Backend:
    name: str
    core_fields: CoreFieldStore
    forms: FormStore
    last_seen: LastSeenStore


def _seed(writer: SqliteDirectory | PgDirectory) -> None:
    writer.add_supplier(SUPPLIER, "Lisa's Catering")
    writer.add_couple(C1, "James", "Emma")
    writer.add_couple(C2, "Sam", None)
    writer.add_form(MENU, SUPPLIER, (C1,), title="Menu choices", fields=MENU_FIELDS)
    writer.add_form(EMPTY_FORM, SUPPLIER, title="Nothing to ask")


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    database = SqliteDatabase.open(":memory:")
    try:
        _seed(SqliteDirectory(database))
        yield Backend(
            "sqlite",
            SqliteCoreFieldStore(database),
            SqliteFormStore(database),
            SqliteLastSeenStore(database),
        )
    finally:
        database.close()


@asynccontextmanager
async def _postgres(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    url: str = request.getfixturevalue("postgres_url")
    truncate_domain(url)
    async with open_domain_pool(url) as pool:
        writer = PgDirectory(url, pool)
        try:
            _seed(writer)
        finally:
            writer.close()
        yield Backend(
            "postgres",
            PostgresCoreFieldStore(pool),
            PostgresFormStore(pool),
            PostgresLastSeenStore(pool),
        )


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Backend]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with migrated_database("wedsync_contract_stores") as url:
        yield url


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with FACTORIES[request.param](request) as implementation:
        yield implementation


# -- CoreFieldStore ------------------------------------------------------------------------------


async def write(
    backend: Backend, *writes: tuple[str, JsonValue, int | None], by: str = EMMA, minute: int = 1
) -> list[AppliedChange]:
    return await backend.core_fields.write_core_fields(
        C1, [FieldWrite(*w) for w in writes], updated_by=by, at=at(minute)
    )


async def test_a_couple_with_nothing_written_has_no_fields(backend: Backend) -> None:
    assert await backend.core_fields.core_field_values(C1) == {}


async def test_the_first_write_makes_version_1(backend: Backend) -> None:
    applied = await write(backend, ("venue_name", "Garden Manor", 0))
    venue = CoreFieldValue(C1, "venue_name", "Garden Manor", 1, EMMA, at(1))
    assert applied == [AppliedChange(None, venue)]
    assert await backend.core_fields.core_field_values(C1) == {"venue_name": venue}
    assert await backend.core_fields.core_field_values(C2) == {}


async def test_each_change_is_one_version_more_and_names_the_old_value(backend: Backend) -> None:
    await write(backend, ("venue_name", "Garden Manor", 0))
    applied = await write(backend, ("venue_name", "The Old Barn", 1), by=JAMES, minute=2)
    barn = CoreFieldValue(C1, "venue_name", "The Old Barn", 2, JAMES, at(2))
    assert applied == [AppliedChange("Garden Manor", barn)]
    assert await backend.core_fields.core_field_values(C1) == {"venue_name": barn}


async def test_no_expected_version_is_last_write_wins(backend: Backend) -> None:
    await write(backend, ("guest_count", 100, None))
    await write(backend, ("guest_count", 120, None), minute=2)
    applied = await write(backend, ("guest_count", 150, None), minute=3)
    assert applied == [AppliedChange(120, CoreFieldValue(C1, "guest_count", 150, 3, EMMA, at(3)))]


async def test_a_stale_version_is_a_conflict_naming_the_current_state(backend: Backend) -> None:
    await write(backend, ("venue_name", "Garden Manor", 0))
    with pytest.raises(VersionConflict) as raised:
        await write(backend, ("venue_name", "The Old Barn", 0), by=JAMES, minute=2)
    assert raised.value.current == CoreFieldValue(C1, "venue_name", "Garden Manor", 1, EMMA, at(1))
    assert raised.value.expected_version == 0
    with pytest.raises(VersionConflict) as ahead:
        await write(backend, ("guest_count", 90, 3))  # never set: version 0
    assert ahead.value.current == CoreFieldValue(C1, "guest_count", None, 0)
    assert ahead.value.expected_version == 3


async def test_a_conflict_writes_nothing_of_the_whole_batch(backend: Backend) -> None:
    await write(backend, ("venue_name", "Garden Manor", 0))
    before = await backend.core_fields.core_field_values(C1)
    with pytest.raises(VersionConflict):
        await write(
            backend,
            ("guest_count", 150, 0),  # fine on its own
            ("venue_name", "Garden Manor Hotel", None),  # fine on its own
            ("wedding_date", "2026-06-20", 1),  # stale: never set
            minute=2,
        )
    assert await backend.core_fields.core_field_values(C1) == before


async def test_an_unchanged_value_is_neither_written_nor_returned(backend: Backend) -> None:
    await write(backend, ("venue_name", "Garden Manor", 0), ("guest_count", 150, 0))
    assert await write(backend, ("venue_name", "Garden Manor", 1), minute=2) == []
    assert await write(backend, ("venue_name", "Garden Manor", None), minute=3) == []
    applied = await write(
        backend, ("venue_name", "Garden Manor", 1), ("guest_count", 160, 1), minute=4
    )
    assert applied == [AppliedChange(150, CoreFieldValue(C1, "guest_count", 160, 2, EMMA, at(4)))]
    values = await backend.core_fields.core_field_values(C1)
    assert values["venue_name"] == CoreFieldValue(C1, "venue_name", "Garden Manor", 1, EMMA, at(1))


async def test_a_batch_applies_in_order(backend: Backend) -> None:
    applied = await write(
        backend, ("guest_count", 100, 0), ("contact_name", "Emma", 0), ("guest_count", 120, 1)
    )
    assert [(c.field_name, c.old_value, c.new.value, c.new.version) for c in applied] == [
        ("guest_count", None, 100, 1),
        ("contact_name", None, "Emma", 1),
        ("guest_count", 100, 120, 2),
    ]


async def test_values_keep_their_json_type_and_none_clears(backend: Backend) -> None:
    timeline: JsonValue = [{"time": "14:00", "item": "Ceremony", "done": False}, {"n": 1.5}]
    values: dict[str, JsonValue] = {
        "guest_count": 150,
        "venue_capacity": 0,
        "timeline": timeline,
        "contact_name": "Zoë & Łukasz",
        "venue_address": {"line1": "1 Rose Lane", "city": "Bath"},
        "ceremony_time": True,
    }
    await write(backend, *((name, value, 0) for name, value in values.items()))
    stored = await backend.core_fields.core_field_values(C1)
    assert {name: v.value for name, v in stored.items()} == values
    assert type(stored["guest_count"].value) is int
    assert type(stored["ceremony_time"].value) is bool

    cleared = await write(backend, ("guest_count", None, 1), minute=2)
    assert cleared == [AppliedChange(150, CoreFieldValue(C1, "guest_count", None, 2, EMMA, at(2)))]
    assert (await backend.core_fields.core_field_values(C1))["guest_count"].value is None
    assert await write(backend, ("guest_count", None, 2), minute=3) == []  # still None
    # A field first written as None exists, at version 1.
    first = await write(backend, ("contact_phone", None, 0), minute=4)
    assert first == [AppliedChange(None, CoreFieldValue(C1, "contact_phone", None, 1, EMMA, at(4)))]


async def test_versions_are_per_couple(backend: Backend) -> None:
    await write(backend, ("venue_name", "Garden Manor", 0))
    applied = await backend.core_fields.write_core_fields(
        C2, [FieldWrite("venue_name", "The Old Barn", 0)], updated_by=JAMES, at=at(2)
    )
    assert applied == [
        AppliedChange(None, CoreFieldValue(C2, "venue_name", "The Old Barn", 1, JAMES, at(2)))
    ]
    assert (await backend.core_fields.core_field_values(C1))["venue_name"].version == 1


# -- FormStore -----------------------------------------------------------------------------------


async def test_form_definitions_keep_their_fields_in_order(backend: Backend) -> None:
    assert await backend.forms.form_definition(MENU) == FormDefinition(
        MENU,
        SUPPLIER,
        "Menu choices",
        (FormField("starter", "Starter", True), FormField("diet", "Dietary needs", False)),
    )
    assert await backend.forms.form_definition(EMPTY_FORM) == FormDefinition(
        EMPTY_FORM, SUPPLIER, "Nothing to ask", ()
    )
    assert await backend.forms.form_definition(MISSING_FORM) is None


async def test_no_response_until_the_first_answer(backend: Backend) -> None:
    assert await backend.forms.form_response(MENU, C1) is None
    assert await backend.forms.form_response(MISSING_FORM, C1) is None


async def test_the_first_answer_makes_a_draft(backend: Backend) -> None:
    saved = await backend.forms.save_form_answer(
        MENU, C1, "starter", "Soup", updated_by=EMMA, at=at(1)
    )
    draft = FormResponse(MENU, C1, {"starter": "Soup"}, "draft", None, at(1), EMMA)
    assert saved == draft
    assert await backend.forms.form_response(MENU, C1) == draft
    assert await backend.forms.form_response(MENU, C2) is None


async def test_answers_accumulate_and_the_last_writer_is_kept(backend: Backend) -> None:
    await backend.forms.save_form_answer(MENU, C1, "starter", "Soup", updated_by=EMMA, at=at(1))
    await backend.forms.save_form_answer(
        MENU, C1, "diet", ["vegan", "no nuts"], updated_by=JAMES, at=at(2)
    )
    saved = await backend.forms.save_form_answer(
        MENU, C1, "starter", "Salad", updated_by=JAMES, at=at(3)
    )
    expected = FormResponse(
        MENU, C1, {"starter": "Salad", "diet": ["vegan", "no nuts"]}, "draft", None, at(3), JAMES
    )
    assert saved == expected
    assert await backend.forms.form_response(MENU, C1) == expected


async def test_a_json_null_is_kept_as_an_answer(backend: Backend) -> None:
    await backend.forms.save_form_answer(MENU, C1, "starter", "Soup", updated_by=EMMA, at=at(1))
    saved = await backend.forms.save_form_answer(
        MENU, C1, "starter", None, updated_by=EMMA, at=at(2)
    )
    assert saved.data == {"starter": None}  # the key stays, holding null
    first = await backend.forms.save_form_answer(MENU, C2, "diet", None, updated_by=EMMA, at=at(3))
    assert first.data == {"diet": None}
    assert await backend.forms.form_response(MENU, C2) == first


async def test_answers_keep_their_json_type(backend: Backend) -> None:
    answers: dict[str, JsonValue] = {
        "n": 3,
        "x": 2.5,
        "yes": True,
        "no": False,
        "obj": {"a": [1, {"b": None}]},
        "text": "Zoë",
        "empty": "",
    }
    for minute, (field_id, value) in enumerate(answers.items(), start=1):
        await backend.forms.save_form_answer(
            MENU, C1, field_id, value, updated_by=EMMA, at=at(minute)
        )
    found = await backend.forms.form_response(MENU, C1)
    assert found is not None and found.data == answers
    assert type(found.data["n"]) is int and type(found.data["yes"]) is bool


async def test_submitting_keeps_the_answers(backend: Backend) -> None:
    await backend.forms.save_form_answer(MENU, C1, "starter", "Soup", updated_by=EMMA, at=at(1))
    submitted = await backend.forms.submit_form_response(MENU, C1, submitted_by=JAMES, at=at(5))
    expected = FormResponse(MENU, C1, {"starter": "Soup"}, "submitted", at(5), at(5), JAMES)
    assert submitted == expected
    assert await backend.forms.form_response(MENU, C1) == expected


async def test_submitting_without_answers_makes_an_empty_submitted_response(
    backend: Backend,
) -> None:
    submitted = await backend.forms.submit_form_response(
        EMPTY_FORM, C2, submitted_by=EMMA, at=at(2)
    )
    assert submitted == FormResponse(EMPTY_FORM, C2, {}, "submitted", at(2), at(2), EMMA)
    assert await backend.forms.form_response(EMPTY_FORM, C1) is None


async def test_an_answer_to_an_unknown_form_is_refused_as_not_found(backend: Backend) -> None:
    """The store names the missing form (`NotFound`, an API 404), as PostgreSQL's does; the
    services check the form first, so only a form deleted meanwhile gets here."""
    with pytest.raises(NotFound):
        await backend.forms.save_form_answer(
            MISSING_FORM, C1, "starter", "Soup", updated_by=EMMA, at=at(1)
        )
    with pytest.raises(NotFound):
        await backend.forms.submit_form_response(MISSING_FORM, C1, submitted_by=EMMA, at=at(1))
    assert await backend.forms.form_response(MISSING_FORM, C1) is None


# -- LastSeenStore -------------------------------------------------------------------------------


async def test_nobody_seen_is_absent(backend: Backend) -> None:
    assert await backend.last_seen.last_seen([]) == {}
    assert await backend.last_seen.last_seen([EMMA, "lisa"]) == {}
    assert await backend.last_seen.forget_last_seen_before(at(59)) == 0


async def test_the_time_and_status_seen_are_kept_per_user(backend: Backend) -> None:
    await backend.last_seen.record_last_seen(EMMA, at=at(1), status="online")
    await backend.last_seen.record_last_seen("lisa", at=at(2), status=None)
    await backend.last_seen.record_last_seen("tom", at=at(3), status="busy")
    assert await backend.last_seen.last_seen([EMMA, "lisa", "nobody"]) == {
        EMMA: (at(1), "online"),
        "lisa": (at(2), None),
    }


async def test_a_later_time_replaces_an_earlier_one_never_the_reverse(backend: Backend) -> None:
    await backend.last_seen.record_last_seen("lisa", at=at(5), status="online")
    await backend.last_seen.record_last_seen("lisa", at=at(9), status="away")
    assert await backend.last_seen.last_seen(["lisa"]) == {"lisa": (at(9), "away")}
    await backend.last_seen.record_last_seen("lisa", at=at(7), status="online")  # late report
    assert await backend.last_seen.last_seen(["lisa"]) == {"lisa": (at(9), "away")}
    await backend.last_seen.record_last_seen("lisa", at=at(9), status="idle")  # same moment
    assert await backend.last_seen.last_seen(["lisa"]) == {"lisa": (at(9), "idle")}


async def test_forgetting_drops_only_times_before_the_cutoff(backend: Backend) -> None:
    for minute, user in ((1, "a"), (2, "b"), (3, "c"), (4, "d")):
        await backend.last_seen.record_last_seen(user, at=at(minute), status="online")
    assert await backend.last_seen.forget_last_seen_before(at(3)) == 2
    assert set(await backend.last_seen.last_seen(["a", "b", "c", "d"])) == {"c", "d"}
    assert await backend.last_seen.forget_last_seen_before(at(3)) == 0  # c is at the cutoff
    assert await backend.last_seen.forget_last_seen_before(at(59)) == 2
    assert await backend.last_seen.last_seen(["a", "b", "c", "d"]) == {}


# -- concurrent writers ----------------------------------------------------------------------------


async def test_concurrent_writers_of_one_version_one_wins(backend: Backend) -> None:
    """Writers racing from the same version: one change is applied, every other is a conflict."""
    await write(backend, ("guest_count", 100, 0))
    outcomes = await asyncio.gather(
        *(write(backend, ("guest_count", 101 + i, 1), minute=2 + i) for i in range(6)),
        return_exceptions=True,
    )
    applied = [o for o in outcomes if isinstance(o, list)]
    assert len(applied) == 1, outcomes
    assert all(isinstance(o, VersionConflict) for o in outcomes if o not in applied)
    winner = applied[0][0].new
    assert winner.version == 2
    assert (await backend.core_fields.core_field_values(C1))["guest_count"] == winner


@pytest.mark.postgres
async def test_postgres_a_first_write_racing_another_is_a_conflict(postgres_url: str) -> None:
    """Two first writes of one field (both based on version 0), the other committing while
    this one runs: exactly one may win. Made deterministic by holding the other writer's
    uncommitted row until the store's write waits on it."""
    truncate_domain(postgres_url)
    async with open_domain_pool(postgres_url) as pool:
        writer = PgDirectory(postgres_url, pool)
        try:
            _seed(writer)
        finally:
            writer.close()
        store = PostgresCoreFieldStore(pool)
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            async with other.transaction():
                await other.execute(
                    "INSERT INTO public.core_field_values"
                    " (couple_id, field_name, value, version, updated_by, updated_at)"
                    " VALUES (%s, 'guest_count', '100', 1, %s, %s::timestamptz)",
                    (C1, JAMES, at(1)),
                )
                racing = asyncio.create_task(
                    store.write_core_fields(
                        C1, [FieldWrite("guest_count", 150, 0)], updated_by=EMMA, at=at(2)
                    )
                )
                await _until_a_session_waits_on_a_lock(other, racing)
            # The other writer committed version 1 (value 100); this write was based on 0.
            with pytest.raises(VersionConflict) as raised:
                await asyncio.wait_for(racing, 10)
        assert raised.value.current == CoreFieldValue(C1, "guest_count", 100, 1, JAMES, at(1))
        assert (await store.core_field_values(C1))["guest_count"] == raised.value.current


async def _until_a_session_waits_on_a_lock(
    conn: psycopg.AsyncConnection[Any], task: asyncio.Task[Any]
) -> None:
    for _ in range(500):
        if task.done():
            return  # it did not wait: the assertions after say what it did
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = await cursor.fetchone()
        if row is not None and row[0] > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the store's write never reached the other writer's row")
