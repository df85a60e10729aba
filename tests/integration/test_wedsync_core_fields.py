"""Core Fields end to end (issue 5; SPEC.md story 1): Emma changes the venue over REST and every
connected supplier's socket hears it, with the venue-dependent fields filled in; a disconnected
or rival supplier hears nothing and is refused the couple's channels; stale writes are refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import RunningServer
from tests.support.wedsync_api import (
    C,
    W,
    assert_nothing_before_marker,
    directory_of,
    headers,
    http,
    joined,
    next_event,
    on_each,
    refused,
)
from wedsync_realtime.wedding.demo import demo

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

VENUE_CHANGE = {"changes": {"venue_name": {"value": "Garden Manor", "version": 1}}}

#: One user of each of James & Emma's five suppliers.
SUPPLIER_USERS = {
    "sarah": demo.photographer,
    "lisa": demo.caterer,
    "mike": demo.venue_owner,
    "petra": demo.florist,
    "pat": demo.planner,
}


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def test_a_venue_change_reaches_every_connected_supplier_with_the_filled_fields(
    server: RunningServer,
) -> None:
    sarah = await joined(
        server, "sarah", f"supplier:{demo.photographer}:clients", f"core_fields:{C}", "user:sarah"
    )
    others = {
        user: await joined(server, user, f"supplier:{supplier}:clients", f"user:{user}")
        for user, supplier in SUPPLIER_USERS.items()
        if user != "sarah"
    }
    async with http(server) as api:
        response = await api.patch(
            f"/api/wedsync/couples/{C}/core-fields",
            json=VENUE_CHANGE,
            headers=headers(server, "emma"),
        )
    assert response.status_code == 200, response.text
    updated = response.json()["updated"]
    assert updated["venue_name"]["value"] == "Garden Manor"
    assert updated["venue_name"]["version"] == 2
    assert updated["venue_address"]["value"] == "Manor Lane, Stow-on-the-Wold GL54 1AA"
    assert updated["venue_capacity"]["value"] == 120

    clients_channel = f"supplier:{demo.photographer}:clients"
    both = await on_each(sarah, "core_fields_updated", [clients_channel, f"core_fields:{C}"])
    on_clients, on_fields = both[clients_channel], both[f"core_fields:{C}"]
    payload = on_clients["payload"]
    assert payload["couple_id"] == C
    assert payload["field_name"] == "venue_name"
    assert (payload["old_value"], payload["new_value"]) == ("Grand Hotel", "Garden Manor")
    assert payload["updated_by"] == "emma"
    assert sorted(payload["auto_populated_fields"]) == ["venue_address", "venue_capacity"]
    assert payload["auto_populated_values"]["venue_capacity"]["value"] == 120
    assert payload["timestamp"].endswith("Z")
    assert on_fields["payload"] == payload
    # One event, one id on every channel it goes out on: a client can drop the copy.
    assert on_clients["meta"]["id"] == on_fields["meta"]["id"]

    notice = await next_event(sarah, "notification_new", "user:sarah")
    assert notice["payload"]["message"] == "Emma changed the venue to Garden Manor"
    assert notice["payload"]["priority"] == "high"
    for user, client in others.items():
        supplier = SUPPLIER_USERS[user]
        event = await next_event(client, "core_fields_updated", f"supplier:{supplier}:clients")
        assert event["payload"]["new_value"] == "Garden Manor"
        notice = await next_event(client, "notification_new", f"user:{user}")
        assert "Garden Manor" in notice["payload"]["message"]


async def test_a_rival_supplier_is_refused_and_hears_nothing(server: RunningServer) -> None:
    rita = await joined(server, "rita", f"supplier:{demo.rival}:clients", "user:rita")
    for channel in (
        f"core_fields:{C}",
        f"wedding:{W}",
        f"couple:{C}",
        f"supplier:{demo.photographer}:clients",
    ):
        assert "Unauthorized" in await refused(rita, channel)
    sarah = await joined(server, "sarah", f"core_fields:{C}")
    async with http(server) as api:
        response = await api.patch(
            f"/api/wedsync/couples/{C}/core-fields",
            json=VENUE_CHANGE,
            headers=headers(server, "emma"),
        )
        assert response.status_code == 200
        # Nor may she read the couple's fields over REST.
        read = await api.get(
            f"/api/wedsync/couples/{C}/core-fields", headers=headers(server, "rita")
        )
        assert read.status_code == 403
    await next_event(sarah, "core_fields_updated", f"core_fields:{C}")
    await assert_nothing_before_marker(server, rita, "user:rita")


async def test_a_supplier_disconnected_from_the_couple_hears_nothing_and_is_refused(
    server: RunningServer,
) -> None:
    lisa = await joined(
        server, "lisa", f"supplier:{demo.caterer}:clients", f"core_fields:{C}", "user:lisa"
    )
    directory_of(server).disconnect(demo.caterer, C)
    # A new join is refused now. (A membership made before the connection ended lasts until
    # it is left: revoking live memberships when a fact changes needs an engine hook.)
    other = await server.connect(server.token("lisa", app_metadata={"tier": "professional"}))
    assert "Unauthorized" in await refused(other, f"core_fields:{C}")
    assert "Unauthorized" in await refused(other, f"wedding:{W}")
    await lisa.send(f"realtime:core_fields:{C}", "phx_leave", {}, lisa.next_ref(), None)
    # The couple's events no longer name her supplier channel nor notify her.
    sarah = await joined(server, "sarah", f"supplier:{demo.photographer}:clients")
    async with http(server) as api:
        response = await api.patch(
            f"/api/wedsync/couples/{C}/core-fields",
            json=VENUE_CHANGE,
            headers=headers(server, "emma"),
        )
    assert response.status_code == 200
    await next_event(sarah, "core_fields_updated", f"supplier:{demo.photographer}:clients")
    await assert_nothing_before_marker(server, lisa, "user:lisa")


async def test_a_stale_version_is_refused_naming_the_current_value(server: RunningServer) -> None:
    async with http(server) as api:
        url = f"/api/wedsync/couples/{C}/core-fields"
        first = await api.put(
            f"{url}/guest_count", json={"value": 150, "version": 1}, headers=headers(server, "emma")
        )
        assert first.status_code == 200, first.text
        stale = await api.patch(
            url,
            json={"changes": {"guest_count": {"value": 90, "version": 1}}},
            headers=headers(server, "james"),
        )
        assert stale.status_code == 409
        body = stale.json()
        assert body["field"] == "guest_count"
        assert body["current"]["value"] == 150 and body["current"]["version"] == 2
        assert body["expected_version"] == 1
        assert "150" in body["message"]
        fields = (await api.get(url, headers=headers(server, "james"))).json()["fields"]
        assert fields["guest_count"]["value"] == 150  # no silent overwrite


async def test_only_the_couple_writes_and_bad_bodies_name_the_field(server: RunningServer) -> None:
    url = f"/api/wedsync/couples/{C}/core-fields"
    async with http(server) as api:
        by_supplier = await api.patch(url, json=VENUE_CHANGE, headers=headers(server, "sarah"))
        assert by_supplier.status_code == 403
        assert "message" in by_supplier.json()
        no_version = await api.patch(
            url, json={"changes": {"guest_count": {"value": 3}}}, headers=headers(server, "emma")
        )
        assert no_version.status_code == 422
        assert no_version.json()["field"] == "changes.guest_count.version"
        bad_value = await api.patch(
            url,
            json={"changes": {"guest_count": {"value": "lots", "version": 1}}},
            headers=headers(server, "emma"),
        )
        assert bad_value.status_code == 422
        assert bad_value.json()["field"] == "guest_count"
        unknown_field = await api.put(
            f"{url}/shoe_size", json={"value": 9, "version": 0}, headers=headers(server, "emma")
        )
        assert unknown_field.status_code == 422 and unknown_field.json()["field"] == "shoe_size"
        no_token = await api.get(url)
        assert no_token.status_code == 401
        no_profile = await api.patch(url, json=VENUE_CHANGE, headers=headers(server, "stranger"))
        assert no_profile.status_code == 403
        assert "profile" in no_profile.json()["message"]


async def test_a_supplier_reads_the_fields_of_a_connected_couple(server: RunningServer) -> None:
    async with http(server) as api:
        response = await api.get(
            f"/api/wedsync/couples/{C}/core-fields", headers=headers(server, "mike")
        )
    assert response.status_code == 200
    fields = response.json()["fields"]
    assert fields["venue_name"] == {
        "field_name": "venue_name",
        "value": "Grand Hotel",
        "version": 1,
        "updated_by": "emma",
        "updated_at": fields["venue_name"]["updated_at"],
    }
    assert fields["timeline"]["version"] == 0
