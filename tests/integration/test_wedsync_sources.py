"""One pipeline, two sources: the embedded write API and PostgreSQL change capture produce the
same domain events (issue 5, "One pipeline for domain events": "The two sources must produce the
same events (one test suite runs against both)").

The same wedding is set up in each backend with the same ids: Emma (James & Emma), their
photographer Sarah (connected, with a form sent to them and her journey started for them), a
rival photographer who is not connected, and the venue directory. Then the same four domain
changes happen, each the way its source makes it:

* embedded default — Emma calls the REST write API (the server writes SQLite and routes);
* production mode — the platform commits rows to PostgreSQL; the server only sees the committed
  transaction through logical replication (the venue change writes the venue-dependent fields in
  the same transaction, as the write API does for the embedded store; a journey step's
  completion unlocks the next step in the same transaction, as the embedded store does).

Sarah's dashboard connection (``supplier:{S}:clients`` and ``user:{her id}``) must receive
exactly `EXPECTED`, apart from the instants; the rival's connection receives nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import RunningServer
from tests.support.cdc import migrated_database, write
from tests.support.pg_server import pg_server
from tests.support.phoenix import PhoenixClient
from tests.support.wedsync_api import (
    assert_nothing_before_marker,
    directory_of,
    headers,
    http,
    joined,
)
from wedsync_realtime.wedding.core_fields import FieldWrite
from wedsync_realtime.wedding.sqlite_stores import SqliteCoreFieldStore, SqliteJourneyStore

ServerFactory = Callable[..., Awaitable[RunningServer]]

COUPLE, WEDDING = uuid.uuid4(), uuid.uuid4()
EMMA, SARAH, RIVAL_USER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
PHOTOGRAPHER, RIVAL = uuid.uuid4(), uuid.uuid4()
FORM = uuid.uuid4()
JOURNEY, RUN = uuid.uuid4(), uuid.uuid4()
GRAND_HOTEL = ("Grand Hotel", "1 High Street, Bath", 200)
GARDEN_MANOR = ("Garden Manor", "Manor Lane, Wells", 120)
FIELDS = [
    {"field_id": "style", "label": "Photo style", "required": True},
    {"field_id": "family", "label": "Family groups", "required": False},
]
#: Sarah's journey, in order: (step_id, name, kind).
STEPS = [
    ("consultation", "Consultation", "meeting"),
    ("engagement-shoot", "Engagement Shoot", "task"),
    ("album", "Album Delivery", "email"),
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
    # Emma completes the journey's first step: the event (the next step open) and Sarah's
    # milestone notification.
    (
        CLIENTS,
        "journey_step_completed",
        {
            "journey_id": str(RUN),
            "step_id": "consultation",
            "supplier_id": S,
            "couple_id": C,
            "progress_percentage": 33,
            "next_steps": [
                {"step_id": "engagement-shoot", "name": "Engagement Shoot", "kind": "task"}
            ],
            "journey_name": "Photography Journey",
            "step_name": "Consultation",
            "journey_status": "active",
            "completed_by": str(EMMA),
        },
    ),
    (
        INBOX,
        "notification_new",
        {
            "notification_id": "(derived from the completion time: differs)",
            "user_id": str(SARAH),
            "type": "journey_milestone",
            "title": "✅ Consultation — Completed",
            "message": "Emma completed Consultation. Next: Engagement Shoot",
            "action_url": f"/journeys/{RUN}",
            "priority": "medium",
            "read": False,
            "dismissed": False,
            "unread_count": 3,
        },
    ),
]
#: The journey as Sarah reads it afterwards (GET /api/wedsync/journeys/{id}), apart from when.
EXPECTED_JOURNEY: dict[str, Any] = {
    "journey_id": str(RUN),
    "journey_name": "Photography Journey",
    "supplier_id": S,
    "couple_id": C,
    "status": "active",
    "progress_percentage": 33,
    "steps": [
        {
            "step_id": "consultation",
            "name": "Consultation",
            "kind": "meeting",
            "status": "completed",
            "completed_by": str(EMMA),
        },
        {
            "step_id": "engagement-shoot",
            "name": "Engagement Shoot",
            "kind": "task",
            "status": "available",
            "completed_by": None,
        },
        {
            "step_id": "album",
            "name": "Album Delivery",
            "kind": "email",
            "status": "locked",
            "completed_by": None,
        },
    ],
    "next_steps": ["engagement-shoot"],
}


class Source(Protocol):
    """A running server over one backend, with the wedding set up, and its way of changing it."""

    server: RunningServer

    async def change_venue(self) -> None: ...

    async def answer_style(self) -> None: ...

    async def submit(self) -> None: ...

    async def complete_step(self) -> None: ...


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
        journeys = SqliteJourneyStore(directory.database)
        journeys.add_journey(str(JOURNEY), S, "Photography Journey", STEPS)
        assert journeys.start_journey(str(RUN), str(JOURNEY), C)
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

    async def complete_step(self) -> None:
        await self._call("POST", f"/api/wedsync/journeys/{RUN}/steps/consultation/complete")


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
            conn.execute(
                "INSERT INTO journeys (id, supplier_id, name)"
                " VALUES (%s, %s, 'Photography Journey')",
                (JOURNEY, PHOTOGRAPHER),
            )
            conn.execute(
                "INSERT INTO journey_instances"
                " (id, journey_id, supplier_id, couple_id, journey_name, current_step)"
                " VALUES (%s, %s, %s, %s, 'Photography Journey', %s)",
                (RUN, JOURNEY, PHOTOGRAPHER, COUPLE, STEPS[0][0]),
            )
            for position, (step_id, step_name, kind) in enumerate(STEPS):
                conn.execute(
                    "INSERT INTO journey_steps (journey_id, step_id, position, name, kind)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (JOURNEY, step_id, position, step_name, kind),
                )
                conn.execute(
                    "INSERT INTO journey_instance_steps (instance_id, step_id, status)"
                    " VALUES (%s, %s, %s)",
                    (RUN, step_id, "available" if position == 0 else "locked"),
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

    async def complete_step(self) -> None:
        step = (
            "UPDATE journey_instance_steps SET status = %s, completed_at = %s, completed_by = %s"
            " WHERE instance_id = %s AND step_id = %s"
        )
        await write(
            self.url,
            (step, ("completed", dt.datetime.now(dt.UTC), EMMA, RUN, "consultation")),
            (step, ("available", None, None, RUN, "engagement-shoot")),
            (
                "UPDATE journey_instances SET current_step = 'engagement-shoot',"
                " updated_at = now() WHERE id = %s",
                (RUN,),
            ),
        )


@contextlib.asynccontextmanager
async def _postgres(server_factory: ServerFactory) -> AsyncIterator[Postgres]:
    with migrated_database("wedsync_sources_test") as url:
        Postgres.seed(url)
        async with pg_server(server_factory, url) as server:
            changes = server.node.postgres_changes
            assert changes is not None
            # Changes committed from here on are captured (the slot exists and streams).
            await changes.capture.wait_streaming(timeout=20.0)
            yield Postgres(server, url)


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


def _is_instant(value: Any) -> bool:
    """ISO 8601 UTC to the millisecond ("2026-01-01T10:00:00.000Z")."""
    return isinstance(value, str) and value.endswith("Z") and len(value) == 24


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
    await source.complete_step()
    step = await _broadcasts(sarah, 2)
    got = _comparable(venue + answer + submission + step)

    expected = _comparable(EXPECTED)
    # Notification ids: derived from their cause, so the venue change's is the same whichever
    # source saw it (a write and its capture notify once); the submission's and the journey
    # milestone's include their time.
    for index in (1, 4, 6):
        expected[index][2]["notification_id"] = got[index][2]["notification_id"]
    assert got == expected
    uuid.UUID(got[1][2]["notification_id"])
    # Every instant is ISO 8601 UTC to the millisecond, whatever the source.
    for _, _, payload in venue + answer + submission + step:
        assert _is_instant(payload["timestamp"])

    # Sarah reads the journey as it now is, the same on both sources.
    async with http(source.server) as api:
        response = await api.get(
            f"/api/wedsync/journeys/{RUN}", headers=headers(source.server, str(SARAH))
        )
    assert response.status_code == 200, response.text
    journey = response.json()
    completed_at = [s.pop("completed_at") for s in journey["steps"]]
    assert journey == EXPECTED_JOURNEY
    assert _is_instant(completed_at[0]) and completed_at[1:] == [None, None]

    # A supplier not connected to the couple heard nothing of it.
    await assert_nothing_before_marker(source.server, rival, f"supplier:{RIVAL}:clients")


@pytest.mark.postgres
async def test_journeys_are_read_not_written_through_the_api_in_production_mode(
    postgres: Postgres,
) -> None:
    """The platform writes journeys on PostgreSQL: the journey write endpoints answer 503 (a
    second writer would announce each change twice); reading a journey works, and so does the
    scheduler's "task due" report, which writes no journey row (no change could announce it)."""
    server, steps = postgres.server, f"/api/wedsync/journeys/{RUN}/steps/consultation"
    emma = await joined(server, str(EMMA), f"user:{EMMA}")
    async with http(server) as api:
        refused = [
            await api.post(f"{steps}/complete", headers=headers(server, str(EMMA))),
            await api.post(
                f"{steps}/email-opened", headers=headers(server, "ops", role="service_role")
            ),
        ]
        due = await api.post(
            f"{steps}/task-due", headers=headers(server, "ops", role="service_role")
        )
        for response in refused:
            assert response.status_code == 503, response.text
            assert "platform writes the WedSync tables" in response.json()["message"]
        read = await api.get(f"/api/wedsync/journeys/{RUN}", headers=headers(server, str(EMMA)))
        by_rival = await api.get(
            f"/api/wedsync/journeys/{RUN}", headers=headers(server, str(RIVAL_USER))
        )
    assert due.status_code == 200, due.text
    notified = await emma.recv_until(lambda f: f.event == "broadcast", 10.0)
    assert notified.payload["event"] == "notification_new"
    assert notified.payload["payload"]["type"] == "task_due"
    assert read.status_code == 200, read.text
    assert [s["status"] for s in read.json()["steps"]] == ["available", "locked", "locked"]
    assert read.json()["progress_percentage"] == 0
    assert by_rival.status_code == 403


@pytest.mark.postgres
async def test_an_ended_connection_closes_the_suppliers_couple_channels(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """The platform ends Sarah's connection to James & Emma while she is joined to their
    channels: those channels are closed with a reason (and audited), her own dashboard channel
    stays, and the couple's next change reaches the couple but not her."""
    source = postgres
    # Every kind of channel the pair's connection allows, including those named by a wedding
    # or a journey rather than by the couple.
    couple_channels = [
        f"core_fields:{C}",
        f"wedding:{WEDDING}",
        f"journey:progress:{RUN}",
        f"collaboration:{S}:{C}",
    ]
    sarah = await joined(source.server, str(SARAH), CLIENTS, *couple_channels)
    # The couple's side of a form of Sarah's is allowed only while connected too.
    emma = await joined(source.server, str(EMMA), f"core_fields:{C}", f"form:{FORM}")

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
    form_closed = await emma.recv_until(lambda f: f.event == "phx_close", 10.0)
    assert form_closed.topic == f"realtime:form:{FORM}"
    assert any(
        r.name == "wedsync_realtime.audit" and "revoked" in r.getMessage() for r in caplog.records
    )

    await source.change_venue()
    change = await emma.recv_until(lambda f: f.event == "broadcast", 10.0)
    assert change.payload["event"] == "core_fields_updated"
    # Nothing about the couple reached Sarah, on any channel, before a marker on her dashboard.
    await assert_nothing_before_marker(source.server, sarah, CLIENTS)
