"""Change capture of ``journey_instance_steps``: a committed step completion or email opening
yields exactly the write API's events and notifications, once however often it is read."""

from __future__ import annotations

import pytest

from tests.support.wedding import World, demo_world, named
from wedsync_realtime.engine.history import Published
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.wedding.change_feed import ChangeFeed, ChangeType, DomainChange
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.events import JsonValue
from wedsync_realtime.wedding.router import EventRouter, message_id

J, C, MIKE_S = demo.walkthrough, demo.couple, demo.venue_owner
TABLE = "journey_instance_steps"


class Recorder:
    """A publisher that keeps what it is given (`events_for` publishes nothing)."""

    def __init__(self) -> None:
        self.sent: list[OutboundBroadcast] = []

    async def publish(
        self,
        message: OutboundBroadcast,
        exclude: str | None = None,
        *,
        message_id: str | None = None,
    ) -> Published:
        self.sent.append(message)
        return Published(message_id or "?", None, delivered=1)


@pytest.fixture
def world() -> World:
    return demo_world()


def _feed(world: World) -> ChangeFeed:
    return ChangeFeed(
        EventRouter(Recorder()), world.core_fields, world.forms, journeys=world.journeys
    )


async def _row(world: World, step_id: str) -> dict[str, JsonValue]:
    """The step's row as change capture hands it on."""
    step = (await world.journeys.get(J)).step(step_id)
    return {
        "instance_id": J,
        "step_id": step_id,
        "status": step.status.value,
        "completed_at": step.completed_at,
        "completed_by": step.completed_by,
        "due_at": step.due_at,
        "email_opened_at": step.email_opened_at,
    }


async def test_a_captured_completion_is_the_write_apis_events_and_notifies_once(
    world: World,
) -> None:
    before = await _row(world, "venue-walkthrough")
    written = await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    after = await _row(world, "venue-walkthrough")
    unlocked = await _row(world, "contract-review")
    transaction = [
        DomainChange(TABLE, ChangeType.UPDATE, after, before),
        DomainChange(TABLE, ChangeType.UPDATE, unlocked, {**unlocked, "status": "locked"}),
    ]
    feed = _feed(world)

    captured = await feed.events_for(transaction)
    # The same events (payloads, channels, ids), the notifications' ids derived from the step's
    # completion: the write and its capture notify once.
    assert captured == written.events
    assert [e.event for e in captured] == ["journey_step_completed"] + ["notification_new"] * 2
    assert [message_id(e) for e in captured] == [message_id(e) for e in written.events]
    # Read again (after a restart): still the same, and nothing new stored.
    assert await feed.events_for(transaction) == written.events
    assert len(await world.notifications.list("mike")) == 1


async def test_only_a_completion_or_a_first_opening_is_announced(world: World) -> None:
    feed = _feed(world)
    row = await _row(world, "venue-walkthrough")
    touched = DomainChange(
        TABLE, ChangeType.UPDATE, {**row, "due_at": "2026-01-01T00:00:00.000Z"}, row
    )
    done = {**row, "status": "completed", "completed_at": "2026-01-01T00:00:00.000Z"}
    assert await feed.events_for([touched]) == ()
    # A journey started with its rows as they are is its set-up, not progress.
    assert await feed.events_for([DomainChange(TABLE, ChangeType.INSERT, done)]) == ()
    assert await feed.events_for([DomainChange(TABLE, ChangeType.DELETE, None, done)]) == ()
    assert await feed.events_for([DomainChange(TABLE, ChangeType.UPDATE, done, done)]) == ()
    # A row of an instance (or a step) gone since the commit: nothing to say about it.
    gone = {**done, "instance_id": "j-gone"}
    assert await feed.events_for([DomainChange(TABLE, ChangeType.UPDATE, gone, row)]) == ()
    unknown = {**done, "step_id": "no-such-step"}
    assert await feed.events_for([DomainChange(TABLE, ChangeType.UPDATE, unknown, row)]) == ()
    # Without the journey service (a feed built for core fields and forms only): nothing.
    bare = ChangeFeed(EventRouter(Recorder()), world.core_fields, world.forms)
    assert await bare.events_for([DomainChange(TABLE, ChangeType.UPDATE, done, row)]) == ()


async def test_a_captured_email_opening_is_the_write_apis_event(world: World) -> None:
    before = await _row(world, "final-details")
    written = await world.journeys.email_opened(J, "final-details")
    after = await _row(world, "final-details")
    captured = await _feed(world).events_for(
        [DomainChange(TABLE, ChangeType.UPDATE, after, before)]
    )
    assert captured == written.events
    assert [e.event for e in captured] == ["journey_email_opened"]


async def test_a_completion_the_platform_records_without_who_or_when(world: World) -> None:
    """Completed by the platform itself: the couple is named, nobody is left out."""
    row = await _row(world, "venue-walkthrough")
    await world.journey_store.complete_journey_step(
        J, "venue-walkthrough", completed_by="emma", at="2026-01-01T00:00:00.000Z"
    )
    done = {**row, "status": "completed"}
    captured = await _feed(world).events_for([DomainChange(TABLE, ChangeType.UPDATE, done, row)])
    [event] = named(captured, "journey_step_completed")
    assert event.payload["completed_by"] is None
    assert event.payload["progress_percentage"] == 33
    notified = {e.payload["user_id"] for e in named(captured, "notification_new")}
    assert notified == {"mike", "james", "emma"}
    assert {e.payload["message"] for e in named(captured, "notification_new")} == {
        "James & Emma completed Venue Walkthrough. Next: Contract Review"
    }


async def test_a_disconnected_supplier_hears_nothing_of_a_captured_completion(
    world: World,
) -> None:
    world.directory.disconnect(MIKE_S, C)
    row = await _row(world, "venue-walkthrough")
    await world.journey_store.complete_journey_step(
        J, "venue-walkthrough", completed_by="emma", at="2026-01-01T00:00:00.000Z"
    )
    done = await _row(world, "venue-walkthrough")
    captured = await _feed(world).events_for([DomainChange(TABLE, ChangeType.UPDATE, done, row)])
    [event] = named(captured, "journey_step_completed")
    assert not any(c.startswith("supplier:") for c in event.channels)
    assert {e.payload["user_id"] for e in named(captured, "notification_new")} == {"james"}
