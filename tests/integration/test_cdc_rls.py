"""Postgres Changes visibility, decided by PostgreSQL per identity, on the example WedSync schema.

Who is who (rows made before capture starts):

- couple user C1 (couple 1), couple user C2 (couple 2);
- supplier user S1, whose supplier is *actively* connected to couple 1;
- supplier user S2, whose connection to couple 1 is only *pending*;
- the service role (BYPASSRLS) and ``anon`` (no SELECT grant at all).

Every subscriber's channel also listens to ``cdc_barrier``: when a subscriber has the barrier
row, everything committed before it has been delivered to it (one ordered stream), so "did not
receive" is asserted without sleeping.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.support.cdc import drop_test_slot, migrated_database, unique_slot, write
from wedsync_realtime.cdc.capture import CaptureConfig
from wedsync_realtime.cdc.subscriptions import BindingError, Identity, PostgresChanges

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TIMEOUT = 20.0
COUPLE_1, COUPLE_2 = uuid.uuid4(), uuid.uuid4()
SUPPLIER_1, SUPPLIER_2 = uuid.uuid4(), uuid.uuid4()
USER_C1, USER_C2, USER_S1, USER_S2 = (uuid.uuid4() for _ in range(4))

_SETUP = """
CREATE TABLE public.cdc_barrier (id uuid PRIMARY KEY);
GRANT SELECT ON public.cdc_barrier TO authenticated, service_role;
-- Column privileges: authenticated may not read `secret`.
CREATE TABLE public.cdc_private_notes (
    id integer PRIMARY KEY, couple_id uuid NOT NULL, note text, secret text
);
ALTER TABLE public.cdc_private_notes REPLICA IDENTITY FULL;
GRANT SELECT (id, couple_id, note) ON public.cdc_private_notes TO authenticated;
GRANT SELECT ON public.cdc_private_notes TO service_role;
-- Default replica identity: a DELETE carries only the key.
CREATE TABLE public.cdc_default_identity (id integer PRIMARY KEY, tag text);
GRANT SELECT ON public.cdc_default_identity TO authenticated;
ALTER PUBLICATION wedsync_realtime
    ADD TABLE public.cdc_barrier, public.cdc_private_notes, public.cdc_default_identity;
"""


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with migrated_database("wedsync_cdc_rls_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_SETUP)
            conn.execute(
                "INSERT INTO suppliers (id, business_name) VALUES (%s, 'Flowers'), (%s, 'Cakes')",
                (SUPPLIER_1, SUPPLIER_2),
            )
            conn.execute(
                "INSERT INTO couples (id, partner1_name) VALUES (%s, 'Ann'), (%s, 'Bea')",
                (COUPLE_1, COUPLE_2),
            )
            conn.execute(
                "INSERT INTO supplier_client_connections (supplier_id, couple_id, status)"
                " VALUES (%s, %s, 'active'), (%s, %s, 'pending')",
                (SUPPLIER_1, COUPLE_1, SUPPLIER_2, COUPLE_1),
            )
            conn.execute(
                "INSERT INTO user_profiles (id, user_type, display_name, couple_id, supplier_id)"
                " VALUES (%s, 'couple', 'Ann', %s, NULL), (%s, 'couple', 'Bea', %s, NULL),"
                " (%s, 'supplier', 'Flo', NULL, %s), (%s, 'supplier', 'Cal', NULL, %s)",
                (USER_C1, COUPLE_1, USER_C2, COUPLE_2, USER_S1, SUPPLIER_1, USER_S2, SUPPLIER_2),
            )
        yield url


def user(sub: uuid.UUID, **extra: Any) -> Identity:
    claims = {"sub": str(sub), "role": "authenticated", "exp": time.time() + 3600, **extra}
    return Identity.from_claims(claims)


SERVICE = Identity.from_claims({"sub": "service", "role": "service_role"})
ANON = Identity.from_claims({"role": "anon"})
BARRIER = {"event": "INSERT", "schema": "public", "table": "cdc_barrier"}


class Inbox:
    """One channel's postgres_changes payloads."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._event = asyncio.Event()

    def deliver(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)
        self._event.set()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        async def reached() -> None:
            while not predicate():
                self._event.clear()
                await self._event.wait()

        await asyncio.wait_for(reached(), TIMEOUT)

    def changes(self, table: str) -> list[dict[str, Any]]:
        return [p["data"] for p in self.payloads if p["data"]["table"] == table]

    def take(self, table: str) -> list[dict[str, Any]]:
        """The changes of ``table`` so far, forgetting them."""
        found = self.changes(table)
        self.payloads = [p for p in self.payloads if p["data"]["table"] != table]
        return found


@pytest.fixture
async def changes(db_url: str) -> AsyncIterator[PostgresChanges]:
    registry = PostgresChanges(CaptureConfig(dsn=db_url, slot_name=unique_slot()))
    await registry.start()
    try:
        await registry.capture.wait_streaming(TIMEOUT)
        yield registry
    finally:
        await registry.stop()
        await drop_test_slot(db_url, registry.config.slot_name)


async def subscribe(
    registry: PostgresChanges, identity: Identity, *bindings: dict[str, Any], key: str = ""
) -> Inbox:
    inbox = Inbox()
    await registry.subscribe(
        key or uuid.uuid4().hex, "realtime:test", [*bindings, BARRIER], identity, inbox.deliver
    )
    return inbox


async def barrier(db_url: str, *inboxes: Inbox) -> None:
    """Commit a barrier row and wait until every inbox has it (and so everything before it)."""
    marker = uuid.uuid4()
    await write(db_url, ("INSERT INTO cdc_barrier (id) VALUES (%s)", (marker,)))
    for inbox in inboxes:
        await inbox.wait(
            lambda i=inbox: any(  # type: ignore[misc]
                c["record"]["id"] == str(marker) for c in i.changes("cdc_barrier")
            )
        )
        inbox.take("cdc_barrier")


CORE = {"event": "*", "schema": "public", "table": "core_field_values"}


async def test_each_identity_sees_only_rows_its_policies_allow_through_insert_update_delete(
    db_url: str, changes: PostgresChanges
) -> None:
    c1, c2, s1, s2, service = [
        await subscribe(changes, identity, CORE)
        for identity in (user(USER_C1), user(USER_C2), user(USER_S1), user(USER_S2), SERVICE)
    ]
    everyone = (c1, c2, s1, s2, service)
    row = uuid.uuid4()

    await write(
        db_url,
        (
            "INSERT INTO core_field_values (id, couple_id, field_name, value)"
            " VALUES (%s, %s, 'venue', '\"Old Barn\"')",
            (row, COUPLE_1),
        ),
    )
    await barrier(db_url, *everyone)
    for inbox in (c1, s1, service):
        (insert,) = inbox.take("core_field_values")
        assert insert["type"] == "INSERT"
        assert insert["record"]["couple_id"] == str(COUPLE_1)
        assert insert["record"]["value"] == "Old Barn"  # jsonb as JSON, not text
        assert insert["record"]["version"] == 1
        assert "old_record" not in insert and insert["errors"] is None
    for inbox in (c2, s2):  # another couple; a supplier whose connection is only pending
        assert inbox.take("core_field_values") == []

    # The row moves from couple 1 to couple 2: couple 1's side must not see the new values.
    await write(
        db_url,
        (
            "UPDATE core_field_values SET couple_id = %s, value = '\"Secret Garden\"'"
            " WHERE id = %s",
            (COUPLE_2, row),
        ),
    )
    await barrier(db_url, *everyone)
    for inbox in (c1, s1, s2):
        assert inbox.take("core_field_values") == []
    (moved_in,) = c2.take("core_field_values")
    assert moved_in["type"] == "UPDATE" and moved_in["record"]["value"] == "Secret Garden"
    # Couple 2 could not see the old row: its old values stay hidden, only the key is sent.
    assert moved_in["old_record"] == {"id": str(row)}
    (full,) = service.take("core_field_values")
    assert full["old_record"]["value"] == "Old Barn"

    await write(db_url, ("DELETE FROM core_field_values WHERE id = %s", (row,)))
    await barrier(db_url, *everyone)
    for inbox in (c1, s1, s2):
        assert inbox.take("core_field_values") == []
    for inbox in (c2, service):
        (deleted,) = inbox.take("core_field_values")
        assert deleted["type"] == "DELETE"
        assert deleted["old_record"] == {"id": str(row)}  # RLS table: the primary key only
        assert "record" not in deleted


async def test_one_round_trip_per_batch_whatever_the_number_of_subscribers(
    db_url: str, changes: PostgresChanges
) -> None:
    identities = [user(USER_C1), user(USER_C2), user(USER_S1), user(USER_S2), SERVICE]
    inboxes = [
        await subscribe(changes, identities[n % len(identities)], CORE, key=f"socket-{n}")
        for n in range(40)
    ]
    rows = [uuid.uuid4() for _ in range(6)]
    marker = uuid.uuid4()
    before = changes.rls.round_trips
    await write(
        db_url,
        *[
            (
                "INSERT INTO core_field_values (id, couple_id, field_name) VALUES (%s, %s, %s)",
                (r, COUPLE_1 if n % 2 else COUPLE_2, f"f{n}"),
            )
            for n, r in enumerate(rows)
        ],
        ("INSERT INTO cdc_barrier (id) VALUES (%s)", (marker,)),
    )
    for inbox in inboxes:
        await inbox.wait(lambda i=inbox: bool(i.changes("cdc_barrier")))  # type: ignore[misc]
    # Six changes to two tables, 40 channels, 5 distinct identities: one statement.
    assert changes.rls.round_trips - before == 1
    per_identity = [len(inboxes[n].changes("core_field_values")) for n in range(5)]
    assert per_identity == [3, 3, 3, 0, 6]  # C1, C2, S1 (couple 1), S2 (pending), service
    await write(db_url, "DELETE FROM core_field_values")


async def test_columns_the_role_may_not_select_are_left_out(
    db_url: str, changes: PostgresChanges
) -> None:
    table = {"event": "*", "schema": "public", "table": "cdc_private_notes"}
    member, service = (
        await subscribe(changes, user(USER_C1), table),
        await subscribe(changes, SERVICE, table),
    )
    await write(
        db_url,
        (
            "INSERT INTO cdc_private_notes VALUES (1, %s, 'hello', 'the pin is 1234')",
            (COUPLE_1,),
        ),
    )
    await barrier(db_url, member, service)
    (limited,) = member.take("cdc_private_notes")
    assert limited["record"] == {"id": 1, "couple_id": str(COUPLE_1), "note": "hello"}
    assert [c["name"] for c in limited["columns"]] == ["id", "couple_id", "note"]
    (whole,) = service.take("cdc_private_notes")
    assert whole["record"]["secret"] == "the pin is 1234"
    assert [c["type"] for c in whole["columns"]] == ["int4", "uuid", "text", "text"]
    await write(db_url, "DELETE FROM cdc_private_notes")


async def test_filters_and_ids(db_url: str, changes: PostgresChanges) -> None:
    mine = {**CORE, "filter": f"couple_id=eq.{COUPLE_1}"}
    listed = {
        "event": "INSERT",
        "schema": "public",
        "table": "core_field_values",
        "filter": f"couple_id=in.({COUPLE_1},{COUPLE_2}),version=gte.2",
    }
    inbox = Inbox()
    echo = await changes.subscribe(
        "socket-f", "realtime:f", [mine, listed, BARRIER], SERVICE, inbox.deliver
    )
    assert [{k: v for k, v in e.items() if k != "id"} for e in echo] == [mine, listed, BARRIER]
    assert all(isinstance(e["id"], int) for e in echo)
    assert len({e["id"] for e in echo}) == 3
    again = await changes.validate([mine], SERVICE)
    assert again[0].id == echo[0]["id"]  # equal bindings, equal ids

    await write(
        db_url,
        (
            "INSERT INTO core_field_values (couple_id, field_name, version)"
            " VALUES (%s, 'a', 1), (%s, 'b', 2), (%s, 'c', 2)",
            (COUPLE_1, COUPLE_1, COUPLE_2),
        ),
    )
    await barrier(db_url, inbox)
    got = [(p["data"]["record"]["field_name"], sorted(p["ids"])) for p in inbox.payloads]
    assert got == [
        ("a", [echo[0]["id"]]),
        ("b", sorted([echo[0]["id"], echo[1]["id"]])),  # once per channel, both ids
        ("c", [echo[1]["id"]]),
    ]
    await write(db_url, "DELETE FROM core_field_values")


async def test_token_refresh_changes_visibility_and_expiry_stops_delivery(
    db_url: str, changes: PostgresChanges
) -> None:
    inbox = await subscribe(changes, user(USER_S2), CORE, key="socket-t")
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = "INSERT INTO core_field_values (id, couple_id, field_name) VALUES (%s, %s, %s)"
    await write(db_url, (insert, (first, COUPLE_1, "one")))
    await barrier(db_url, inbox)
    assert inbox.take("core_field_values") == []

    changes.update_identity("socket-t", user(USER_S1))
    await write(db_url, (insert, (second, COUPLE_1, "two")))
    await barrier(db_url, inbox)
    assert [c["record"]["id"] for c in inbox.take("core_field_values")] == [str(second)]

    changes.update_identity("socket-t", user(USER_S1, exp=time.time() - 1))
    await write(db_url, (insert, (third, COUPLE_1, "three")))
    await write(db_url, ("INSERT INTO cdc_barrier (id) VALUES (%s)", (uuid.uuid4(),)))
    # The expired identity gets nothing, not even the barrier: wait for capture instead.
    other = await subscribe(changes, SERVICE, CORE)
    await barrier(db_url, other)
    assert inbox.changes("core_field_values") == []
    await write(db_url, "DELETE FROM core_field_values")


@pytest.mark.parametrize(
    ("binding", "identity", "reason"),
    [
        ({"event": "*", "schema": "public", "table": "nope"}, SERVICE, "Unable to subscribe"),
        ({"event": "UPSERT", "schema": "public", "table": "couples"}, SERVICE, "invalid `event`"),
        (
            {"event": "*", "schema": "public", "table": "couples", "filter": "nope=eq.1"},
            SERVICE,
            "unknown column `nope`",
        ),
        (
            {"event": "*", "schema": "public", "table": "couples", "filter": "id=like.x"},
            SERVICE,
            "unknown operator",
        ),
        (
            {"event": "*", "schema": "public", "table": "couples", "filter": "id=eq.not-a-uuid"},
            SERVICE,
            "invalid value",
        ),
        ({"event": "*", "schema": "public", "table": "couples"}, ANON, "permission denied"),
        (
            {
                "event": "DELETE",
                "schema": "public",
                "table": "cdc_default_identity",
                "filter": "tag=eq.x",
            },
            user(USER_C1),
            "REPLICA IDENTITY FULL",
        ),
    ],
)
async def test_bad_bindings_are_refused_with_a_reason(
    changes: PostgresChanges, binding: dict[str, Any], identity: Identity, reason: str
) -> None:
    good = {"event": "INSERT", "schema": "public", "table": "couples"}
    with pytest.raises(BindingError) as caught:
        await changes.subscribe("socket-b", "realtime:b", [good, binding], identity, print)
    assert reason in str(caught.value)
    # The first binding is fine, except for anon, who may read no table at all.
    assert caught.value.index == (0 if identity is ANON else 1)
    assert changes.subscription_count() == 0


async def test_non_key_filter_on_default_identity_is_fine_for_inserts(
    changes: PostgresChanges,
) -> None:
    binding = {
        "event": "INSERT",
        "schema": "public",
        "table": "cdc_default_identity",
        "filter": "tag=eq.x",
    }
    echo = await changes.subscribe("socket-k", "realtime:k", [binding], user(USER_C1), print)
    assert echo[0]["filter"] == "tag=eq.x"
