"""One pipeline, two sources: the embedded write API and PostgreSQL change capture produce the
same domain events (issue 5, "One pipeline for domain events": "The two sources must produce the
same events (one test suite runs against both)").

The same wedding is set up in each backend with the same ids: Emma (James & Emma), their
photographer Sarah (connected, with a form sent to them), a rival photographer who is not
connected, and the venue directory. Then the same three domain changes happen, each the way its
source makes it:

* embedded default — Emma calls the REST write API (the server writes SQLite and routes);
* production mode — the platform commits rows to PostgreSQL; the server only sees the committed
  transaction through logical replication (the venue change writes the venue-dependent fields in
  the same transaction, as the write API does for the embedded store).

Sarah's dashboard connection (``supplier:{S}:clients`` and ``user:{her id}``) must receive
exactly `EXPECTED`, apart from the instants; the rival's connection receives nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import RunningServer
from tests.support.cdc import drop_test_slot, migrated_database, unique_slot, write
from tests.support.phoenix import PhoenixClient
from tests.support.wedsync_api import (
    assert_nothing_before_marker,
    directory_of,
    headers,
    http,
    joined,
)
from wedsync_realtime.wedding.core_fields import FieldWrite
from wedsync_realtime.wedding.sqlite_stores import SqliteCoreFieldStore

ServerFactory = Callable[..., Awaitable[RunningServer]]

COUPLE, WEDDING = uuid.uuid4(), uuid.uuid4()
EMMA, SARAH, RIVAL_USER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
PHOTOGRAPHER, RIVAL = uuid.uuid4(), uuid.uuid4()
FORM = uuid.uuid4()
GRAND_HOTEL = ("Grand Hotel", "1 High Street, Bath", 200)
GARDEN_MANOR = ("Garden Manor", "Manor Lane, Wells", 120)
FIELDS = [
    {"field_id": "style", "label": "Photo style", "required": True},
    {"field_id": "family", "label": "Family groups", "required": False},
]

C, S = str(COUPLE), str(PHOTOGRAPHER)
CLIENTS, INBOX = f"supplier:{S}:clients", f"user:{SARAH}"
#: Fields that differ with the moment of the change, left out of the comparison.
INSTANTS = {"timestamp", "created_at"}

EXPECTED: list[tuple[str, str, dict[str, Any]]] = [
    # Emma changes the venue: the event (with the fields the venue filled) and Sarah's notification.
    (
        CLIENTS,
        "core_fields_updated",
        {
            "couple_id": C,
            "field_name": "venue_name",
            "old_value": "Grand Hotel",
            "new_value": "Garden Manor",
            "updated_by": str(EMMA),
            "updated_by_name": "Emma",
            "version": 2,
            "auto_populated_fields": ["venue_address", "venue_capacity"],
            "auto_populated_values": {
                "venue_address": {"value": "Manor Lane, Wells", "version": 2},
                "venue_capacity": {"value": 120, "version": 2},
            },
        },
    ),
    (
        INBOX,
        "notification_new",
        {
            "notification_id": "(derived from the change: the same in both sources)",
            "user_id": str(SARAH),
            "type": "core_field_change",
            "title": "James & Emma: Venue changed",
            "message": "Emma changed the venue to Garden Manor",
            "action_url": f"/clients/{C}/core-fields",
            "priority": "high",
            "read": False,
            "dismissed": False,
            "unread_count": 1,
        },
    ),
    # Emma answers a question of Sarah's form.
    (
        CLIENTS,
        "form_field_updated",
        {
            "form_id": str(FORM),
            "supplier_id": S,
            "couple_id": C,
            "field_id": "style",
            "field_completed": True,
            "user_name": "Emma",
            "completion_percentage": 50,
            "form_title": "Shot List Preferences",
            "couple_name": "James & Emma",
            "status": "draft",
        },
    ),
    # Emma submits it: the event and Sarah's notification.
    (
        CLIENTS,
        "form_submitted",
        {
            "form_id": str(FORM),
            "supplier_id": S,
            "couple_id": C,
            "field_id": None,
            "user_name": "Emma",
            "completion_percentage": 50,
            "form_title": "Shot List Preferences",
            "couple_name": "James & Emma",
            "status": "submitted",
        },
    ),
    (
        INBOX,
        "notification_new",
        {
            "notification_id": "(derived from the submission time: differs)",
            "user_id": str(SARAH),
            "type": "form_submission",
            "title": "New form submission: Shot List Preferences",
            "message": "James & Emma submitted Shot List Preferences",
            "action_url": f"/forms/{FORM}/responses/{C}",
            "priority": "high",
            "read": False,
            "dismissed": False,
            "unread_count": 2,
        },
    ),
]


class Source(Protocol):
    """A running server over one backend, with the wedding set up, and its way of changing it."""

    server: RunningServer

    async def change_venue(self) -> None: ...

    async def answer_style(self) -> None: ...

    async def submit(self) -> None: ...


class Embedded:
    """The embedded default: SQLite, written through the REST write API as Emma."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        directory = directory_of(server)
        directory.add_couple(C, "James", "Emma")
        directory.add_supplier(S, "Sarah Photography", category="photographer")
        directory.add_supplier(str(RIVAL), "Rival Lens", category="photographer")
        directory.add_user(str(EMMA), "couple", couple_id=C, name="Emma")
        directory.add_user(str(SARAH), "supplier", supplier_id=S, name="Sarah")
        directory.add_user(str(RIVAL_USER), "supplier", supplier_id=str(RIVAL), name="Rex")
        directory.connect(S, C)
        directory.add_wedding(str(WEDDING), C)
        directory.add_form(
            str(FORM),
            S,
            (C,),
            title="Shot List Preferences",
            fields=[(f["field_id"], f["label"], f["required"]) for f in FIELDS],
        )
        venues = SqliteCoreFieldStore(directory.database)
        for name, address, capacity in (GRAND_HOTEL, GARDEN_MANOR):
            venues.add_venue(str(uuid.uuid4()), name, address=address, capacity=capacity)
        self._initial_venue = venues

    async def seed_fields(self) -> None:
        name, address, capacity = GRAND_HOTEL
        await self._initial_venue.write_core_fields(
            C,
            [
                FieldWrite("venue_name", name, None),
                FieldWrite("venue_address", address, None),
                FieldWrite("venue_capacity", capacity, None),
            ],
            updated_by=str(EMMA),
            at="2026-01-01T00:00:00.000Z",
        )

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        async with http(self.server) as api:
            response = await api.request(
                method, path, json=body, headers=headers(self.server, str(EMMA))
            )
        assert response.status_code == 200, response.text

    async def change_venue(self) -> None:
        await self._call(
            "PATCH",
            f"/api/wedsync/couples/{C}/core-fields",
            {"changes": {"venue_name": {"value": GARDEN_MANOR[0], "version": 1}}},
        )

    async def answer_style(self) -> None:
        await self._call(
            "PUT", f"/api/wedsync/forms/{FORM}/response/fields/style", {"value": "candid"}
        )

    async def submit(self) -> None:
        await self._call("POST", f"/api/wedsync/forms/{FORM}/response/submit")


class Postgres:
    """Production mode: the platform commits rows; change capture tells the server."""

    def __init__(self, server: RunningServer, url: str) -> None:
        self.server = server
        self.url = url

    @staticmethod
    def seed(url: str) -> None:
        name, address, capacity = GRAND_HOTEL
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute(
                "INSERT INTO couples (id, partner1_name, partner2_name)"
                " VALUES (%s, 'James', 'Emma')",
                (COUPLE,),
            )
            conn.execute(
                "INSERT INTO suppliers (id, business_name, category) VALUES"
                " (%s, 'Sarah Photography', 'photographer'), (%s, 'Rival Lens', 'photographer')",
                (PHOTOGRAPHER, RIVAL),
            )
            conn.execute(
                "INSERT INTO user_profiles (id, user_type, display_name, supplier_id, couple_id)"
                " VALUES (%s, 'couple', 'Emma', NULL, %s), (%s, 'supplier', 'Sarah', %s, NULL),"
                " (%s, 'supplier', 'Rex', %s, NULL)",
                (EMMA, COUPLE, SARAH, PHOTOGRAPHER, RIVAL_USER, RIVAL),
            )
            conn.execute(
                "INSERT INTO supplier_client_connections (supplier_id, couple_id, status)"
                " VALUES (%s, %s, 'active')",
                (PHOTOGRAPHER, COUPLE),
            )
            conn.execute("INSERT INTO weddings (id, couple_id) VALUES (%s, %s)", (WEDDING, COUPLE))
            conn.execute(
                "INSERT INTO forms (id, supplier_id, title, fields)"
                " VALUES (%s, %s, 'Shot List Preferences', %s)",
                (FORM, PHOTOGRAPHER, Jsonb(FIELDS)),
            )
            conn.execute(
                "INSERT INTO form_recipients (form_id, couple_id) VALUES (%s, %s)", (FORM, COUPLE)
            )
            for venue in (GRAND_HOTEL, GARDEN_MANOR):
                conn.execute(
                    "INSERT INTO venues (name, address, capacity) VALUES (%s, %s, %s)", venue
                )
            for field, value in (
                ("venue_name", name),
                ("venue_address", address),
                ("venue_capacity", capacity),
            ):
                conn.execute(
                    "INSERT INTO core_field_values (couple_id, field_name, value, updated_by)"
                    " VALUES (%s, %s, %s, %s)",
                    (COUPLE, field, Jsonb(value), EMMA),
                )

    async def change_venue(self) -> None:
        name, address, capacity = GARDEN_MANOR
        update = (
            "UPDATE core_field_values SET value = %s, version = version + 1, updated_by = %s,"
            " updated_at = now() WHERE couple_id = %s AND field_name = %s"
        )
        await write(
            self.url,
            (update, (Jsonb(name), EMMA, COUPLE, "venue_name")),
            (update, (Jsonb(address), EMMA, COUPLE, "venue_address")),
            (update, (Jsonb(capacity), EMMA, COUPLE, "venue_capacity")),
        )

    async def answer_style(self) -> None:
        await write(
            self.url,
            (
                "INSERT INTO form_responses (form_id, supplier_id, couple_id, data, updated_by)"
                " VALUES (%s, %s, %s, %s, %s)",
                (FORM, PHOTOGRAPHER, COUPLE, Jsonb({"style": "candid"}), EMMA),
            ),
        )

    async def submit(self) -> None:
        await write(
            self.url,
            (
                "UPDATE form_responses SET status = 'submitted', submitted_at = now(),"
                " updated_by = %s, updated_at = now() WHERE form_id = %s AND couple_id = %s",
                (EMMA, FORM, COUPLE),
            ),
        )


@contextlib.asynccontextmanager
async def _postgres(server_factory: ServerFactory) -> AsyncIterator[Postgres]:
    with migrated_database("wedsync_sources_test") as url:
        Postgres.seed(url)
        slot = unique_slot()
        server = await server_factory(database_url=url, cdc_slot_name=slot)
        try:
            changes = server.node.postgres_changes
            assert changes is not None
            # Changes committed from here on are captured (the slot exists and streams).
            await changes.capture.wait_streaming(timeout=20.0)
            yield Postgres(server, url)
        finally:
            await server.node.close()
            await drop_test_slot(url, slot)


@pytest.fixture(params=["embedded", "postgres"])
async def source(
    request: pytest.FixtureRequest, server_factory: ServerFactory
) -> AsyncIterator[Source]:
    if request.param == "embedded":
        embedded = Embedded(await server_factory())
        await embedded.seed_fields()
        yield embedded
        return
    async with _postgres(server_factory) as postgres:
        yield postgres


@pytest.fixture
async def postgres(server_factory: ServerFactory) -> AsyncIterator[Postgres]:
    async with _postgres(server_factory) as source:
        yield source


async def _broadcasts(client: PhoenixClient, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    got = []
    for _ in range(count):
        frame = await client.recv_until(lambda f: f.event == "broadcast", 10.0)
        body = frame.payload
        got.append((frame.topic.removeprefix("realtime:"), body["event"], body["payload"]))
    return got


def _comparable(
    events: list[tuple[str, str, dict[str, Any]]],
) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (channel, event, {k: v for k, v in payload.items() if k not in INSTANTS})
        for channel, event, payload in events
    ]


@pytest.mark.postgres
async def test_both_sources_produce_the_same_events(source: Source) -> None:
    sarah = await joined(source.server, str(SARAH), CLIENTS, INBOX)
    rival = await joined(source.server, str(RIVAL_USER), f"supplier:{RIVAL}:clients")

    await source.change_venue()
    venue = await _broadcasts(sarah, 2)
    await source.answer_style()
    answer = await _broadcasts(sarah, 1)
    await source.submit()
    submission = await _broadcasts(sarah, 2)
    got = _comparable(venue + answer + submission)

    expected = _comparable(EXPECTED)
    # Notification ids: derived from their cause, so the venue change's is the same whichever
    # source saw it (a write and its capture notify once); the submission's includes its time.
    for index in (1, 4):
        expected[index][2]["notification_id"] = got[index][2]["notification_id"]
    assert got == expected
    uuid.UUID(got[1][2]["notification_id"])
    # Every instant is ISO 8601 UTC to the millisecond, whatever the source.
    for _, _, payload in venue + answer + submission:
        assert str(payload["timestamp"]).endswith("Z") and len(payload["timestamp"]) == 24

    # A supplier not connected to the couple heard nothing of it.
    await assert_nothing_before_marker(source.server, rival, f"supplier:{RIVAL}:clients")


@pytest.mark.postgres
async def test_an_ended_connection_closes_the_suppliers_couple_channels(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """The platform ends Sarah's connection to James & Emma while she is joined to their
    channels: those channels are closed with a reason (and audited), her own dashboard channel
    stays, and the couple's next change reaches the couple but not her."""
    source = postgres
    couple_channels = [f"core_fields:{C}", f"wedding:{WEDDING}"]
    sarah = await joined(source.server, str(SARAH), CLIENTS, *couple_channels)
    emma = await joined(source.server, str(EMMA), f"core_fields:{C}")

    await write(
        source.url,
        (
            "UPDATE supplier_client_connections SET status = 'ended'"
            " WHERE supplier_id = %s AND couple_id = %s",
            (PHOTOGRAPHER, COUPLE),
        ),
    )
    closed = set()
    while len(closed) < len(couple_channels):
        frame = await sarah.recv_until(lambda f: f.event in ("system", "phx_close"), 10.0)
        channel = frame.topic.removeprefix("realtime:")
        if frame.event == "system":
            assert frame.payload["status"] == "error"
            assert frame.payload["message"] == (
                f"You no longer have permission to read from this Channel topic: {channel}"
            )
        else:
            closed.add(channel)
    assert closed == set(couple_channels)
    assert any(
        r.name == "wedsync_realtime.audit" and "revoked" in r.getMessage() for r in caplog.records
    )

    await source.change_venue()
    change = await emma.recv_until(lambda f: f.event == "broadcast", 10.0)
    assert change.payload["event"] == "core_fields_updated"
    # Nothing about the couple reached Sarah, on any channel, before a marker on her dashboard.
    await assert_nothing_before_marker(source.server, sarah, CLIENTS)
