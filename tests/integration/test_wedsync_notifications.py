"""Notifications end to end (issue 5, "Journeys and notifications"; SPEC.md story 5): created by
a domain rule or an operator, delivered live on ``user:{id}``, and every connection of the user
sees the unread count change when one of them reads, unreads, dismisses or clears."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import RunningServer
from tests.support.wedsync_api import (
    assert_nothing_before_marker,
    headers,
    http,
    joined,
    next_event,
)

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def notify(server: RunningServer, user: str, title: str, type: str = "invitation") -> str:
    async with http(server) as api:
        response = await api.post(
            "/api/wedsync/notifications",
            json={"user_id": user, "type": type, "title": title, "message": f"{title}!"},
            headers=headers(server, "ops", role="service_role"),
        )
    assert response.status_code == 201, response.text
    notification_id: str = response.json()["notification"]["notification_id"]
    return notification_id


async def test_every_tab_of_the_user_sees_the_count_change(server: RunningServer) -> None:
    tab1 = await joined(server, "lisa", "user:lisa", tier="free")
    tab2 = await joined(server, "lisa", "user:lisa", tier="free")
    first = await notify(server, "lisa", "New invitation from James & Emma")
    await notify(server, "lisa", "Tasting booked", type="meeting_booked")
    for tab in (tab1, tab2):
        new = await next_event(tab, "notification_new", "user:lisa")
        assert new["payload"]["notification_id"] == first
        assert new["payload"]["title"] == "New invitation from James & Emma"
        assert new["payload"]["unread_count"] == 1
        assert (await next_event(tab, "notification_new"))["payload"]["unread_count"] == 2

    async with http(server) as api:
        read = await api.post(
            f"/api/wedsync/notifications/{first}/read", headers=headers(server, "lisa")
        )
        assert read.status_code == 200
        assert read.json()["unread_count"] == 1 and read.json()["notification"]["read"] is True
        for tab in (tab1, tab2):
            event = await next_event(tab, "notification_read", "user:lisa")
            assert event["payload"]["notification_id"] == first
            assert (event["payload"]["read"], event["payload"]["unread_count"]) == (True, 1)

        unread = await api.post(
            f"/api/wedsync/notifications/{first}/unread", headers=headers(server, "lisa")
        )
        assert unread.json()["unread_count"] == 2
        for tab in (tab1, tab2):
            event = await next_event(tab, "notification_read", "user:lisa")
            assert (event["payload"]["read"], event["payload"]["unread_count"]) == (False, 2)

        count = await api.get(
            "/api/wedsync/notifications/unread-count", headers=headers(server, "lisa")
        )
        assert count.json() == {"unread_count": 2}


async def test_list_filters_dismiss_and_clear_all(server: RunningServer) -> None:
    tab = await joined(server, "pat", "user:pat", tier="free")
    invitation = await notify(server, "pat", "Invitation", type="invitation")
    await notify(server, "pat", "Mentioned", type="mention")
    await notify(server, "pat", "Another mention", type="mention")
    auth = headers(server, "pat")
    async with http(server) as api:
        mentions = await api.get(
            "/api/wedsync/notifications", params={"type": "mention"}, headers=auth
        )
        assert [n["title"] for n in mentions.json()["notifications"]] == [
            "Another mention",
            "Mentioned",
        ]
        await api.post(f"/api/wedsync/notifications/{invitation}/read", headers=auth)
        unread = await api.get(
            "/api/wedsync/notifications", params={"unread": "true"}, headers=auth
        )
        assert {n["type"] for n in unread.json()["notifications"]} == {"mention"}
        assert unread.json()["unread_count"] == 2

        dismissed = await api.post(f"/api/wedsync/notifications/{invitation}/dismiss", headers=auth)
        assert dismissed.json()["notification"]["dismissed"] is True
        cleared = await api.post("/api/wedsync/notifications/clear", headers=auth)
        assert len(cleared.json()["dismissed"]) == 2 and cleared.json()["unread_count"] == 0
        left = await api.get("/api/wedsync/notifications", headers=auth)
        assert left.json() == {"notifications": [], "unread_count": 0}

    one = await next_event(tab, "notification_dismissed", "user:pat")
    assert one["payload"]["notification_id"] == invitation
    everything = await next_event(tab, "notification_dismissed", "user:pat")
    assert len(everything["payload"]["notification_ids"]) == 2
    assert everything["payload"]["unread_count"] == 0


async def test_another_users_notification_is_not_found_and_not_announced(
    server: RunningServer,
) -> None:
    lisa = await joined(server, "lisa", "user:lisa", tier="free")
    theirs = await notify(server, "lisa", "Private")
    await next_event(lisa, "notification_new", "user:lisa")
    async with http(server) as api:
        response = await api.post(
            f"/api/wedsync/notifications/{theirs}/read", headers=headers(server, "rita")
        )
        assert response.status_code == 404
        assert response.json()["field"] == "notification_id"
        by_user = await api.post(
            "/api/wedsync/notifications",
            json={"user_id": "lisa", "type": "mention", "title": "x", "message": "y"},
            headers=headers(server, "rita"),
        )
        assert by_user.status_code == 403  # only operators create notifications
        bad = await api.post(
            "/api/wedsync/notifications",
            json={"user_id": "lisa", "type": "mention", "title": "x", "priority": "asap"},
            headers=headers(server, "admin"),
        )
        assert bad.status_code == 422
        assert {"message", "priority"} <= {e["loc"][-1] for e in bad.json()["errors"]}
    await assert_nothing_before_marker(server, lisa, "user:lisa")
