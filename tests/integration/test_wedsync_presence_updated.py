"""`presence_updated` over real sockets on the demo wedding: a supplier's dashboard hears its
client couple come online and leave, a couple hears its supplier go "appear offline", several
tabs are one status, and a supplier or couple outside the pair hears nothing (proved with a
marker published after the event, on the same socket)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.support.phoenix import PhoenixClient
from tests.support.wedsync_api import C, assert_nothing_before_marker, joined, next_event
from wedsync_realtime.wedding.demo import demo

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

LISA_CLIENTS = f"supplier:{demo.caterer}:clients"
RIVAL_CLIENTS = f"supplier:{demo.rival}:clients"
COUPLE = f"couple:{C}"
OTHER_COUPLE = f"couple:{demo.other_couple}"
EMMA = {"status": "online", "current_page": "/core-fields", "device_type": "desktop"}


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def tracking(
    server: RunningServer, user: str, channel: str, payload: dict[str, Any]
) -> PhoenixClient:
    """A new connection of `user` joined to `channel` with presence, tracking `payload`."""
    client = await server.client(user, app_metadata={"tier": "professional"})
    join_ref, reply = await client.join(channel, {"presence": {"key": user, "enabled": True}})
    assert reply.payload["status"] == "ok", reply.payload
    await track(client, channel, join_ref, payload)
    return client


async def track(
    client: PhoenixClient, channel: str, join_ref: str, payload: dict[str, Any]
) -> None:
    ref = client.next_ref()
    body = {"type": "presence", "event": "track", "payload": payload}
    await client.send(f"realtime:{channel}", "presence", body, ref, join_ref)
    reply = await client.reply_to(ref)
    assert reply.payload["status"] == "ok", reply.payload


async def test_a_suppliers_dashboard_hears_its_client_come_online_then_leave(
    server: RunningServer,
) -> None:
    lisa = await joined(server, "lisa", LISA_CLIENTS)
    rita = await joined(server, "rita", RIVAL_CLIENTS)
    emma = await tracking(server, "emma", COUPLE, EMMA)

    online = (await next_event(lisa, "presence_updated", LISA_CLIENTS))["payload"]
    assert {k: online[k] for k in EMMA} == EMMA
    assert online["user_id"] == "emma" and online["user_name"] == "Emma"
    assert online["user_type"] == "couple" and online["couple_id"] == C
    assert online["is_typing"] is False and online["timestamp"] and online["last_activity"]

    await emma.close()
    offline = (await next_event(lisa, "presence_updated", LISA_CLIENTS))["payload"]
    assert offline["user_id"] == "emma" and offline["status"] == "offline"
    assert offline["current_page"] is None and offline["device_type"] is None

    # The rival studio is not connected to James & Emma: neither event reached it.
    await assert_nothing_before_marker(server, rita, RIVAL_CLIENTS)


async def test_several_tabs_are_one_status_until_the_last_one_leaves(
    server: RunningServer,
) -> None:
    lisa = await joined(server, "lisa", LISA_CLIENTS)
    first = await tracking(server, "emma", COUPLE, EMMA)
    online = (await next_event(lisa, "presence_updated", LISA_CLIENTS))["payload"]
    assert online["status"] == "online"
    second = await tracking(server, "emma", COUPLE, EMMA)
    # The second tab sees the first one leave: the server has handled that close.
    await first.close()
    await second.recv_until(lambda f: f.event == "presence_diff" and bool(f.payload["leaves"]))
    await assert_nothing_before_marker(server, lisa, LISA_CLIENTS)
    await second.close()
    offline = (await next_event(lisa, "presence_updated", LISA_CLIENTS))["payload"]
    assert offline["status"] == "offline"


async def test_a_couple_hears_its_supplier_appear_offline_without_page(
    server: RunningServer,
) -> None:
    emma = await joined(server, "emma", COUPLE)
    olivia = await joined(server, "olivia", OTHER_COUPLE)
    lisa = await server.client("lisa", app_metadata={"tier": "professional"})
    channel = f"supplier:{demo.caterer}"
    join_ref, reply = await lisa.join(channel, {"presence": {"key": "lisa", "enabled": True}})
    assert reply.payload["status"] == "ok", reply.payload
    lisa_status = {"status": "online", "current_page": "/forms/catering", "device_type": "tablet"}
    await track(lisa, channel, join_ref, lisa_status)

    online = (await next_event(emma, "presence_updated", COUPLE))["payload"]
    assert online["user_id"] == "lisa" and online["user_type"] == "supplier"
    assert online["supplier_id"] == demo.caterer and online["status"] == "online"
    assert online["current_page"] == "/forms/catering" and online["device_type"] == "tablet"

    await track(lisa, channel, join_ref, {**lisa_status, "appear_offline": True})
    hidden = (await next_event(emma, "presence_updated", COUPLE))["payload"]
    assert hidden["user_id"] == "lisa" and hidden["status"] == "offline"
    assert hidden["current_page"] is None and hidden["device_type"] is None

    # Another couple, not Lisa's client, heard neither.
    await assert_nothing_before_marker(server, olivia, OTHER_COUPLE)
