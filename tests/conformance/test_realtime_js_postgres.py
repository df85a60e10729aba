"""Conformance: Postgres Changes through the official `@supabase/realtime-js` 2.119.0 client.

A real server on a migrated PostgreSQL database (row-level security on every WedSync table);
rows are committed by another connection and must reach realtime-js's `.on('postgres_changes')`
callbacks in the client's own shape (`eventType`, `new`, `old`, converted with `columns`). The
harness (`JsClient`, the `js` fixture) is test_realtime_js.py's. Needs Node and PostgreSQL: on CI
(`CI=true`) a missing one fails the tests instead of skipping them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.conformance import test_realtime_js as harness
from tests.conformance.test_realtime_js import JsClient, JsFactory
from tests.conftest import TIME_FACTOR, RunningServer
from tests.support.cdc import migrated_database, write
from tests.support.pg_server import pg_server as start_pg_server

pytestmark = [pytest.mark.conformance, pytest.mark.postgres]

ServerFactory = Callable[..., Awaitable[RunningServer]]
TIMEOUT = 20.0 * TIME_FACTOR
COUPLE_1, COUPLE_2 = uuid.uuid4(), uuid.uuid4()
USER_1, USER_2 = uuid.uuid4(), uuid.uuid4()
VSNS = pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
PAYLOAD_KEYS = {"schema", "table", "commit_timestamp", "eventType", "new", "old", "errors"}

#: The harness's fixture (`await js(server, sub, vsn=...)`): skips, or fails on CI, without Node.
js = harness.js


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with migrated_database("wedsync_js_pgchanges_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO couples (id, partner1_name) VALUES (%s, 'Emma'), (%s, 'Olivia')",
                (COUPLE_1, COUPLE_2),
            )
            conn.execute(
                "INSERT INTO user_profiles (id, user_type, display_name, couple_id)"
                " VALUES (%s, 'couple', 'Emma', %s), (%s, 'couple', 'Olivia', %s)",
                (USER_1, COUPLE_1, USER_2, COUPLE_2),
            )
        yield url


@pytest.fixture
async def pg_server(db_url: str, server_factory: ServerFactory) -> AsyncIterator[RunningServer]:
    async with start_pg_server(server_factory, db_url) as server:
        yield server


async def subscribe(
    client: JsClient, channel: str, *bindings: dict[str, Any], expect: str = "SUBSCRIBED"
) -> dict[str, Any]:
    """Create `channel` with `.on('postgres_changes', binding)` for each binding, subscribe and
    await `expect`; once SUBSCRIBED, also the server's "Subscribed to PostgreSQL" (so every
    later commit is captured). Returns the status event."""
    await client.command("channel", name=channel)
    for binding in bindings:
        await client.command("on_postgres_changes", channel=channel, **binding)
    await client.command("subscribe", channel=channel)
    status = await client.wait_for("status", TIMEOUT, channel=channel, status=expect)
    if expect == "SUBSCRIBED":
        system = await client.wait_for("system", TIMEOUT, channel=channel)
        assert system["payload"]["message"] == "Subscribed to PostgreSQL", system
        assert system["payload"]["status"] == "ok", system
    return status


async def next_change(client: JsClient, channel: str) -> dict[str, Any]:
    event = await client.wait_for("postgres_changes", TIMEOUT, channel=channel)
    payload: dict[str, Any] = event["payload"]
    return payload


def frame_parts(frame: Any) -> tuple[str, dict[str, Any]]:
    """(event, payload) of a frame: 2.0.0 arrays, 1.0.0 objects (binary frames: no event)."""
    if isinstance(frame, bytes):
        return "", {}
    if isinstance(frame, list):
        return str(frame[3]), frame[4]
    return str(frame["event"]), frame["payload"]


def pushed_changes(client: JsClient) -> list[dict[str, Any]]:
    """The `postgres_changes` frames the server sent (before realtime-js filters them)."""
    found = []
    for frame in client.frames("in"):
        event, payload = frame_parts(frame)
        if event == "postgres_changes":
            found.append(payload)
    return found


async def row_json(db_url: str, row_id: uuid.UUID) -> dict[str, Any]:
    """The row as PostgreSQL encodes it to JSON (what `record` carries)."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cursor = await conn.execute(
            "SELECT to_jsonb(t) FROM core_field_values t WHERE id = %s", (row_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    value: dict[str, Any] = row[0]
    return value


def insert(row_id: uuid.UUID, couple: uuid.UUID, value: str) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO core_field_values (id, couple_id, field_name, value)"
        " VALUES (%s, %s, %s, to_jsonb(%s::text))",
        (row_id, couple, f"field_{row_id.hex[:8]}", value),
    )


@VSNS
async def test_insert_update_delete_with_a_filter_arrive_in_the_clients_shape(
    pg_server: RunningServer, db_url: str, js: JsFactory, vsn: str
) -> None:
    emma = await js(pg_server, str(USER_1), vsn=vsn)
    binding = {
        "event": "*",
        "schema": "public",
        "table": "core_field_values",
        "filter": f"couple_id=eq.{COUPLE_1}",
    }
    await subscribe(emma, "fields", binding)
    row, other = uuid.uuid4(), uuid.uuid4()

    await write(db_url, insert(row, COUPLE_1, "Garden Manor"))
    inserted = await next_change(emma, "fields")
    created = await row_json(db_url, row)
    assert set(inserted) == PAYLOAD_KEYS
    assert {k: inserted[k] for k in ("schema", "table", "eventType", "errors")} == {
        "schema": "public",
        "table": "core_field_values",
        "eventType": "INSERT",
        "errors": None,
    }
    assert inserted["new"] == created and inserted["new"]["value"] == "Garden Manor"
    assert inserted["old"] == {}
    stamp = inserted["commit_timestamp"]
    assert isinstance(stamp, str) and stamp.endswith("Z") and stamp[10] == "T"

    # A row of another couple does not pass the filter; the update of Emma's row is next.
    await write(
        db_url,
        insert(other, COUPLE_2, "Lakeside"),
        (
            "UPDATE core_field_values SET value = to_jsonb('Old Barn'::text),"
            " version = version + 1 WHERE id = %s",
            (row,),
        ),
    )
    updated = await next_change(emma, "fields")
    assert set(updated) == PAYLOAD_KEYS
    assert (updated["eventType"], updated["errors"]) == ("UPDATE", None)
    assert updated["new"] == await row_json(db_url, row)
    assert (updated["new"]["value"], updated["new"]["version"]) == ("Old Barn", 2)
    assert updated["old"] == created  # REPLICA IDENTITY FULL: the whole old row

    await write(db_url, ("DELETE FROM core_field_values WHERE id = %s", (row,)))
    deleted = await next_change(emma, "fields")
    assert set(deleted) == PAYLOAD_KEYS
    assert (deleted["eventType"], deleted["errors"]) == ("DELETE", None)
    assert deleted["new"] == {}
    # Row-level security is on: a deleted row's old image is cut to its primary key.
    assert deleted["old"] == {"id": str(row)}
    assert deleted["commit_timestamp"] >= stamp

    # Exactly three changes reached the socket: Olivia's row never left the server.
    assert [p["data"]["type"] for p in pushed_changes(emma)] == ["INSERT", "UPDATE", "DELETE"]
    assert len(emma.seen("postgres_changes")) == 3
    await write(db_url, ("DELETE FROM core_field_values WHERE id = %s", (other,)))


@VSNS
async def test_a_row_the_user_may_not_see_never_arrives(
    pg_server: RunningServer, db_url: str, js: JsFactory, vsn: str
) -> None:
    olivia = await js(pg_server, str(USER_2), vsn=vsn)
    # No filter: only row-level security stands between Olivia and Emma's rows.
    await subscribe(
        olivia, "all-fields", {"event": "INSERT", "schema": "public", "table": "core_field_values"}
    )
    hidden, visible = uuid.uuid4(), uuid.uuid4()
    await write(db_url, insert(hidden, COUPLE_1, "Emma's secret venue"))
    # The barrier: a later change Olivia may see. The server writes a socket's frames in
    # commit order, so once it is here, Emma's row would have been here before it.
    await write(db_url, insert(visible, COUPLE_2, "Lakeside"))
    change = await next_change(olivia, "all-fields")
    assert change["eventType"] == "INSERT"
    assert change["new"]["id"] == str(visible) and change["new"]["couple_id"] == str(COUPLE_2)
    assert [p["data"]["record"]["id"] for p in pushed_changes(olivia)] == [str(visible)]
    assert len(olivia.seen("postgres_changes")) == 1
    await write(db_url, "DELETE FROM core_field_values")


@VSNS
async def test_a_bad_filter_is_a_channel_error_with_the_servers_reason(
    pg_server: RunningServer, db_url: str, js: JsFactory, vsn: str
) -> None:
    emma = await js(pg_server, str(USER_1), vsn=vsn)
    bad = {
        "event": "*",
        "schema": "public",
        "table": "core_field_values",
        "filter": "couple_id=like.x%",
    }
    status = await subscribe(emma, "bad", bad, expect="CHANNEL_ERROR")
    replies = [
        payload
        for event, payload in map(frame_parts, emma.frames("in"))
        if event == "phx_reply" and payload["status"] == "error"
    ]
    assert len(replies) == 1, replies
    reason = replies[0]["response"]["reason"]
    assert reason.startswith("InvalidPostgresChangesBinding: Error parsing `filter` params: ")
    assert "unknown operator 'like'" in reason, reason
    # realtime-js hands the server's reason to the subscribe callback unchanged.
    assert status["error"] == reason

    # The socket and other channels are unaffected: a good binding still gets its changes.
    good = {**bad, "filter": f"couple_id=eq.{COUPLE_1}"}
    await subscribe(emma, "good", good)
    row = uuid.uuid4()
    await write(db_url, insert(row, COUPLE_1, "Garden Manor"))
    change = await next_change(emma, "good")
    assert (change["eventType"], change["new"]["id"]) == ("INSERT", str(row))
    assert emma.seen("status", channel="bad", status="SUBSCRIBED") == []
    await write(db_url, ("DELETE FROM core_field_values WHERE id = %s", (row,)))
