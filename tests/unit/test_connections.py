"""Supplier-couple connections: who may set which status, what a change announces, and which
joined channels it has re-checked (`ConnectionService` on the demo's SQLite store)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.wedding import SteppingClock
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.connections import (
    CONNECTION_UPDATED,
    ConnectionService,
    ConnectionStatus,
    Editor,
    SqliteConnectionStore,
    concerned_channels,
)
from wedsync_realtime.wedding.demo import demo, load_demo
from wedsync_realtime.wedding.directory import UserProfile, UserType
from wedsync_realtime.wedding.errors import Invalid, NotFound, NotPermitted
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory

C, S, W = demo.couple, demo.caterer, demo.wedding
ACTIVE, PAUSED, ENDED = ConnectionStatus.ACTIVE, ConnectionStatus.PAUSED, ConnectionStatus.ENDED

EMMA = Editor.user(UserProfile("emma", UserType.COUPLE, couple_id=C))
LISA = Editor.user(UserProfile("lisa", UserType.SUPPLIER, supplier_id=S))
SARAH = Editor.user(UserProfile("sarah", UserType.SUPPLIER, supplier_id=demo.photographer))
RITA = Editor.user(UserProfile("rita", UserType.SUPPLIER, supplier_id=demo.rival))
OLIVIA = Editor.user(UserProfile("olivia", UserType.COUPLE, couple_id=demo.other_couple))
ADMIN = Editor.user(UserProfile("admin", UserType.ADMIN))
SERVICE = Editor.service_role("ops")

#: Channel names a node might have joined, to see which a change has re-checked.
JOINED = (
    f"core_fields:{C}",
    f"wedding:{W}",
    f"wedding:{demo.other_wedding}",
    f"collaboration:{S}:{C}",
    f"collab:{demo.photographer}:{C}",
    f"journey:{demo.walkthrough}:{C}",
    f"journey:progress:{demo.walkthrough}",
    f"form:{demo.shot_list_form}",
    f"form:responses:{demo.shot_list_form}",
    f"supplier:{S}:clients",
    f"couple:{C}",
    f"supplier:{demo.photographer}:clients",
    f"core_fields:{demo.other_couple}",
    "user:lisa",
    "room1",
)


class Reauthorizer:
    """Records each predicate it is asked with; reports `closed` channels."""

    def __init__(self, closed: int = 0) -> None:
        self.asked: list[Callable[[str], bool]] = []
        self.closed = closed

    async def __call__(self, wanted: Callable[[str], bool]) -> int:
        self.asked.append(wanted)
        return self.closed


@pytest.fixture
def directory() -> SqliteDirectory:
    database = SqliteDatabase.open(":memory:")
    load_demo(database)
    return SqliteDirectory(database)


@pytest.fixture
def reauthorize() -> Reauthorizer:
    return Reauthorizer()


@pytest.fixture
def service(directory: SqliteDirectory, reauthorize: Reauthorizer) -> ConnectionService:
    store = SqliteConnectionStore(directory.database)
    return ConnectionService(store, directory, clock=SteppingClock(), reauthorize=reauthorize)


async def test_the_couple_ends_a_connection_the_rules_see_it_and_both_sides_hear(
    service: ConnectionService, directory: SqliteDirectory, reauthorize: Reauthorizer
) -> None:
    outcome = await service.set_status(S, C, ENDED, EMMA)
    connection = outcome.value
    assert (connection.status, connection.updated_by) == (ENDED, "emma")
    assert connection.updated_at == "2025-06-01T14:00:00.000Z"
    assert not await directory.is_connected(S, C)
    assert S not in await directory.wedding_suppliers(W)
    [event] = outcome.events
    assert event.event == CONNECTION_UPDATED
    assert event.channels == (f"supplier:{S}:clients", f"couple:{C}")
    assert event.payload == {
        "supplier_id": S,
        "couple_id": C,
        "status": "ended",
        "previous_status": "active",
        "updated_by": "emma",
        "timestamp": "2025-06-01T14:00:00.000Z",
    }
    [wanted] = reauthorize.asked
    assert {name for name in JOINED if wanted(name)} == {
        f"core_fields:{C}",
        f"wedding:{W}",
        f"collaboration:{S}:{C}",
        f"collab:{demo.photographer}:{C}",
        f"journey:{demo.walkthrough}:{C}",
        f"journey:progress:{demo.walkthrough}",
        f"form:{demo.shot_list_form}",
        f"form:responses:{demo.shot_list_form}",
        f"supplier:{S}:clients",
        f"couple:{C}",
    }


async def test_the_couple_reactivates_without_a_recheck(
    service: ConnectionService, directory: SqliteDirectory, reauthorize: Reauthorizer
) -> None:
    await service.set_status(S, C, ENDED, EMMA)
    again = await service.set_status(S, C, ACTIVE, EMMA)
    assert again.value.status is ACTIVE
    assert await directory.is_connected(S, C)
    assert again.events[0].payload["previous_status"] == "ended"
    assert len(reauthorize.asked) == 1  # an activation takes no right away


async def test_setting_the_same_status_announces_nothing_but_still_rechecks(
    service: ConnectionService, reauthorize: Reauthorizer
) -> None:
    first = await service.set_status(S, C, PAUSED, LISA)
    repeat = await service.set_status(S, C, PAUSED, EMMA)
    assert repeat.events == ()
    assert repeat.value == first.value  # not rewritten: same time, same author
    assert len(reauthorize.asked) == 2
    assert (await service.set_status(demo.photographer, C, ACTIVE, EMMA)).events == ()


async def test_the_supplier_may_pause_or_end_but_never_activate(
    service: ConnectionService, directory: SqliteDirectory
) -> None:
    assert (await service.set_status(S, C, PAUSED, LISA)).value.status is PAUSED
    with pytest.raises(NotPermitted) as refused:
        await service.set_status(S, C, ACTIVE, LISA)
    assert refused.value.field == "status"
    assert not await directory.is_connected(S, C)
    assert (await service.set_status(S, C, ENDED, LISA)).value.updated_by == "lisa"


@pytest.mark.parametrize("editor", [SARAH, RITA, OLIVIA], ids=["sarah", "rita", "olivia"])
async def test_no_one_else_may_change_it(
    service: ConnectionService, directory: SqliteDirectory, editor: Editor
) -> None:
    for status in (ACTIVE, PAUSED, ENDED):
        with pytest.raises(NotPermitted):
            await service.set_status(S, C, status, editor)
    assert await directory.is_connected(S, C)


async def test_operators_may_do_anything(service: ConnectionService) -> None:
    assert (await service.set_status(S, C, ENDED, SERVICE)).value.updated_by == "ops"
    assert (await service.set_status(S, C, ACTIVE, ADMIN)).value.updated_by == "admin"


async def test_unknown_parties_and_pairs_never_connected_are_not_found(
    service: ConnectionService, directory: SqliteDirectory
) -> None:
    with pytest.raises(NotFound) as unknown_couple:
        await service.set_status(S, "c-nobody", ENDED, ADMIN)
    assert unknown_couple.value.field == "couple_id"
    with pytest.raises(NotFound) as unknown_supplier:
        await service.set_status("s-nobody", C, ENDED, ADMIN)
    assert unknown_supplier.value.field == "supplier_id"
    with pytest.raises(NotFound):
        await service.set_status(demo.rival, C, PAUSED, EMMA)
    with pytest.raises(Invalid):
        await service.set_status(S, C, ConnectionStatus.PENDING, ADMIN)
    # The couple invites a supplier it never had: the pair is created, active.
    invited = await service.set_status(demo.rival, C, ACTIVE, EMMA)
    assert invited.events[0].payload["previous_status"] is None
    assert await directory.is_connected(demo.rival, C)


async def test_each_side_lists_its_own_connections(service: ConnectionService) -> None:
    await service.set_status(S, C, ENDED, EMMA)
    mine = await service.list(EMMA)
    assert [(c.supplier_id, c.status) for c in mine] == sorted(
        (s, ENDED if s == S else ACTIVE) for s in demo.connected_suppliers
    )
    assert [(c.supplier_id, c.couple_id) for c in await service.list(LISA)] == [(S, C)]
    assert await service.list(LISA, couple_id=demo.other_couple) == []
    assert [c.supplier_id for c in await service.list(EMMA, supplier_id=S)] == [S]
    with pytest.raises(NotPermitted):
        await service.list(LISA, supplier_id=demo.rival)
    with pytest.raises(NotPermitted):
        await service.list(OLIVIA, couple_id=C)
    with pytest.raises(Invalid):
        await service.list(ADMIN)
    assert [c.supplier_id for c in await service.list(SERVICE, couple_id=demo.other_couple)] == [
        demo.rival
    ]


def test_concerned_channels_name_the_pair_the_couples_weddings_forms_and_journeys() -> None:
    wanted = concerned_channels(S, C, [W])
    assert wanted(f"core_fields:{C}") and wanted(f"wedding:{W}")
    assert wanted(f"form:{demo.shot_list_form}") and wanted("journey:progress:j1")
    assert not wanted(f"wedding:{demo.other_wedding}")
    assert not wanted(f"core_fields:{demo.other_couple}")
    assert not wanted(f"{C}x:{S}y") and not wanted("room1")


def test_an_editor_is_a_profile_or_the_service_role() -> None:
    with pytest.raises(ValueError):
        Editor("nobody")
