"""Issue 5 end to end with the official clients (SPEC.md stories 1 and 5).

"Emma changes the venue; all five suppliers' clients receive `core_fields_updated` with the
auto-populated fields; the notification arrives on each `user:` channel; reading it on one
connection updates the count on another."

A server with the demo wedding loaded (James & Emma, their five suppliers, the rival supplier of
another couple) and the tokens the demo prints (`demo_tokens`: tiers from the suppliers' plans).
Every client is an unchanged official client: `@supabase/realtime-js` through the harness of
`test_realtime_js.py` (vsn 2.0.0 and 1.0.0), and `realtime` (PyPI) through the fixture of
`test_realtime_py.py`. Nothing is mocked: Emma writes over the REST write API, the server's
domain router publishes, the clients report what reached their callbacks and their sockets.

Events are awaited, never slept for. "Nothing arrived" (for the rival supplier) is proved with a
marker published after the change on the same channels: the server writes each connection's
frames in order, and the write API answers only once the change has been handed to every
subscriber, so a frame about the change would come before the marker.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from realtime import RealtimeSubscribeStates

from tests.conformance import test_realtime_js, test_realtime_py
from tests.conformance.test_realtime_js import JsClient, JsFactory
from tests.conformance.test_realtime_py import Clients, broadcasts, subscribe
from tests.conftest import RunningServer
from tests.support.wedsync_api import directory_of, http
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.demo_cli import demo_tokens

pytestmark = pytest.mark.conformance

#: The harnesses' fixtures: `js` (realtime-js clients; skipped without Node, an error on CI)
#: and `clients` (realtime-py clients).
js = test_realtime_js.js
clients = test_realtime_py.clients

ServerFactory = Callable[..., Awaitable[RunningServer]]
Payload = dict[str, Any]

#: James & Emma.
C = demo.couple

#: A user of each of James & Emma's five suppliers, and the supplier.
SUPPLIERS = {
    "sarah": demo.photographer,
    "lisa": demo.caterer,
    "mike": demo.venue_owner,
    "petra": demo.florist,
    "pat": demo.planner,
}
#: Rita's studio works for Olivia & Noah, not for James & Emma.
RIVAL_USER, RIVAL = "rita", demo.rival
#: The supplier user who keeps two tabs open.
TABS_USER = "lisa"

#: The venue before, and the directory venue Emma picks (with what the directory knows of it).
OLD_VENUE = "Grand Hotel"
VENUE = "Garden Manor"
VENUE_ADDRESS = "Manor Lane, Stow-on-the-Wold GL54 1AA"
VENUE_CAPACITY = 120

#: SPEC.md "Events": the payload of `core_fields_updated` and of the notification events.
CORE_FIELDS_SPEC = {
    "couple_id",
    "field_name",
    "old_value",
    "new_value",
    "updated_by",
    "timestamp",
    "auto_populated_fields",
}
NOTIFICATION_SPEC = {
    "notification_id",
    "user_id",
    "title",
    "message",
    "action_url",
    "priority",
    "timestamp",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

#: Catalog channels are private channels (the catalog decides them whatever the flag says).
PRIVATE: dict[str, Any] = {"private": True}


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


def tokens_of(server: RunningServer) -> dict[str, str]:
    """The token `wedsync-realtime demo` prints for each demo user, signed for `server`."""
    database = directory_of(server).database
    return {t.user.user_id: t.token for t in demo_tokens(server.settings, database)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def change_venue(server: RunningServer, emma_token: str) -> Payload:
    """Emma picks the directory venue over the REST write API; the answer's `updated` fields."""
    async with http(server) as api:
        response = await api.patch(
            f"/api/wedsync/couples/{C}/core-fields",
            json={"changes": {"venue_name": {"value": VENUE, "version": 1}}},
            headers=bearer(emma_token),
        )
    assert response.status_code == 200, response.text
    updated: Payload = response.json()["updated"]
    assert {k: (v["value"], v["version"]) for k, v in updated.items()} == {
        "venue_name": (VENUE, 2),
        "venue_address": (VENUE_ADDRESS, 2),
        "venue_capacity": (VENUE_CAPACITY, 2),
    }
    return updated


def assert_venue_change(payload: Payload) -> None:
    """The `core_fields_updated` of Emma's venue change, as every subscriber must get it."""
    assert set(payload) >= CORE_FIELDS_SPEC, payload
    assert payload["couple_id"] == C
    assert payload["field_name"] == "venue_name"
    assert (payload["old_value"], payload["new_value"]) == (OLD_VENUE, VENUE)
    assert payload["updated_by"] == "emma"
    assert payload["updated_by_name"] == "Emma"
    assert payload["version"] == 2
    assert TIMESTAMP.fullmatch(payload["timestamp"]), payload["timestamp"]
    # The venue-dependent fields, filled from the venue directory, ride on the venue's event.
    assert sorted(payload["auto_populated_fields"]) == ["venue_address", "venue_capacity"]
    assert payload["auto_populated_values"] == {
        "venue_address": {"value": VENUE_ADDRESS, "version": 2},
        "venue_capacity": {"value": VENUE_CAPACITY, "version": 2},
    }


def assert_venue_notice(payload: Payload, user: str) -> None:
    """The `notification_new` each supplier user gets about the venue change."""
    assert set(payload) >= NOTIFICATION_SPEC, payload
    assert payload["user_id"] == user
    assert payload["type"] == "core_field_change"
    assert payload["title"] == "James & Emma: Venue changed"
    assert payload["message"] == f"Emma changed the venue to {VENUE}"
    assert payload["priority"] == "high"
    assert payload["action_url"] == f"/clients/{C}/core-fields"
    assert (payload["read"], payload["dismissed"]) == (False, False)
    assert payload["unread_count"] == 1
    assert TIMESTAMP.fullmatch(payload["timestamp"]), payload["timestamp"]


async def broadcast(client: JsClient, channel: str, event: str, **fields: Any) -> Payload:
    """The next broadcast `event` on `channel` whose payload has `fields`: the message."""

    def wanted(e: dict[str, Any]) -> bool:
        message = e["message"]
        return message["event"] == event and all(
            message["payload"].get(k) == v for k, v in fields.items()
        )

    got = await client.wait_for("broadcast", channel=channel, where=wanted)
    message: Payload = got["message"]
    return message


def assert_on_the_wire(client: JsClient, vsn: str, channel: str, message: Payload) -> None:
    """The message came in as the text frame of the protocol version the client speaks."""
    topic = f"realtime:{channel}"
    if vsn == "2.0.0":
        expected: Any = [None, None, topic, "broadcast", message]
    else:
        expected = {"topic": topic, "event": "broadcast", "payload": message, "ref": None}
    assert expected in client.frames("in"), client.transcript()


async def publish_markers(server: RunningServer, *channels: str) -> None:
    """One `marker` broadcast on each channel, published by an operator."""
    messages = [{"topic": c, "event": "marker", "payload": {}, "private": True} for c in channels]
    async with http(server) as api:
        response = await api.post(
            "/api/broadcast",
            json={"messages": messages},
            headers=bearer(server.token("ops", role="service_role")),
        )
    assert response.status_code == 202, response.text


# -- realtime-js -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"], ids=["vsn-2.0.0", "vsn-1.0.0"])
async def test_venue_change_reaches_every_supplier_and_the_read_updates_every_tab(
    server: RunningServer, js: JsFactory, vsn: str
) -> None:
    tokens = tokens_of(server)
    supplier_channels = {user: f"supplier:{s}:clients" for user, s in SUPPLIERS.items()}
    rival_channels = (f"supplier:{RIVAL}:clients", f"user:{RIVAL_USER}")

    # Every supplier's dashboard: its clients channel and its user's notification channel.
    suppliers: dict[str, JsClient] = {}
    for user in SUPPLIERS:
        client = await js(server, user, vsn=vsn, token=tokens[user])
        await client.join(supplier_channels[user], PRIVATE)
        await client.join(f"user:{user}", PRIVATE)
        suppliers[user] = client
    rita = await js(server, RIVAL_USER, vsn=vsn, token=tokens[RIVAL_USER])
    for channel in rival_channels:
        await rita.join(channel, PRIVATE)
    emma = await js(server, "emma", vsn=vsn, token=tokens["emma"])
    await emma.join(f"core_fields:{C}", PRIVATE)

    await change_venue(server, tokens["emma"])

    # Emma's own view of the couple's fields, and every supplier's clients channel.
    seen_by_emma = await broadcast(emma, f"core_fields:{C}", "core_fields_updated")
    assert_venue_change(seen_by_emma["payload"])
    ids = {seen_by_emma["meta"]["id"]}
    for user, client in suppliers.items():
        channel = supplier_channels[user]
        message = await broadcast(client, channel, "core_fields_updated")
        assert_venue_change(message["payload"])
        assert message["payload"] == seen_by_emma["payload"]
        assert_on_the_wire(client, vsn, channel, message)
        ids.add(message["meta"]["id"])
    # One change, one message id on every channel it went out on (clients dedupe by id).
    assert len(ids) == 1

    # Each supplier user's bell: a notification naming Emma and the venue.
    notices: dict[str, Payload] = {}
    for user, client in suppliers.items():
        message = await broadcast(client, f"user:{user}", "notification_new")
        assert_venue_notice(message["payload"], user)
        assert_on_the_wire(client, vsn, f"user:{user}", message)
        notices[user] = message["payload"]
    assert len({n["notification_id"] for n in notices.values()}) == len(SUPPLIERS)

    # Rita's studio is not connected to James & Emma: nothing about the change reached her
    # socket before the markers published after it.
    await publish_markers(server, *rival_channels)
    for channel in rival_channels:
        await broadcast(rita, channel, "marker")
    assert [(e["channel"], e["message"]["event"]) for e in rita.seen("broadcast")] == [
        (channel, "marker") for channel in rival_channels
    ]
    leaked = [
        e["data"]
        for e in rita.seen("frame", dir="in")
        if any(s in e["data"] for s in (C, VENUE, "core_fields_updated", "notification_new"))
    ]
    assert leaked == []

    # Lisa opens a second tab; both tabs follow her bell.
    tab1 = suppliers[TABS_USER]
    tab2 = await js(server, f"{TABS_USER}-tab2", vsn=vsn, token=tokens[TABS_USER])
    await tab2.join(f"user:{TABS_USER}", PRIVATE)
    async with http(server) as api:
        invited = await api.post(
            "/api/wedsync/notifications",
            json={
                "user_id": TABS_USER,
                "type": "invitation",
                "title": "New invitation from James & Emma",
                "message": "James & Emma invited you to their wedding team",
            },
            headers=bearer(server.token("ops", role="service_role")),
        )
        assert invited.status_code == 201, invited.text
        invitation = invited.json()["notification"]["notification_id"]
        for tab in (tab1, tab2):
            new = await broadcast(
                tab, f"user:{TABS_USER}", "notification_new", notification_id=invitation
            )
            assert new["payload"]["unread_count"] == 2

        # She reads the venue notification (in one tab: over REST with her token) ...
        venue_notice = notices[TABS_USER]["notification_id"]
        read = await api.post(
            f"/api/wedsync/notifications/{venue_notice}/read", headers=bearer(tokens[TABS_USER])
        )
        assert read.status_code == 200, read.text
        assert read.json()["notification"]["read"] is True
        assert read.json()["unread_count"] == 1

        # ... and both tabs get the read event with the new count, the count REST gives.
        for tab in (tab1, tab2):
            event = await broadcast(
                tab, f"user:{TABS_USER}", "notification_read", notification_id=venue_notice
            )
            assert set(event["payload"]) >= NOTIFICATION_SPEC
            assert event["payload"]["user_id"] == TABS_USER
            assert (event["payload"]["read"], event["payload"]["unread_count"]) == (True, 1)
            assert_on_the_wire(tab, vsn, f"user:{TABS_USER}", event)
        count = await api.get(
            "/api/wedsync/notifications/unread-count", headers=bearer(tokens[TABS_USER])
        )
        assert count.status_code == 200
        assert count.json() == {"unread_count": 1}

    for client in [*suppliers.values(), rita, emma, tab2]:
        assert client.seen("status", status="CHANNEL_ERROR") == []
        assert client.seen("status", status="CLOSED") == []


# -- realtime-py -----------------------------------------------------------------------------------


async def test_python_client_of_a_supplier_receives_the_venue_change(
    server: RunningServer, clients: Clients
) -> None:
    tokens = tokens_of(server)
    user, supplier = "mike", SUPPLIERS["mike"]
    py = await clients.connect(token=tokens[user])
    config = {"config": {"broadcast": {"self": False, "ack": False}, **PRIVATE}}
    clients_channel = py.client.channel(f"supplier:{supplier}:clients", config)
    user_channel = py.client.channel(f"user:{user}", config)
    changes = broadcasts(clients_channel, "core_fields_updated")
    notices = broadcasts(user_channel, "notification_new")
    for channel in (clients_channel, user_channel):
        states = await subscribe(channel)
        assert states.items == [(RealtimeSubscribeStates.SUBSCRIBED, None)]

    await change_venue(server, tokens["emma"])

    change = await changes.wait_for()
    assert change["event"] == "core_fields_updated"
    assert_venue_change(change["payload"])
    notice = await notices.wait_for()
    assert notice["event"] == "notification_new"
    assert_venue_notice(notice["payload"], user)
    # What the socket carried (1.0.0 JSON), as realtime-py logged it.
    frame = await py.wire.wait_for(
        lambda f: (
            f["event"] == "broadcast" and f["topic"] == f"realtime:supplier:{supplier}:clients"
        )
    )
    assert frame["payload"]["payload"] == change["payload"]
    assert frame["ref"] is None
