"""Forms (issue 5; SPEC.md story 2): live progress for the supplier, never a stranger's data."""

from __future__ import annotations

import pytest

from tests.support.wedding import World, all_channels, demo_world, named
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.errors import Invalid, NotFound, NotPermitted

F, C, SARAH_S = demo.shot_list_form, demo.couple, demo.photographer


@pytest.fixture
def world() -> World:
    return demo_world()


async def test_a_field_update_shows_progress_to_the_supplier(world: World) -> None:
    outcome = await world.forms.update_field(
        F, "family_groups", "Both sets of grandparents", user_id="emma"
    )
    assert outcome.value.data == {"family_groups": "Both sets of grandparents"}
    [event] = outcome.events
    assert event.event == "form_field_updated"
    assert set(event.channels) == {
        f"form:{F}",
        f"form:responses:{F}",
        f"supplier:{SARAH_S}:forms",
        f"supplier:{SARAH_S}:clients",
    }
    assert event.payload == {
        "form_id": F,
        "supplier_id": SARAH_S,
        "couple_id": C,
        "field_id": "family_groups",
        "user_name": "Emma",
        "completion_percentage": 25,
        "timestamp": "2025-06-01T14:00:00.000Z",
        "form_title": "Shot List Preferences",
        "couple_name": "James & Emma",
        "status": "draft",
        "field_completed": True,
    }


async def test_answers_are_not_sent_over_the_socket(world: World) -> None:
    outcome = await world.forms.update_field(F, "avoid", "Uncle Bob's bad side", user_id="james")
    assert "Uncle Bob" not in repr(outcome.events)


async def test_completion_follows_answers_and_clearing(world: World) -> None:
    await world.forms.update_field(F, "family_groups", "yes", user_id="emma")
    second = await world.forms.update_field(F, "must_have_shots", "first kiss", user_id="james")
    assert second.events[0].payload["completion_percentage"] == 50
    cleared = await world.forms.update_field(F, "must_have_shots", "  ", user_id="james")
    assert cleared.events[0].payload["completion_percentage"] == 25
    assert cleared.events[0].payload["field_completed"] is False


async def test_submission_needs_the_required_fields(world: World) -> None:
    await world.forms.update_field(F, "family_groups", "yes", user_id="emma")
    with pytest.raises(Invalid, match="Must-have shots"):
        await world.forms.submit(F, user_id="emma")


async def test_submission_is_announced_and_notifies_the_supplier(world: World) -> None:
    await world.forms.update_field(F, "family_groups", "yes", user_id="emma")
    await world.forms.update_field(F, "must_have_shots", "first kiss", user_id="emma")
    outcome = await world.forms.submit(F, user_id="james")
    assert outcome.value.status == "submitted"
    [event] = named(outcome.events, "form_submitted")
    assert event.payload["field_id"] is None
    assert event.payload["user_name"] == "James"
    assert event.payload["status"] == "submitted"
    assert {e.payload["user_id"] for e in named(outcome.events, "notification_new")} == {
        "sarah",
        "tom",
    }
    [note] = await world.notifications.list("sarah", type="form_submission")
    assert note.message == "James & Emma submitted Shot List Preferences"
    assert note.action_url == f"/forms/{F}/responses/{C}"


async def test_a_disconnected_couple_cannot_write_and_nothing_reaches_the_supplier(
    world: World,
) -> None:
    world.directory.disconnect(SARAH_S, C)
    with pytest.raises(NotPermitted, match="no longer connected"):
        await world.forms.update_field(F, "family_groups", "yes", user_id="emma")
    with pytest.raises(NotPermitted):
        await world.forms.submit(F, user_id="emma")
    assert await world.notifications.unread_count("sarah") == 0


async def test_change_capture_of_a_disconnected_couples_response_yields_no_event(
    world: World,
) -> None:
    """The router's other source: a stored response change is announced only while connected."""
    await world.forms.update_field(F, "family_groups", "yes", user_id="emma")
    form = await world.forms.form(F)
    response = await world.forms.get_response(F, C)
    assert await world.forms.response_events(
        "form_field_updated", form, response, field_id="family_groups", user_id="emma"
    )
    world.directory.disconnect(SARAH_S, C)
    assert (
        await world.forms.response_events(
            "form_field_updated", form, response, field_id="family_groups", user_id="emma"
        )
        == ()
    )


async def test_a_couple_the_form_was_not_sent_to_cannot_see_it(world: World) -> None:
    world.directory.connect(SARAH_S, demo.other_couple)  # connected, but never sent the form
    with pytest.raises(NotFound):
        await world.forms.update_field(F, "family_groups", "yes", user_id="olivia")


@pytest.mark.parametrize("user", ["sarah", "admin", "nobody"])
async def test_only_a_couple_fills_in_a_form(world: World, user: str) -> None:
    with pytest.raises(NotPermitted):
        await world.forms.update_field(F, "family_groups", "yes", user_id=user)


async def test_unknown_fields_are_refused(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        await world.forms.update_field(F, "favourite_song", "yes", user_id="emma")
    assert refused.value.field == "field_id"


async def test_events_never_reach_another_suppliers_channels(world: World) -> None:
    outcome = await world.forms.update_field(F, "family_groups", "yes", user_id="emma")
    assert all(
        not c.startswith("supplier:") or c.startswith(f"supplier:{SARAH_S}:")
        for c in all_channels(outcome.events)
    )
