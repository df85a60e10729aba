"""Supplier-couple connections changed at run time (issue 5: "A supplier never receives anything
about a couple it is not connected to"): when Emma ends Lisa's connection, Lisa's sockets lose
the couple's channels at once, keep their own, and hear nothing more about the couple; who may
set which status; the list of one's own connections; 503 in production mode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.support.cdc import migrated_database
from tests.support.pg_server import pg_server
from tests.support.phoenix import Frame, PhoenixClient
from tests.support.wedsync_api import (
    C,
    W,
    assert_nothing_before_marker,
    headers,
    http,
    joined,
    next_event,
    refused,
)
from wedsync_realtime.store.audit_sqlite import SqliteAuditLog
from wedsync_realtime.wedding.demo import demo

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

S = demo.caterer
CLIENTS = f"supplier:{S}:clients"
COLLABORATION = f"collaboration:{S}:{C}"
PAIR = f"/api/wedsync/connections/{S}/{C}"
REVOKED = "You no longer have permission to read from this Channel topic: "


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def put_status(
    server: RunningServer, status: Any, user: str = "emma", path: str = PAIR, **claims: Any
) -> Any:
    async with http(server) as api:
        return await api.put(path, json={"status": status}, headers=headers(server, user, **claims))


async def closed_channels(client: PhoenixClient, count: int) -> set[str]:
    """The next `count` channels the server closes on `client`, each after its system error
    naming it; no broadcast may come in between."""
    errors: set[str] = set()
    closed: set[str] = set()
    while len(closed) < count:
        frame: Frame = await client.recv_until(
            lambda f: f.event in ("system", "phx_close", "broadcast")
        )
        channel = frame.topic.removeprefix("realtime:")
        assert frame.event != "broadcast", f"{frame.payload} before the channels were closed"
        if frame.event == "system":
            assert frame.payload["status"] == "error"
            assert frame.payload["message"] == REVOKED + channel
            errors.add(channel)
        else:
            assert channel in errors, f"{channel} closed without its reason"
            closed.add(channel)
    return closed


async def test_ending_a_connection_closes_the_couples_channels_on_the_suppliers_sockets(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    couple_channels = {f"core_fields:{C}", f"wedding:{W}", COLLABORATION}
    lisa = await joined(server, "lisa", CLIENTS, *sorted(couple_channels), "user:lisa")
    emma = await joined(server, "emma", f"couple:{C}", f"core_fields:{C}", COLLABORATION)

    response = await put_status(server, "ended")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["supplier_id"], body["couple_id"], body["status"]) == (S, C, "ended")
    assert body["updated_by"] == "emma" and body["updated_at"].endswith("Z")

    # Lisa: the couple's channels are closed with the reason, before anything else is sent.
    assert await closed_channels(lisa, len(couple_channels)) == couple_channels
    # Her own dashboard stays, and hears about the change.
    updated = await next_event(lisa, "connection_updated", CLIENTS)
    assert updated["payload"] == {
        "supplier_id": S,
        "couple_id": C,
        "status": "ended",
        "previous_status": "active",
        "updated_by": "emma",
        "timestamp": body["updated_at"],
    }
    # Emma loses the collaboration channel with Lisa's Catering; her own channels stay.
    assert await closed_channels(emma, 1) == {COLLABORATION}
    on_couple = await next_event(emma, "connection_updated", f"couple:{C}")
    assert on_couple["payload"] == updated["payload"]

    # The revocation is in the audit log (the `wedsync_realtime.audit` logger and the table).
    assert any(
        r.name == "wedsync_realtime.audit"
        and r.getMessage().startswith(f"revoked subscribe on core_fields:{C} from user lisa")
        for r in caplog.records
    )
    audit = server.node.audit
    assert audit is not None and await audit.flush()
    assert isinstance(audit.log, SqliteAuditLog)
    revoked = await audit.log.events(event_type="access_revoked")
    assert {(r.channel, r.user_id) for r in revoked} == {
        *((channel, "lisa") for channel in couple_channels),
        (COLLABORATION, "emma"),
    }
    assert all("rule" in r.payload["reason"] for r in revoked)
    [announced] = await audit.log.events(event_type="connection_updated")
    assert announced.broadcast_count == 2 and announced.delivered_count == 2

    # Emma's next change reaches Emma's channels, and nothing reaches Lisa.
    async with http(server) as api:
        change = await api.patch(
            f"/api/wedsync/couples/{C}/core-fields",
            json={"changes": {"guest_count": {"value": 150, "version": 1}}},
            headers=headers(server, "emma"),
        )
    assert change.status_code == 200, change.text
    seen = await next_event(emma, "core_fields_updated", f"core_fields:{C}")
    assert seen["payload"]["new_value"] == 150
    await assert_nothing_before_marker(server, lisa, CLIENTS)

    # Nor may she join again, on this socket or another...
    for channel in couple_channels:
        assert "Unauthorized" in await refused(lisa, channel)
    # ...until Emma connects them again.
    response = await put_status(server, "active")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    back = await next_event(lisa, "connection_updated", CLIENTS)
    assert (back["payload"]["status"], back["payload"]["previous_status"]) == ("active", "ended")
    for channel in sorted(couple_channels):
        _, reply = await lisa.join(channel)
        assert reply.payload["status"] == "ok", (channel, reply.payload)


async def test_the_supplier_may_pause_but_not_reactivate(server: RunningServer) -> None:
    lisa = await joined(server, "lisa", CLIENTS, f"core_fields:{C}")
    paused = await put_status(server, "paused", "lisa")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["updated_by"]) == ("paused", "lisa")
    assert await closed_channels(lisa, 1) == {f"core_fields:{C}"}
    event = await next_event(lisa, "connection_updated", CLIENTS)
    assert event["payload"]["updated_by"] == "lisa"

    again = await put_status(server, "active", "lisa")
    assert again.status_code == 403, again.text
    assert again.json()["field"] == "status"
    assert "invitation" in again.json()["message"]
    async with http(server) as api:
        listed = await api.get("/api/wedsync/connections", headers=headers(server, "lisa"))
    assert listed.status_code == 200, listed.text
    assert [(c["couple_id"], c["status"]) for c in listed.json()["connections"]] == [(C, "paused")]
    assert "Unauthorized" in await refused(lisa, f"core_fields:{C}")
    await assert_nothing_before_marker(server, lisa, CLIENTS)  # the refusal announced nothing


@pytest.mark.parametrize("user", ["rita", "sarah", "olivia"])
async def test_others_may_not_touch_the_pair(server: RunningServer, user: str) -> None:
    """The rival studio, another supplier of the couple, another couple: 403, nothing changes."""
    lisa = await joined(server, "lisa", CLIENTS, f"core_fields:{C}")
    for status in ("ended", "active"):
        response = await put_status(server, status, user)
        assert response.status_code == 403, response.text
    await assert_nothing_before_marker(server, lisa, CLIENTS)
    await assert_nothing_before_marker(server, lisa, f"core_fields:{C}")


async def test_operators_may_set_any_status(server: RunningServer) -> None:
    by_service = await put_status(server, "ended", "ops", role="service_role")
    assert by_service.status_code == 200, by_service.text
    assert by_service.json()["updated_by"] == "ops"
    by_admin = await put_status(server, "active", "admin")
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["status"] == "active"


async def test_bad_requests_name_what_is_wrong(server: RunningServer) -> None:
    bad = await put_status(server, "deleted")
    assert bad.status_code == 422, bad.text
    assert bad.json()["field"] == "status"
    async with http(server) as api:
        missing = await api.put(PAIR, json={}, headers=headers(server, "emma"))
        anonymous = await api.put(PAIR, json={"status": "ended"})
        stranger = await api.put(
            PAIR, json={"status": "ended"}, headers=headers(server, "no-profile")
        )
    assert missing.status_code == 422 and missing.json()["field"] == "status"
    assert anonymous.status_code == 401
    assert stranger.status_code == 403

    unknown_couple = await put_status(server, "ended", path=f"/api/wedsync/connections/{S}/c-x")
    assert unknown_couple.status_code == 404, unknown_couple.text
    assert unknown_couple.json()["field"] == "couple_id"
    unknown_supplier = await put_status(server, "ended", path=f"/api/wedsync/connections/s-x/{C}")
    assert unknown_supplier.status_code == 404
    assert unknown_supplier.json()["field"] == "supplier_id"
    # Pausing a pair that was never connected: not found; inviting that supplier creates it.
    rival_pair = f"/api/wedsync/connections/{demo.rival}/{C}"
    assert (await put_status(server, "paused", path=rival_pair)).status_code == 404
    invited = await put_status(server, "active", path=rival_pair)
    assert invited.status_code == 200, invited.text
    rita = await joined(server, "rita", f"core_fields:{C}")
    await assert_nothing_before_marker(server, rita, f"core_fields:{C}")


async def test_each_caller_lists_its_own_connections(server: RunningServer) -> None:
    async with http(server) as api:

        async def listed(user: str, **params: str) -> Any:
            response = await api.get(
                "/api/wedsync/connections",
                params=params,
                headers=headers(
                    server, user, **({"role": "service_role"} if user == "ops" else {})
                ),
            )
            return response

        emma = await listed("emma")
        assert emma.status_code == 200, emma.text
        assert [(c["supplier_id"], c["status"]) for c in emma.json()["connections"]] == [
            (s, "active") for s in sorted(demo.connected_suppliers)
        ]
        lisa = (await listed("lisa")).json()["connections"]
        assert [(c["supplier_id"], c["couple_id"]) for c in lisa] == [(S, C)]
        assert (await listed("lisa", couple_id=demo.other_couple)).json()["connections"] == []
        assert (await listed("lisa", supplier_id=demo.rival)).status_code == 403
        assert (await listed("olivia", couple_id=C)).status_code == 403
        assert (await listed("admin")).status_code == 422
        other = (await listed("admin", couple_id=demo.other_couple)).json()["connections"]
        assert [c["supplier_id"] for c in other] == [demo.rival]
        by_service = await listed("ops", supplier_id=S)
        assert [c["couple_id"] for c in by_service.json()["connections"]] == [C]


@pytest.mark.postgres
async def test_production_mode_answers_503(server_factory: ServerFactory) -> None:
    """On PostgreSQL the platform writes supplier_client_connections (change capture closes
    the channels it no longer allows): the endpoints answer 503."""
    with migrated_database("wedsync_connections_test") as url:
        async with pg_server(server_factory, url) as server:
            async with http(server) as api:
                put = await api.put(
                    PAIR,
                    json={"status": "ended"},
                    headers=headers(server, "ops", role="service_role"),
                )
                listed = await api.get(
                    "/api/wedsync/connections",
                    params={"couple_id": C},
                    headers=headers(server, "ops", role="service_role"),
                )
            assert put.status_code == 503, put.text
            assert "platform writes the WedSync tables" in put.json()["message"]
            assert listed.status_code == 503, listed.text
            assert "supplier_client_connections" in listed.json()["message"]
