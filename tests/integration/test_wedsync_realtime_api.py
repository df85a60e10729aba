"""SPEC.md "REST API shapes" over a real server: channels, status, events, subscribe, OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import RunningServer
from tests.support.wedsync_api import (
    C,
    W,
    assert_nothing_before_marker,
    headers,
    http,
    joined,
    next_event,
)
from wedsync_realtime.wedding.demo import demo

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def test_channels_lists_mine_with_counts_subscriptions_and_limits(
    server: RunningServer,
) -> None:
    await joined(server, "sarah", f"supplier:{demo.photographer}:clients", f"core_fields:{C}")
    async with http(server) as api:
        response = await api.get(
            "/api/realtime/channels",
            headers=headers(server, "sarah", app_metadata={"tier": "professional"}),
        )
    assert response.status_code == 200
    body = response.json()
    channels = {c["name"]: c for c in body["channels"]}
    assert channels[f"supplier:{demo.photographer}:clients"] == {
        "name": f"supplier:{demo.photographer}:clients",
        "type": "private",
        "subscriber_count": 1,
        "max_subscribers": 1000,
        "message_rate_limit": 100,
        "auth_required": True,
    }
    assert channels[f"core_fields:{C}"]["type"] == "resource"
    assert channels[f"wedding:{W}"] == {
        **channels[f"wedding:{W}"],
        "type": "shared",
        "subscriber_count": 0,
    }
    assert "user:sarah" in channels
    assert not any(demo.other_couple in name for name in channels)  # nothing of other couples
    assert sorted(s["channel_name"] for s in body["user_subscriptions"]) == [
        f"core_fields:{C}",
        f"supplier:{demo.photographer}:clients",
    ]
    assert body["user_subscriptions"][0]["subscription_tier"] == "professional"
    assert body["subscription_limits"] == {
        "max_channels": 10,
        "current_channels": 2,
        "available_channels": 8,
    }


async def test_channel_info_only_for_readers(server: RunningServer) -> None:
    async with http(server) as api:
        mine = await api.get(f"/api/realtime/channels/wedding:{W}", headers=headers(server, "lisa"))
        assert mine.status_code == 200 and mine.json()["type"] == "shared"
        theirs = await api.get(
            f"/api/realtime/channels/wedding:{W}", headers=headers(server, "rita")
        )
        assert theirs.status_code == 403


async def test_a_coordinator_broadcasts_an_urgent_event_once(server: RunningServer) -> None:
    sarah = await joined(server, "sarah", f"wedding:{W}")
    event = {
        "event_type": "timeline_changed",
        "channel_name": f"wedding:{W}",
        "payload": {"message": "Ceremony moved to 4 PM — weather backup plan"},
        "priority": 10,
    }
    mike = headers(server, "mike", app_metadata={"tier": "professional"})
    async with http(server) as api:
        sent = await api.post(
            "/api/realtime/events", json=event, headers={**mike, "Idempotency-Key": "k1"}
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["subscriber_count"] == 1
        assert sent.json()["broadcast_scheduled"] is True
        assert sent.json()["event_id"] == "k1"
        received = await next_event(sarah, "timeline_changed", f"wedding:{W}")
        assert received["payload"]["message"].startswith("Ceremony moved")
        assert received["meta"]["id"] == "k1"

        retried = await api.post(
            "/api/realtime/events", json=event, headers={**mike, "Idempotency-Key": "k1"}
        )
        assert (
            retried.json()["duplicate"] is True and retried.json()["broadcast_scheduled"] is False
        )
        by_rival = await api.post(
            "/api/realtime/events", json=event, headers=headers(server, "rita")
        )
        assert by_rival.status_code == 403 and by_rival.json()["field"] == "channel_name"
        bad = await api.post("/api/realtime/events", json={**event, "priority": 11}, headers=mike)
        assert bad.status_code == 422 and bad.json()["field"] == "priority"
    await assert_nothing_before_marker(server, sarah, f"wedding:{W}")


async def test_status_counts_what_my_channels_hold(server: RunningServer) -> None:
    await joined(server, "emma", f"core_fields:{C}", tier="professional")
    async with http(server) as api:
        before = await api.get("/api/realtime/status", headers=headers(server, "emma"))
        assert before.json() == {
            "connected": True,
            "activeChannels": 1,
            "messageCount": 0,
            "lastMessageAt": None,
        }
        await api.put(
            f"/api/wedsync/couples/{C}/core-fields/guest_count",
            json={"value": 150, "version": 1},
            headers=headers(server, "emma"),
        )
        after = (await api.get("/api/realtime/status", headers=headers(server, "emma"))).json()
        assert after["messageCount"] == 1 and after["lastMessageAt"].endswith("Z")
        offline = (await api.get("/api/realtime/status", headers=headers(server, "james"))).json()
        assert offline["connected"] is False and offline["activeChannels"] == 0


async def test_subscribe_resolves_short_names_and_checks_access(server: RunningServer) -> None:
    async with http(server) as api:
        ok = await api.post(
            "/api/realtime/subscribe",
            json={
                "channels": ["core-fields", "form-responses"],
                "filters": {"couple_id": C, "supplier_id": demo.photographer},
            },
            headers=headers(server, "sarah"),
        )
        assert ok.status_code == 200, ok.text
        assert ok.json() == {
            "success": True,
            "subscriptions": [
                {
                    "channel": f"core_fields:{C}",
                    "topic": f"realtime:core_fields:{C}",
                    "status": "active",
                    "filter": {"couple_id": C},
                },
                {
                    "channel": f"supplier:{demo.photographer}:forms",
                    "topic": f"realtime:supplier:{demo.photographer}:forms",
                    "status": "active",
                    "filter": {"supplier_id": demo.photographer},
                },
            ],
        }
        missing = await api.post(
            "/api/realtime/subscribe",
            json={"channels": ["core-fields"]},
            headers=headers(server, "sarah"),
        )
        assert missing.status_code == 422 and missing.json()["field"] == "filters.couple_id"
        unknown = await api.post(
            "/api/realtime/subscribe",
            json={"channels": ["gossip"]},
            headers=headers(server, "sarah"),
        )
        assert unknown.status_code == 422
        denied = await api.post(
            "/api/realtime/subscribe",
            json={"channels": ["core-fields"], "filters": {"couple_id": C}},
            headers=headers(server, "rita"),
        )
        assert denied.status_code == 403


async def test_openapi_lists_the_wedsync_endpoints_with_their_models(server: RunningServer) -> None:
    async with http(server) as api:
        schema = (await api.get("/openapi.json")).json()
        docs = await api.get("/docs")
    assert docs.status_code == 200
    paths = schema["paths"]
    for path, method in [
        ("/api/realtime/channels", "get"),
        ("/api/realtime/channels/{name}", "get"),
        ("/api/realtime/status", "get"),
        ("/api/realtime/events", "post"),
        ("/api/realtime/subscribe", "post"),
        ("/api/wedsync/couples/{couple_id}/core-fields", "patch"),
        ("/api/wedsync/notifications", "get"),
        ("/api/wedsync/notifications/{notification_id}/read", "post"),
        ("/api/wedsync/journeys/{journey_id}/steps/{step_id}/complete", "post"),
        ("/api/wedsync/forms/{form_id}/response/submit", "post"),
    ]:
        operation = paths[path][method]
        assert "$ref" in str(operation["responses"]["200"]), (path, operation["responses"])
    patch = paths["/api/wedsync/couples/{couple_id}/core-fields"]["patch"]
    assert patch["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CoreFieldConflict"
    )
