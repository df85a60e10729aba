"""Journeys (issue 5; SPEC.md story 4): steps in order, progress, who hears it."""

from __future__ import annotations

import pytest

from tests.support.wedding import World, all_channels, demo_world, named
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.errors import Conflict, NotFound, NotPermitted
from wedsync_realtime.wedding.journeys import StepStatus

J, C, MIKE_S = demo.walkthrough, demo.couple, demo.venue_owner


@pytest.fixture
def world() -> World:
    return demo_world()


async def test_a_new_journey_starts_with_its_first_step_available(world: World) -> None:
    journey = await world.journeys.get(J)
    assert [s.name for s in journey.steps] == [
        "Venue Walkthrough",
        "Contract Review",
        "Final Details",
    ]
    assert [s.status for s in journey.steps] == [
        StepStatus.AVAILABLE,
        StepStatus.LOCKED,
        StepStatus.LOCKED,
    ]
    assert journey.progress_percentage == 0


async def test_completing_a_step_makes_the_next_available(world: World) -> None:
    outcome = await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    journey = outcome.value
    assert journey.step("venue-walkthrough").status is StepStatus.COMPLETED
    assert journey.step("venue-walkthrough").completed_by == "emma"
    assert journey.step("contract-review").status is StepStatus.AVAILABLE
    assert journey.step("final-details").status is StepStatus.LOCKED
    [event] = named(outcome.events, "journey_step_completed")
    assert event.payload == {
        "journey_id": J,
        "step_id": "venue-walkthrough",
        "supplier_id": MIKE_S,
        "couple_id": C,
        "progress_percentage": 33,
        "next_steps": [{"step_id": "contract-review", "name": "Contract Review", "kind": "task"}],
        "timestamp": "2025-06-01T14:00:00.000Z",
        "journey_name": "Venue Booking",
        "step_name": "Venue Walkthrough",
        "journey_status": "active",
        "completed_by": "emma",
    }


async def test_steps_complete_in_order(world: World) -> None:
    with pytest.raises(Conflict, match="not available yet: complete Venue Walkthrough first"):
        await world.journeys.complete_step(J, "contract-review", completed_by="emma")
    await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    with pytest.raises(Conflict, match="already completed"):
        await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")


async def test_the_last_step_completes_the_journey(world: World) -> None:
    for step in ("venue-walkthrough", "contract-review", "final-details"):
        outcome = await world.journeys.complete_step(J, step, completed_by="mike")
    assert outcome.value.status == "completed"
    assert outcome.value.progress_percentage == 100
    [event] = named(outcome.events, "journey_step_completed")
    assert event.payload["next_steps"] == []
    assert event.payload["journey_status"] == "completed"


async def test_the_event_reaches_the_pair_the_timeline_and_the_wedding(world: World) -> None:
    outcome = await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    [event] = named(outcome.events, "journey_step_completed")
    assert set(event.channels) == {
        f"journey:{J}:{C}",
        f"journey:progress:{J}",
        f"couple:{C}",
        f"couple:{C}:timeline",
        f"wedding:{demo.wedding}",
        f"supplier:{MIKE_S}:journeys",
        f"supplier:{MIKE_S}:clients",
    }
    # Other suppliers follow on the wedding channel, never on their own channels.
    assert not any(
        channel.startswith(f"supplier:{other}")
        for channel in event.channels
        for other in (demo.photographer, demo.caterer, demo.rival)
    )


async def test_the_supplier_gets_a_milestone_notification(world: World) -> None:
    outcome = await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    recipients = {e.payload["user_id"] for e in named(outcome.events, "notification_new")}
    assert recipients == {"mike", "james"}  # everyone on the journey but Emma herself
    [mikes] = await world.notifications.list("mike")
    assert mikes.title == "✅ Venue Walkthrough — Completed"
    assert mikes.message == "Emma completed Venue Walkthrough. Next: Contract Review"
    assert mikes.type == "journey_milestone"


@pytest.mark.parametrize("user", ["sarah", "olivia", "rita", "nobody"])
async def test_only_the_pair_progresses_a_journey(world: World, user: str) -> None:
    with pytest.raises(NotPermitted):
        await world.journeys.complete_step(J, "venue-walkthrough", completed_by=user)


async def test_a_disconnected_pair_cannot_progress_nor_hear_of_it_on_supplier_channels(
    world: World,
) -> None:
    world.directory.disconnect(MIKE_S, C)
    with pytest.raises(Conflict, match="no longer connected"):
        await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    # The couple opening an old email still updates their own view, not Mike's channels.
    outcome = await world.journeys.email_opened(J, "final-details")
    assert outcome.events
    assert not any(c.startswith("supplier:") for c in all_channels(outcome.events))


async def test_email_opened_is_announced_once(world: World) -> None:
    first = await world.journeys.email_opened(J, "final-details")
    [event] = first.events
    assert event.event == "journey_email_opened"
    assert event.payload["step_id"] == "final-details"
    assert event.payload["progress_percentage"] == 0
    assert (await world.journeys.email_opened(J, "final-details")).events == ()


async def test_task_due_notifies_the_couple(world: World) -> None:
    await world.journeys.complete_step(J, "venue-walkthrough", completed_by="emma")
    outcome = await world.journeys.task_due(J, "contract-review")
    [event] = named(outcome.events, "journey_task_due")
    assert event.payload["step_id"] == "contract-review"
    assert event.payload["progress_percentage"] == 33
    notified = {e.payload["user_id"] for e in named(outcome.events, "notification_new")}
    assert notified == {"james", "emma"}
    [note] = await world.notifications.list("emma", type="task_due")
    assert note.title == "Task due: Contract Review"
    # A completed task is not due.
    assert (await world.journeys.task_due(J, "venue-walkthrough")).events == ()


async def test_unknown_journeys_and_steps_are_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.journeys.get("j-nope")
    with pytest.raises(NotFound):
        await world.journeys.complete_step(J, "no-such-step", completed_by="emma")
