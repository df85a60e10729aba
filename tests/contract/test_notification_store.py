"""The `NotificationStore` contract: SqliteNotificationStore and PostgresNotificationStore alike.

Times. The stores take ISO 8601 text. The services always write the one form of
`timestamps.iso_millis` ("2026-01-01T00:00:00.000Z"); SQLite keeps the text it is given and
PostgreSQL gives its timestamptz back through `iso_millis`, so for that form both answer the very
string given, and the suite compares exactly. Only `test_times_in_another_iso_form_*` feeds other
spellings, and compares instants (see there).

Ids are uuids: PostgreSQL's notification ids and recipients are (a recipient is a
``user_profiles`` row, so each backend is given the same two users first).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace

import pytest

from tests.support.cdc import migrated_database
from tests.support.pg_directory import PgDirectory, open_domain_pool, truncate_domain
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.timestamps import iso_millis
from wedsync_realtime.wedding.directory import UserType
from wedsync_realtime.wedding.notifications import Notification, NotificationStore, Priority
from wedsync_realtime.wedding.postgres_stores import PostgresNotificationStore
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import SqliteNotificationStore

LISA = "6f1c1a52-0000-4000-8000-00000000000a"
TOM = "6f1c1a52-0000-4000-8000-00000000000b"


def nid(n: int) -> str:
    """Notification id number `n` (uuid text; text order is number order)."""
    return f"0b5e0000-0000-4000-8000-{n:012d}"


def at(minute: int) -> str:
    return f"2026-01-01T10:{minute:02d}:00.000Z"


def note(
    n: int,
    *,
    user: str = LISA,
    type: str = "mention",
    minute: int | None = None,
    read_at: str | None = None,
    dismissed_at: str | None = None,
) -> Notification:
    return Notification(
        notification_id=nid(n),
        user_id=user,
        type=type,
        title=f"Title {n}",
        message=f"Message {n}",
        action_url=f"/things/{n}",
        priority=Priority.MEDIUM,
        created_at=at(n if minute is None else minute),
        read_at=read_at,
        dismissed_at=dismissed_at,
    )


@dataclass
class Backend:
    name: str
    store: NotificationStore

    async def insert(self, *notifications: Notification) -> None:
        for n in notifications:
            assert await self.store.insert_notification(n)

    async def listed(
        self,
        user: str = LISA,
        *,
        type: str | None = None,
        unread_only: bool = False,
        limit: int = 50,
    ) -> list[str]:
        found = await self.store.list_notifications(
            user, type=type, unread_only=unread_only, limit=limit
        )
        return [n.notification_id for n in found]


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    database = SqliteDatabase.open(":memory:")
    try:
        users = SqliteDirectory(database)
        users.add_user(LISA, UserType.ADMIN)
        users.add_user(TOM, UserType.ADMIN)
        yield Backend("sqlite", SqliteNotificationStore(database))
    finally:
        database.close()


@asynccontextmanager
async def _postgres(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    url: str = request.getfixturevalue("postgres_url")
    truncate_domain(url)
    async with open_domain_pool(url) as pool:
        users = PgDirectory(url, pool)
        try:
            users.add_user(LISA, UserType.ADMIN)
            users.add_user(TOM, UserType.ADMIN)
        finally:
            users.close()
        yield Backend("postgres", PostgresNotificationStore(pool))


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Backend]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with migrated_database("wedsync_contract_notifications") as url:
        yield url


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with FACTORIES[request.param](request) as implementation:
        yield implementation


async def test_a_user_with_nothing_has_nothing(backend: Backend) -> None:
    assert await backend.listed() == []
    assert await backend.store.unread_count(LISA) == 0
    assert await backend.store.dismiss_all(LISA, at(1)) == []
    assert await backend.store.notification(LISA, nid(1)) is None


async def test_every_field_comes_back_as_stored(backend: Backend) -> None:
    full = Notification(
        notification_id=nid(1),
        user_id=LISA,
        type="core_field_change",
        title="James & Emma: Venue changed",
        message="Emma changed the venue to Garden Manor — ça va",
        action_url="/clients/c1/core-fields",
        priority=Priority.URGENT,
        created_at=at(1),
    )
    bare = Notification(nid(2), LISA, "announcement", "Hello", "", None, Priority.LOW, at(2))
    done = replace(note(3), priority=Priority.HIGH, read_at=at(4), dismissed_at=at(5))
    await backend.insert(full, bare, done)
    assert await backend.store.notification(LISA, nid(1)) == full
    assert await backend.store.notification(LISA, nid(2)) == bare
    assert await backend.store.notification(LISA, nid(3)) == done


async def test_a_second_insert_of_the_same_id_returns_false_and_changes_nothing(
    backend: Backend,
) -> None:
    first = note(1)
    assert await backend.store.insert_notification(first)
    again = replace(first, user_id=TOM, title="Other", read_at=at(9), created_at=at(9))
    assert not await backend.store.insert_notification(again)
    assert not await backend.store.insert_notification(first)
    assert await backend.store.notification(LISA, nid(1)) == first
    assert await backend.store.notification(TOM, nid(1)) is None
    assert await backend.listed(LISA) == [nid(1)]
    assert await backend.listed(TOM) == []
    assert await backend.store.unread_count(LISA) == 1


async def test_a_notification_is_found_only_for_its_owner(backend: Backend) -> None:
    await backend.insert(note(1), note(2, user=TOM))
    assert await backend.store.notification(LISA, nid(1)) == note(1)
    assert await backend.store.notification(TOM, nid(1)) is None
    assert await backend.store.notification(LISA, nid(2)) is None
    assert await backend.store.notification(TOM, nid(2)) == note(2, user=TOM)
    assert await backend.store.notification(LISA, nid(3)) is None  # no such id


async def test_the_list_is_the_users_newest_first(backend: Backend) -> None:
    await backend.insert(note(2), note(5), note(1), note(4, user=TOM), note(3))
    assert await backend.listed(LISA) == [nid(5), nid(3), nid(2), nid(1)]
    assert await backend.listed(TOM) == [nid(4)]
    listed = await backend.store.list_notifications(LISA, type=None, unread_only=False, limit=1)
    assert listed == [note(5)]  # whole notifications, not just ids


async def test_the_list_filters_by_type_and_unread_and_is_limited(backend: Backend) -> None:
    await backend.insert(
        note(1, type="mention"),
        note(2, type="task_due"),
        note(3, type="mention", read_at=at(30)),
        note(4, type="mention"),
        note(5, type="task_due", read_at=at(31)),
    )
    assert await backend.listed(type="mention") == [nid(4), nid(3), nid(1)]
    assert await backend.listed(type="task_due") == [nid(5), nid(2)]
    assert await backend.listed(type="invitation") == []
    assert await backend.listed(unread_only=True) == [nid(4), nid(2), nid(1)]
    assert await backend.listed(type="mention", unread_only=True) == [nid(4), nid(1)]
    assert await backend.listed(limit=2) == [nid(5), nid(4)]
    assert await backend.listed(type="mention", unread_only=True, limit=1) == [nid(4)]
    assert await backend.listed(limit=0) == []


async def test_unread_count_counts_the_users_unread_undismissed(backend: Backend) -> None:
    await backend.insert(
        note(1),
        note(2, read_at=at(20)),
        note(3, dismissed_at=at(21)),
        note(4),
        note(5, user=TOM),
    )
    assert await backend.store.unread_count(LISA) == 2
    assert await backend.store.unread_count(TOM) == 1


async def test_read_and_unread_again(backend: Backend) -> None:
    await backend.insert(note(1), note(2), note(3, user=TOM))
    await backend.store.set_read_at(LISA, nid(1), at(30))
    found = await backend.store.notification(LISA, nid(1))
    assert found is not None and found.read_at == at(30) and found.read
    assert await backend.store.unread_count(LISA) == 1
    assert await backend.listed(unread_only=True) == [nid(2)]
    assert await backend.listed() == [nid(2), nid(1)]  # read ones stay listed

    await backend.store.set_read_at(LISA, nid(1), None)
    assert await backend.store.notification(LISA, nid(1)) == note(1)
    assert await backend.store.unread_count(LISA) == 2
    assert await backend.listed(unread_only=True) == [nid(2), nid(1)]


async def test_another_users_notification_cannot_be_read_or_dismissed(backend: Backend) -> None:
    await backend.insert(note(1, user=TOM))
    await backend.store.set_read_at(LISA, nid(1), at(30))
    await backend.store.set_dismissed_at(LISA, nid(1), at(31))
    assert await backend.store.dismiss_all(LISA, at(32)) == []
    assert await backend.store.notification(TOM, nid(1)) == note(1, user=TOM)
    assert await backend.store.unread_count(TOM) == 1


async def test_a_dismissed_notification_leaves_the_list_and_the_count(backend: Backend) -> None:
    await backend.insert(note(1), note(2), note(3, read_at=at(20)))
    await backend.store.set_dismissed_at(LISA, nid(2), at(30))
    await backend.store.set_dismissed_at(LISA, nid(3), at(31))
    assert await backend.listed() == [nid(1)]
    assert await backend.listed(unread_only=True) == [nid(1)]
    assert await backend.store.unread_count(LISA) == 1
    # Still the user's, dismissed: found by id, with the time.
    assert await backend.store.notification(LISA, nid(2)) == note(2, dismissed_at=at(30))
    assert await backend.store.notification(LISA, nid(3)) == note(
        3, read_at=at(20), dismissed_at=at(31)
    )


async def test_dismiss_all_dismisses_the_users_open_ones_and_returns_their_ids_sorted(
    backend: Backend,
) -> None:
    await backend.insert(
        note(3, minute=1),
        note(1, minute=3),
        note(4, minute=2, read_at=at(20)),
        note(2, minute=4, dismissed_at=at(21)),
        note(5, user=TOM),
    )
    assert await backend.store.dismiss_all(LISA, at(40)) == [nid(1), nid(3), nid(4)]
    assert await backend.listed() == []
    assert await backend.store.unread_count(LISA) == 0
    assert await backend.store.notification(LISA, nid(1)) == note(1, minute=3, dismissed_at=at(40))
    # One dismissed before keeps its time.
    assert await backend.store.notification(LISA, nid(2)) == note(2, minute=4, dismissed_at=at(21))
    assert await backend.store.dismiss_all(LISA, at(41)) == []
    assert await backend.listed(TOM) == [nid(5)]  # untouched
    assert await backend.store.unread_count(TOM) == 1


async def test_notifications_of_the_same_instant_list_the_later_inserted_first(
    backend: Backend,
) -> None:
    """`SqliteNotificationStore`: "newest first is creation time, then insertion order". Two
    notifications of one user can share a millisecond (two services creating at once), and
    which one the list shows first should not depend on the backend nor on random uuids."""
    await backend.insert(note(3, minute=7), note(1, minute=7), note(2, minute=7))
    assert await backend.listed() == [nid(2), nid(1), nid(3)]


async def test_times_in_another_iso_form_come_back_as_the_same_instant(backend: Backend) -> None:
    """Given another ISO 8601 spelling (no milliseconds, an offset), SQLite keeps the text as
    given and PostgreSQL answers the instant in `iso_millis` form: both legitimately, so this
    case compares instants, not text."""
    given = replace(
        note(1),
        created_at="2026-01-01T11:00:00+01:00",
        read_at="2026-01-01T10:05:00Z",
    )
    await backend.insert(given)
    await backend.store.set_dismissed_at(LISA, nid(1), "2026-01-01T10:06:00.5+00:00")
    found = await backend.store.notification(LISA, nid(1))
    assert found is not None
    assert _instant(found.created_at) == "2026-01-01T10:00:00.000Z"
    assert _instant(found.read_at) == "2026-01-01T10:05:00.000Z"
    assert _instant(found.dismissed_at) == "2026-01-01T10:06:00.500Z"


def _instant(text: str | None) -> str:
    assert text is not None
    return iso_millis(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
