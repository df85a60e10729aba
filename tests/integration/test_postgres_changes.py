"""Postgres Changes end to end: a real server on a migrated PostgreSQL database, joined over real
sockets with `postgres_changes` bindings; rows committed by another connection reach exactly the
subscribers whose bindings match and whose row-level security lets them see the row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from tests.conftest import RunningServer
from tests.support.cdc import migrated_database, write
from tests.support.pg_server import pg_server as start_pg_server
from tests.support.phoenix import Frame, PhoenixClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ServerFactory = Callable[..., Awaitable[RunningServer]]
COUPLE_1, COUPLE_2 = uuid.uuid4(), uuid.uuid4()
USER_1, USER_2 = uuid.uuid4(), uuid.uuid4()
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with migrated_database("wedsync_pgchanges_test") as url:
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


def core_field(couple: uuid.UUID, value: str) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO core_field_values (id, couple_id, field_name, value)"
        " VALUES (%s, %s, %s, to_jsonb(%s::text))",
        (uuid.uuid4(), couple, f"field_{uuid.uuid4().hex[:8]}", value),
    )


CHANGES = {"event": "*", "schema": "public", "table": "core_field_values"}


async def subscribe(
    server: RunningServer, user: uuid.UUID, vsn: str, bindings: list[dict[str, Any]]
) -> tuple[PhoenixClient, list[dict[str, Any]]]:
    """Join `db` with `bindings`; returns the client and the echoed bindings, after the
    "Subscribed to PostgreSQL" message (so every later commit is captured)."""
    client = await server.client(str(user), vsn=vsn)
    _, reply = await client.join("db", {"postgres_changes": bindings})
    assert reply.payload["status"] == "ok", reply.payload
    echo: list[dict[str, Any]] = reply.payload["response"]["postgres_changes"]
    system = await client.recv_until(lambda f: f.event == "system", TIMEOUT)
    assert system.payload == {
        "extension": "postgres_changes",
        "status": "ok",
        "message": "Subscribed to PostgreSQL",
        "channel": "db",
    }
    return client, echo


async def next_change(client: PhoenixClient) -> Frame:
    return await client.recv_until(lambda f: f.event == "postgres_changes", TIMEOUT)


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_changes_reach_the_subscribers_allowed_to_see_them(
    pg_server: RunningServer, db_url: str, vsn: str
) -> None:
    mine = {**CHANGES, "event": "INSERT", "filter": f"couple_id=eq.{COUPLE_1}"}
    emma, echo = await subscribe(pg_server, USER_1, vsn, [mine, CHANGES])
    assert [{k: v for k, v in b.items() if k != "id"} for b in echo] == [mine, CHANGES]
    assert all(isinstance(b["id"], int) for b in echo) and echo[0]["id"] != echo[1]["id"]
    olivia, _ = await subscribe(pg_server, USER_2, vsn, [mine, CHANGES])

    await write(db_url, core_field(COUPLE_1, "Garden Manor"))
    change = await next_change(emma)
    # One push for both matching bindings of the channel.
    assert sorted(change.payload["ids"]) == sorted(b["id"] for b in echo)
    data = change.payload["data"]
    assert (data["schema"], data["table"], data["type"], data["errors"]) == (
        "public",
        "core_field_values",
        "INSERT",
        None,
    )
    assert data["record"]["couple_id"] == str(COUPLE_1)
    assert data["record"]["value"] == "Garden Manor"
    assert {"name": "couple_id", "type": "uuid"} in data["columns"]
    assert data["commit_timestamp"].endswith("Z")

    # Olivia's own couple: she gets it (only the unfiltered binding matches), Emma does not.
    await write(db_url, core_field(COUPLE_2, "Lakeside"))
    olivia_change = await next_change(olivia)
    assert olivia_change.payload["ids"] == [echo[1]["id"]]
    assert olivia_change.payload["data"]["record"]["value"] == "Lakeside"
    # Emma's next change is her next row: Olivia's row never reached her.
    await write(db_url, core_field(COUPLE_1, "Old Barn"))
    assert (await next_change(emma)).payload["data"]["record"]["value"] == "Old Barn"
    # And Olivia never saw Emma's rows: her next one is her own again.
    await write(db_url, core_field(COUPLE_2, "Boathouse"))
    assert (await next_change(olivia)).payload["data"]["record"]["value"] == "Boathouse"

    # The health endpoint reports capture and its lag (the lag metric).
    async with httpx.AsyncClient(base_url=pg_server.http_url) as http:
        health = (await http.get("/healthz")).json()
    capture = health["postgres_changes"]
    assert capture["streaming"] is True and capture["subscriptions"] == 2
    assert isinstance(capture["lag_bytes"], int) and capture["lag_bytes"] >= 0


async def test_bad_bindings_are_refused_at_join(pg_server: RunningServer, db_url: str) -> None:
    client, _ = await subscribe(pg_server, USER_1, "1.0.0", [CHANGES])
    bad = {
        "no such table": {**CHANGES, "table": "no_such_table"},
        "bad operator": {**CHANGES, "filter": "couple_id=like.x"},
        "unknown column": {**CHANGES, "filter": "nope=eq.1"},
    }
    for case, binding in bad.items():
        _, reply = await client.join(f"bad-{case}", {"postgres_changes": [binding]})
        assert reply.payload["status"] == "error", case
        reason = reply.payload["response"]["reason"]
        assert reason.startswith("InvalidPostgresChangesBinding: "), reason
    # The channel that was fine still gets its changes.
    await write(db_url, core_field(COUPLE_1, "Still here"))
    change = await next_change(client)
    assert change.topic == "realtime:db"
    assert change.payload["data"]["record"]["value"] == "Still here"


async def test_token_expiry_stops_deliveries(pg_server: RunningServer, db_url: str) -> None:
    watcher, _ = await subscribe(pg_server, USER_1, "1.0.0", [CHANGES])
    short = await pg_server.connect(pg_server.token(str(USER_1), ttl=2))
    _, reply = await short.join("db", {"postgres_changes": [CHANGES]})
    assert reply.payload["status"] == "ok"
    await short.recv_until(lambda f: f.event == "system", TIMEOUT)
    system = await short.recv_until(lambda f: f.event in ("system", "phx_close"), TIMEOUT)
    assert system.event == "system" and "expired" in system.payload["message"].lower()
    assert (await short.recv()).event == "phx_close"

    await write(db_url, core_field(COUPLE_1, "Too late"))
    # Once the watcher has the change, any frame for `short` would have been written too
    # (one capture callback delivers to every subscriber): its next frame is the heartbeat's.
    assert (await next_change(watcher)).payload["data"]["record"]["value"] == "Too late"
    ref = short.next_ref()
    await short.send("phoenix", "heartbeat", {}, ref)
    frame = await short.recv()
    assert (frame.event, frame.ref) == ("phx_reply", ref)


async def test_realtime_py_receives_changes_unchanged(
    pg_server: RunningServer, db_url: str
) -> None:
    """The official Python client, unmodified: subscribe with a filter, get the INSERT."""
    client = AsyncRealtimeClient(f"{pg_server.ws_url}/socket", token=pg_server.token(str(USER_1)))
    await client.connect()
    try:
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        subscribed = asyncio.Event()
        system: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        channel = client.channel("py-db")
        channel.on_postgres_changes(
            "INSERT",
            lambda payload: received.put_nowait(dict(payload)),
            table="core_field_values",
            schema="public",
            filter=f"couple_id=eq.{COUPLE_1}",
        )
        channel.on_system(lambda payload: system.put_nowait(dict(payload)))

        def on_state(state: RealtimeSubscribeStates, error: Exception | None) -> None:
            if state is RealtimeSubscribeStates.SUBSCRIBED:
                subscribed.set()

        await channel.subscribe(on_state)
        await asyncio.wait_for(subscribed.wait(), TIMEOUT)
        ready = await asyncio.wait_for(system.get(), TIMEOUT)
        assert ready["message"] == "Subscribed to PostgreSQL"

        await write(db_url, core_field(COUPLE_2, "Not for Emma"), core_field(COUPLE_1, "Garden"))
        payload = await asyncio.wait_for(received.get(), TIMEOUT)
        data = payload["data"]
        assert (data["type"], data["table"]) == ("INSERT", "core_field_values")
        assert data["record"]["value"] == "Garden"
        assert data["record"]["couple_id"] == str(COUPLE_1)
    finally:
        await client.close()
