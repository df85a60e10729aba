"""Which joined channels a captured batch makes the node authorize again (`DomainCapture`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from wedsync_realtime.cdc.changes import CapturedChange, ChangeColumn, Transaction
from wedsync_realtime.cdc.messages import ColumnValue, ReplicaIdentity
from wedsync_realtime.cdc.relations import ChangeAction
from wedsync_realtime.wedding.captured import DomainCapture
from wedsync_realtime.wedding.change_feed import ChangeFeed

S, C, U = (
    "6d2a1f7e-0000-4000-8000-000000000001",
    "6d2a1f7e-0000-4000-8000-000000000002",
    "6d2a1f7e-0000-4000-8000-000000000003",
)
CHANNELS = [
    f"core_fields:{C}",
    f"couple:{C}",
    f"supplier:{S}:clients",
    f"collaboration:{S}:{C}",
    "wedding:w1",
    "form:f1",
    "form:responses:f1",
    "journey:progress:j1",
    "journey:j1:other-couple",
    "core_fields:another-couple",
    "supplier:another:clients",
    "broadcast:news",
]

Row = Mapping[str, ColumnValue]


def change(
    table: str, action: ChangeAction, record: Row | None, old: Row | None = None
) -> CapturedChange:
    names = sorted({*(record or {}), *(old or {})})
    return CapturedChange(
        relation_oid=1,
        schema="public",
        table=table,
        type=action,
        columns=tuple(ChangeColumn(n, "text", True) for n in names),
        record=dict(record) if record is not None else None,
        old_record=dict(old) if old is not None else None,
        replica_identity=ReplicaIdentity.FULL,
        commit_timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        commit_lsn=1,
    )


class Recorder:
    """`Node.reauthorize` as the capture sees it: which channels it would re-check."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], frozenset[str]]] = []

    async def __call__(
        self, wanted: Callable[[str], bool], users: frozenset[str] = frozenset()
    ) -> int:
        self.calls.append(([c for c in CHANNELS if wanted(c)], users))
        return 0


async def rechecked(*changes: CapturedChange) -> list[tuple[list[str], frozenset[str]]]:
    recorder = Recorder()
    feed = ChangeFeed.__new__(ChangeFeed)  # never asked: no feed table in these batches
    capture = DomainCapture(feed, recorder)
    transaction = Transaction(1, 1, 2, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tuple(changes))
    await capture.consume([transaction])
    return recorder.calls


CONNECTION = {"supplier_id": S, "couple_id": C, "status": "active"}


async def test_an_ended_connection_rechecks_every_channel_the_pair_may_allow() -> None:
    ended = change(
        "supplier_client_connections",
        ChangeAction.UPDATE,
        {**CONNECTION, "status": "ended"},
        CONNECTION,
    )
    [(channels, users)] = await rechecked(ended)
    assert channels == [
        f"core_fields:{C}",
        f"couple:{C}",
        f"supplier:{S}:clients",
        f"collaboration:{S}:{C}",
        "wedding:w1",
        "form:f1",
        "form:responses:f1",
        "journey:progress:j1",
        "journey:j1:other-couple",
    ]
    assert users == frozenset()


async def test_changes_that_cannot_take_a_right_away_recheck_nothing() -> None:
    new_connection = change("supplier_client_connections", ChangeAction.INSERT, CONNECTION)
    touched = change(
        "supplier_client_connections",
        ChangeAction.UPDATE,
        {**CONNECTION, "created_at": "later"},
        {**CONNECTION, "created_at": "earlier"},
    )
    renamed = change(
        "user_profiles",
        ChangeAction.UPDATE,
        {"id": U, "user_type": "supplier", "supplier_id": S, "display_name": "Sarah M."},
        {"id": U, "user_type": "supplier", "supplier_id": S, "display_name": "Sarah"},
    )
    assert await rechecked(new_connection, touched, renamed) == []


async def test_a_users_own_facts_recheck_all_their_channels() -> None:
    demoted = change(
        "user_profiles",
        ChangeAction.UPDATE,
        {"id": U, "user_type": "couple", "couple_id": C},
        {"id": U, "user_type": "admin", "couple_id": None},
    )
    left_team = change(
        "supplier_team_members",
        ChangeAction.DELETE,
        None,
        {
            "supplier_id": S,
            "user_id": U,
        },
    )
    [(channels, users)] = await rechecked(demoted, left_team)
    assert users == frozenset({U})
    assert f"supplier:{S}:clients" in channels and "wedding:w1" not in channels
