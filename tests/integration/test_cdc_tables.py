"""The enabled tables (`WEDSYNC_CDC_TABLES`): the publication is made to hold exactly them at
start-up, bindings on other tables are refused with a reason, a table that does not exist stops
start-up. A real server on a real PostgreSQL; each test has its own migrated database, since the
tests change its publication."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import TIME_FACTOR, RunningServer, make_settings
from tests.support.cdc import (
    drop_test_slot,
    migrated_database,
    publication_tables,
    unique_slot,
    write,
)
from tests.support.phoenix import Frame, PhoenixClient
from wedsync_realtime.app import build_node
from wedsync_realtime.cdc.publication import PublicationError, ensure_publication
from wedsync_realtime.wedding.captured import FACT_TABLES, FEED_TABLES

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ServerFactory = Callable[..., Awaitable[RunningServer]]
TIMEOUT = 20.0 * TIME_FACTOR
PUBLICATION = "wedsync_realtime"
COUPLE, USER, SUPPLIER, FORM = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
#: The tables the migrations publish (0002, 0003 and 0004).
MIGRATED = {
    ("public", name)
    for name in (
        "user_profiles",
        "suppliers",
        "couples",
        "supplier_client_connections",
        "core_field_values",
        "forms",
        "form_responses",
        "journey_instances",
        "notifications",
        "supplier_team_members",
        "weddings",
        "form_recipients",
        "journey_instance_steps",
    )
}


@pytest.fixture
def db_url() -> Iterator[str]:
    with migrated_database("wedsync_cdc_tables_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO couples (id, partner1_name) VALUES (%s, 'Emma')", (COUPLE,))
            conn.execute(
                "INSERT INTO user_profiles (id, user_type, display_name, couple_id)"
                " VALUES (%s, 'couple', 'Emma', %s)",
                (USER, COUPLE),
            )
            conn.execute(
                "INSERT INTO suppliers (id, business_name) VALUES (%s, 'Lens & Light')",
                (SUPPLIER,),
            )
            conn.execute(
                "INSERT INTO forms (id, supplier_id, title) VALUES (%s, %s, 'Questionnaire')",
                (FORM, SUPPLIER),
            )
        yield url


@pytest.fixture
async def slot(db_url: str) -> AsyncIterator[str]:
    name = unique_slot()
    yield name
    await drop_test_slot(db_url, name)


def core_field(value: str) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO core_field_values (id, couple_id, field_name, value)"
        " VALUES (%s, %s, %s, to_jsonb(%s::text))",
        (uuid.uuid4(), COUPLE, f"field_{uuid.uuid4().hex[:8]}", value),
    )


def form_response() -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO form_responses (id, form_id, supplier_id, couple_id) VALUES (%s, %s, %s, %s)",
        (uuid.uuid4(), FORM, SUPPLIER, COUPLE),
    )


async def join(client: PhoenixClient, topic: str, binding: dict[str, Any]) -> Frame:
    """Join with one binding; after an ok reply, wait for "Subscribed to PostgreSQL"."""
    _, reply = await client.join(topic, {"postgres_changes": [binding]})
    if reply.payload["status"] == "ok":
        system = await client.recv_until(lambda f: f.event == "system", TIMEOUT)
        assert system.payload["message"] == "Subscribed to PostgreSQL", system.payload
    return reply


async def next_change(client: PhoenixClient) -> dict[str, Any]:
    frame = await client.recv_until(lambda f: f.event == "postgres_changes", TIMEOUT)
    data: dict[str, Any] = frame.payload["data"]
    return data


async def test_only_the_enabled_tables_are_captured_and_may_be_bound(
    db_url: str, slot: str, server_factory: ServerFactory
) -> None:
    assert await publication_tables(db_url, PUBLICATION) == MIGRATED
    server = await server_factory(
        database_url=db_url,
        cdc_slot_name=slot,
        cdc_tables=(("public", "core_field_values"),),
    )
    try:
        # Start-up made the publication hold the enabled table and the tables the WedSync
        # domain reads from capture (its events, and the re-check of rights while joined).
        domain = {("public", t) for t in FEED_TABLES | FACT_TABLES}
        assert await publication_tables(db_url, PUBLICATION) == {
            ("public", "core_field_values"),
            *domain,
        }
        assert ("public", "form_responses") in domain  # captured, yet not enabled below

        emma = await server.client(str(USER))
        fields = {"event": "*", "schema": "public", "table": "core_field_values"}
        assert (await join(emma, "fields", fields)).payload["status"] == "ok"
        responses = {"event": "*", "schema": "public", "table": "form_responses"}
        refused = await join(emma, "responses", responses)
        assert refused.payload["status"] == "error"
        assert refused.payload["response"]["reason"] == (
            "InvalidPostgresChangesBinding: Unable to subscribe to changes with given "
            "parameters. Please check Realtime is enabled for the given connect parameters: "
            "[event: *, schema: public, table: form_responses, filters: []] (table "
            "public.form_responses is not enabled for Postgres Changes)"
        )
        # A client that would see every row of every published table (the service role
        # bypasses row-level security) binds them all with a wildcard.
        admin = await server.client("admin", role="service_role")
        everything = {"event": "*", "schema": "public", "table": "*"}
        assert (await join(admin, "everything", everything)).payload["status"] == "ok"

        # A form response, then a core field, committed one after the other: the form
        # response is captured for the domain but is no Postgres Change, so the first change
        # anyone gets is the core field.
        await write(db_url, form_response())
        await write(db_url, core_field("Garden Manor"))
        for client in (emma, admin):
            change = await next_change(client)
            assert (change["table"], change["type"]) == ("core_field_values", "INSERT")
            assert change["record"]["value"] == "Garden Manor"
    finally:
        await server.node.close()


async def test_a_table_that_does_not_exist_stops_start_up(db_url: str, slot: str) -> None:
    settings = make_settings(
        database_url=db_url,
        cdc_slot_name=slot,
        cdc_tables=(("public", "core_field_values"), ("public", "no_such_table")),
    )
    node = build_node(settings)
    try:
        with pytest.raises(PublicationError) as caught:
            await node.start()
        assert str(caught.value) == (
            "cannot enable Postgres Changes for table public.no_such_table: it does not exist"
        )
    finally:
        await node.close()
    # Nothing was changed or created.
    assert await publication_tables(db_url, PUBLICATION) == MIGRATED
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        )
        assert await cursor.fetchone() == (0,)


async def test_ensure_publication_creates_replaces_and_keeps(db_url: str) -> None:
    core = ("public", "core_field_values")
    forms = ("public", "forms")
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("DROP PUBLICATION wedsync_realtime")
        assert await ensure_publication(conn, PUBLICATION, [core, forms]) is True
        assert await publication_tables(db_url, PUBLICATION) == {core, forms}
        assert await ensure_publication(conn, PUBLICATION, [forms, core]) is False
        assert await ensure_publication(conn, PUBLICATION, [core]) is True
        assert await publication_tables(db_url, PUBLICATION) == {core}

        await conn.execute("CREATE VIEW public.form_titles AS SELECT title FROM forms")
        with pytest.raises(PublicationError, match=r"public\.form_titles: it is a view"):
            await ensure_publication(conn, PUBLICATION, [forms, ("public", "form_titles")])
        with pytest.raises(PublicationError, match=r"table other\.forms: it does not exist"):
            await ensure_publication(conn, PUBLICATION, [("other", "forms")])
        assert await publication_tables(db_url, PUBLICATION) == {core}

        await conn.execute("CREATE PUBLICATION everything FOR ALL TABLES")
        with pytest.raises(PublicationError, match="'everything' is FOR ALL TABLES"):
            await ensure_publication(conn, "everything", [core])
