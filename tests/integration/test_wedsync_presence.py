"""Presence, the WedSync way, over real sockets and REST on the demo wedding: statuses that
decay on the server (small thresholds, diffs awaited as they come), "appear offline", presence
and last seen over REST with the privacy rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.support.phoenix import Frame, PhoenixClient
from tests.support.wedsync_api import W, headers, http
from wedsync_realtime.settings import Settings, SettingsError

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

WEDDING = f"wedding:{W}"
LISA = {
    "status": "online",
    "user_name": "Lisa's Catering",
    "user_type": "supplier",
    "current_page": "/forms/catering",
    "device_type": "desktop",
    "is_typing": False,
}


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    # Long enough that nothing decays before the test looks; the decay test uses its own.
    return await server_factory(demo=True)


async def present(server: RunningServer, user: str) -> PhoenixClient:
    """`user` joined to the wedding channel with presence, its `presence_state` read."""
    client = await server.client(user, app_metadata={"tier": "professional"})
    _, reply = await client.join(WEDDING, {"presence": {"key": user, "enabled": True}})
    assert reply.payload["status"] == "ok", reply.payload
    await client.recv_until(lambda f: f.event == "presence_state")
    return client


async def track(client: PhoenixClient, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Track `payload` on the wedding channel (the client's only join: join_ref "1"); returns
    the presence diffs the client got before the reply (its own, published first)."""
    ref = client.next_ref()
    body = {"type": "presence", "event": "track", "payload": payload}
    await client.send(f"realtime:{WEDDING}", "presence", body, ref, "1")
    diffs = []
    while True:
        frame = await client.recv()
        if frame.event == "presence_diff":
            diffs.append(frame.payload)
        elif frame.event == "phx_reply" and frame.ref == ref:
            assert frame.payload["status"] == "ok", frame.payload
            return diffs


async def next_diff(client: PhoenixClient, timeout: float = 5.0) -> dict[str, Any]:
    frame: Frame = await client.recv_until(lambda f: f.event == "presence_diff", timeout)
    payload: dict[str, Any] = frame.payload
    return payload


def status_joined(diff: dict[str, Any], key: str) -> str:
    [meta] = diff["joins"][key]["metas"]
    status: str = meta["status"]
    return status


async def test_statuses_decay_on_the_server_and_arrive_as_diffs(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(
        demo=True,
        presence_idle_after_s=0.2,
        presence_away_after_s=0.4,
        presence_offline_after_s=0.6,
    )
    emma = await present(server, "emma")
    lisa = await present(server, "lisa")
    await track(lisa, LISA)
    first = await next_diff(emma)
    assert status_joined(first, "lisa") == "online"
    previous = first["joins"]["lisa"]["metas"][0]
    for expected in ("idle", "away", "offline"):
        diff = await next_diff(emma)
        assert diff["leaves"] == {"lisa": {"metas": [previous]}}
        [meta] = diff["joins"]["lisa"]["metas"]
        assert meta["status"] == expected
        assert meta["phx_ref_prev"] == previous["phx_ref"]
        assert meta["current_page"] == "/forms/catering" and meta["last_activity"]
        previous = meta
    # Coming back is a new track: online again, at once.
    await track(lisa, LISA)
    assert status_joined(await next_diff(emma), "lisa") == "online"


async def test_appear_offline_hides_lisa_from_emma_but_not_from_herself(
    server: RunningServer,
) -> None:
    emma = await present(server, "emma")
    lisa = await present(server, "lisa")
    await track(lisa, LISA)
    shown = (await next_diff(emma))["joins"]["lisa"]["metas"][0]
    [own] = await track(lisa, {**LISA, "appear_offline": True})
    assert own["leaves"] == {"lisa": {"metas": [shown]}}
    assert await next_diff(emma) == {"joins": {}, "leaves": {"lisa": {"metas": [shown]}}}
    assert own["joins"]["lisa"]["metas"][0]["appear_offline"] is True
    # Someone joining now does not see her; her own second tab does.
    sarah = await server.client("sarah", app_metadata={"tier": "professional"})
    await sarah.join(WEDDING, {"presence": {"key": "sarah", "enabled": True}})
    state = await sarah.recv_until(lambda f: f.event == "presence_state")
    assert "lisa" not in state.payload
    tab = await server.client("lisa", app_metadata={"tier": "professional"})
    await tab.join(WEDDING, {"presence": {"key": "lisa-tab", "enabled": True}})
    own_state = await tab.recv_until(lambda f: f.event == "presence_state")
    assert "lisa" in own_state.payload
    async with http(server) as api:
        seen_by_emma = await api.get(
            "/api/realtime/presence", params={"channel": WEDDING}, headers=headers(server, "emma")
        )
        seen_by_lisa = await api.get("/api/realtime/presence", headers=headers(server, "lisa"))
    assert seen_by_emma.status_code == 200, seen_by_emma.text
    assert [c["user_id"] for c in seen_by_emma.json()["collaborator_presence"]] == []
    assert seen_by_lisa.json()["user_presence"]["appear_offline"] is True
    # Showing herself again is a join for Emma.
    await track(lisa, LISA)
    back = await next_diff(emma)
    assert back["leaves"] == {} and status_joined(back, "lisa") == "online"


async def test_rest_presence_follows_the_privacy_rule(server: RunningServer) -> None:
    await present(server, "emma")
    lisa = await present(server, "lisa")
    await track(lisa, LISA)
    async with http(server) as api:
        emma = await api.get("/api/realtime/presence", headers=headers(server, "emma"))
        rita = await api.get("/api/realtime/presence", headers=headers(server, "rita"))
        olivia_channel = await api.get(
            "/api/realtime/presence", params={"channel": WEDDING}, headers=headers(server, "olivia")
        )
    assert emma.status_code == 200, emma.text
    body = emma.json()
    assert body["user_presence"]["status"] == "offline"  # Emma tracks no presence
    [lisa_row] = [c for c in body["collaborator_presence"] if c["user_id"] == "lisa"]
    assert lisa_row == {
        **lisa_row,
        "user_name": "Lisa's Catering",
        "user_type": "supplier",
        "status": "online",
        "current_page": "/forms/catering",
        "device_type": "desktop",
        "is_typing": False,
    }
    assert 0 <= lisa_row["active_ago_s"] <= 5 and lisa_row["last_activity"]
    # A competitor of Lisa's sees nothing of her; another couple may not read the wedding.
    assert rita.json()["collaborator_presence"] == []
    assert olivia_channel.status_code == 403


async def test_post_presence_updates_every_tracked_presence(server: RunningServer) -> None:
    emma = await present(server, "emma")
    lisa = await present(server, "lisa")
    await track(lisa, LISA)
    await next_diff(emma)
    async with http(server) as api:
        response = await api.post(
            "/api/realtime/presence",
            json={"status": "busy", "current_page": "/menu", "device_type": "tablet"},
            headers=headers(server, "lisa"),
        )
        bad = await api.post(
            "/api/realtime/presence", json={"status": "dancing"}, headers=headers(server, "lisa")
        )
    assert response.status_code == 200, response.text
    assert response.json()["updated_presences"] == 1
    assert response.json()["user_presence"]["status"] == "busy"
    [meta] = (await next_diff(emma))["joins"]["lisa"]["metas"]
    assert (meta["status"], meta["current_page"], meta["device_type"]) == (
        "busy",
        "/menu",
        "tablet",
    )
    assert bad.status_code == 422 and bad.json()["field"] == "status"


async def test_last_seen_after_leaving_for_those_who_may_see(server: RunningServer) -> None:
    emma = await present(server, "emma")
    lisa = await present(server, "lisa")
    await track(lisa, LISA)
    await next_diff(emma)
    async with http(server) as api:
        live = await api.get(
            "/api/realtime/presence/last-seen",
            params={"user_ids": "lisa"},
            headers=headers(server, "emma"),
        )
        assert live.json()["lisa"]["status"] == "online"
        await lisa.close()
        assert (await next_diff(emma))["joins"] == {}  # her leave
        response = await api.get(
            "/api/realtime/presence/last-seen",
            params={"user_ids": "lisa,rita,nobody"},
            headers=headers(server, "emma"),
        )
        by_rita = await api.get(
            "/api/realtime/presence/last-seen",
            params={"user_ids": "lisa"},
            headers=headers(server, "rita"),
        )
        too_many = await api.get(
            "/api/realtime/presence/last-seen",
            params={"user_ids": ",".join(f"u{i}" for i in range(101))},
            headers=headers(server, "emma"),
        )
    body = response.json()
    assert set(body) == {"lisa"}  # Rita (a stranger to Emma) and unknown ids are left out
    assert body["lisa"]["status"] == "offline"
    assert body["lisa"]["last_seen_at"] and 0 <= body["lisa"]["active_ago_s"] <= 5
    assert by_rita.json() == {}
    assert too_many.status_code == 422 and too_many.json()["field"] == "user_ids"


def test_thresholds_must_grow() -> None:
    env = {"WEDSYNC_PRESENCE_IDLE_AFTER_S": "30", "WEDSYNC_PRESENCE_AWAY_AFTER_S": "20"}
    with pytest.raises(SettingsError, match="PRESENCE_AWAY_AFTER_S"):
        Settings.from_env(env)
    settings = Settings.from_env({"WEDSYNC_PRESENCE_OFFLINE_AFTER_S": "7200"})
    assert (settings.presence_idle_after_s, settings.presence_offline_after_s) == (120, 7200)
