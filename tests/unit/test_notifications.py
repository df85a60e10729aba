"""Notifications (issue 5; SPEC.md story 5): persisted per user, counted, live on `user:{id}`."""

from __future__ import annotations

import pytest

from tests.support.wedding import World, demo_world
from wedsync_realtime.wedding.errors import Invalid
from wedsync_realtime.wedding.notifications import (
    NotificationDraft,
    NotificationNotFound,
    NotificationType,
    Priority,
)


@pytest.fixture
def world() -> World:
    return demo_world()


def invitation(user_id: str = "lisa", **overrides: object) -> NotificationDraft:
    fields: dict[str, object] = {
        "user_id": user_id,
        "type": NotificationType.INVITATION,
        "title": "New invitation from James & Emma",
        "message": "James & Emma invited you to their wedding team",
        "action_url": "/invitations/inv-1",
        "priority": Priority.HIGH,
    }
    fields.update(overrides)
    return NotificationDraft(**fields)  # type: ignore[arg-type]


async def test_a_new_notification_is_stored_and_announced_on_the_users_channel(
    world: World,
) -> None:
    outcome = await world.notifications.create(invitation())
    [event] = outcome.events
    assert event.event == "notification_new"
    assert event.channels == ("user:lisa",)
    assert event.payload["notification_id"] == outcome.value.notification_id
    assert event.payload["title"] == "New invitation from James & Emma"
    assert event.payload["action_url"] == "/invitations/inv-1"
    assert event.payload["priority"] == "high"
    assert event.payload["unread_count"] == 1
    assert event.payload["timestamp"] == "2025-06-01T14:00:00.000Z"
    assert [n.notification_id for n in await world.notifications.list("lisa")] == ["n1"]


async def test_urgent_notifications_are_published_first(world: World) -> None:
    urgent = await world.notifications.create(invitation(priority=Priority.URGENT))
    low = await world.notifications.create(invitation(priority=Priority.LOW))
    assert urgent.events[0].priority > low.events[0].priority


async def test_the_unread_count_follows_read_unread_and_dismiss(world: World) -> None:
    first = (await world.notifications.create(invitation())).value
    second = (await world.notifications.create(invitation())).value
    assert await world.notifications.unread_count("lisa") == 2

    read = await world.notifications.mark_read("lisa", first.notification_id)
    assert read.value.read
    [event] = read.events
    assert (event.event, event.channels) == ("notification_read", ("user:lisa",))
    assert event.payload["read"] is True
    assert event.payload["unread_count"] == 1

    unread = await world.notifications.mark_read("lisa", first.notification_id, read=False)
    assert unread.events[0].payload["read"] is False
    assert unread.events[0].payload["unread_count"] == 2

    dismissed = await world.notifications.dismiss("lisa", second.notification_id)
    assert dismissed.events[0].event == "notification_dismissed"
    assert dismissed.events[0].payload["unread_count"] == 1
    assert [n.notification_id for n in await world.notifications.list("lisa")] == [
        first.notification_id
    ]


async def test_a_change_that_changes_nothing_is_not_announced(world: World) -> None:
    created = (await world.notifications.create(invitation())).value
    await world.notifications.mark_read("lisa", created.notification_id)
    again = await world.notifications.mark_read("lisa", created.notification_id)
    assert again.events == ()
    await world.notifications.dismiss("lisa", created.notification_id)
    assert (await world.notifications.dismiss("lisa", created.notification_id)).events == ()


async def test_nobody_touches_another_users_notification(world: World) -> None:
    created = (await world.notifications.create(invitation())).value
    with pytest.raises(NotificationNotFound):
        await world.notifications.mark_read("sarah", created.notification_id)
    with pytest.raises(NotificationNotFound):
        await world.notifications.dismiss("sarah", created.notification_id)
    assert await world.notifications.unread_count("lisa") == 1


async def test_list_filters_by_type_and_unread_newest_first(world: World) -> None:
    await world.notifications.create(invitation(title="first"))
    await world.notifications.create(
        invitation(type=NotificationType.MENTION, title="Sarah mentioned you")
    )
    third = (await world.notifications.create(invitation(title="third"))).value
    await world.notifications.mark_read("lisa", third.notification_id)

    titles = [n.title for n in await world.notifications.list("lisa")]
    assert titles == ["third", "Sarah mentioned you", "first"]
    invitations = await world.notifications.list("lisa", type=NotificationType.INVITATION)
    assert [n.title for n in invitations] == ["third", "first"]
    unread = await world.notifications.list("lisa", unread_only=True)
    assert [n.title for n in unread] == ["Sarah mentioned you", "first"]
    assert len(await world.notifications.list("lisa", limit=1)) == 1


async def test_clear_all_dismisses_everything_in_one_event(world: World) -> None:
    for _ in range(3):
        await world.notifications.create(invitation())
    await world.notifications.create(invitation(user_id="sarah"))
    cleared = await world.notifications.clear_all("lisa")
    assert sorted(cleared.value) == ["n1", "n2", "n3"]
    [event] = cleared.events
    assert event.event == "notification_dismissed"
    assert event.channels == ("user:lisa",)
    assert event.payload["notification_ids"] == ["n1", "n2", "n3"]
    assert event.payload["unread_count"] == 0
    assert await world.notifications.list("lisa") == []
    assert await world.notifications.unread_count("sarah") == 1  # only Lisa's
    assert (await world.notifications.clear_all("lisa")).events == ()


async def test_a_notification_needs_a_title(world: World) -> None:
    with pytest.raises(Invalid):
        await world.notifications.create(invitation(title="  "))


async def test_rest_shape(world: World) -> None:
    created = (await world.notifications.create(invitation())).value
    assert created.to_json() == {
        "notification_id": "n1",
        "user_id": "lisa",
        "type": "invitation",
        "title": "New invitation from James & Emma",
        "message": "James & Emma invited you to their wedding team",
        "action_url": "/invitations/inv-1",
        "priority": "high",
        "read": False,
        "dismissed": False,
        "created_at": "2025-06-01T14:00:00.000Z",
    }
