"""Core Fields (issue 5; SPEC.md story 1): versions, conflicts, venue auto-fill, who hears it."""

from __future__ import annotations

import pytest

from tests.support.wedding import World, all_channels, demo_world, named
from wedsync_realtime.wedding.core_fields import FieldChange, VersionConflict
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.errors import Invalid, NotFound, NotPermitted
from wedsync_realtime.wedding.events import JsonValue

C = demo.couple


@pytest.fixture
def world() -> World:
    return demo_world()


async def version_of(world: World, field: str) -> int:
    return (await world.core_fields.get(C))[field].version


async def test_every_field_is_readable_with_its_version(world: World) -> None:
    fields = await world.core_fields.get(C)
    assert fields["venue_name"].value == "Grand Hotel"
    assert fields["venue_name"].version == 1
    assert fields["timeline"].value is None
    assert fields["timeline"].version == 0  # never set
    assert set(fields) >= {"wedding_date", "guest_count", "ceremony_time", "contact_email"}


async def test_a_write_moves_the_version_on(world: World) -> None:
    outcome = await world.core_fields.update_field(
        C, "guest_count", 150, expected_version=1, updated_by="james"
    )
    assert outcome.value["guest_count"].version == 2
    assert outcome.value["guest_count"].value == 150
    assert (await world.core_fields.get(C))["guest_count"].value == 150


async def test_a_stale_version_is_refused_naming_the_current_value(world: World) -> None:
    await world.core_fields.update_field(
        C, "guest_count", 150, expected_version=1, updated_by="james"
    )
    with pytest.raises(VersionConflict) as refused:
        # Emma's screen still shows version 1.
        await world.core_fields.update_field(
            C, "guest_count", 90, expected_version=1, updated_by="emma"
        )
    assert refused.value.current.value == 150
    assert refused.value.current.version == 2
    assert "150" in str(refused.value) and "version 2" in str(refused.value)
    assert refused.value.status == 409
    # No silent overwrite.
    assert (await world.core_fields.get(C))["guest_count"].value == 150


async def test_a_conflict_on_one_field_writes_none_of_the_update(world: World) -> None:
    with pytest.raises(VersionConflict):
        await world.core_fields.update(
            C,
            {
                "ceremony_time": FieldChange("16:00", 1),
                "guest_count": FieldChange(99, 7),  # stale
            },
            updated_by="emma",
        )
    fields = await world.core_fields.get(C)
    assert fields["ceremony_time"].value == "14:00"
    assert fields["ceremony_time"].version == 1


async def test_the_first_write_of_a_field_expects_version_zero(world: World) -> None:
    timeline: JsonValue = [{"time": "14:00", "title": "Ceremony"}]
    outcome = await world.core_fields.update_field(
        C, "timeline", timeline, expected_version=0, updated_by="emma"
    )
    assert outcome.value["timeline"].version == 1
    with pytest.raises(VersionConflict):
        await world.core_fields.update_field(
            C, "timeline", [], expected_version=0, updated_by="james"
        )


async def test_no_expected_version_means_last_write_wins(world: World) -> None:
    await world.core_fields.update_field(
        C, "guest_count", 130, expected_version=None, updated_by="emma"
    )
    assert await version_of(world, "guest_count") == 2


async def test_writing_the_same_value_changes_nothing(world: World) -> None:
    outcome = await world.core_fields.update_field(
        C, "guest_count", 120, expected_version=1, updated_by="emma"
    )
    assert outcome.value == {}
    assert outcome.events == ()
    assert await version_of(world, "guest_count") == 1


async def test_a_venue_change_fills_address_and_capacity(world: World) -> None:
    outcome = await world.core_fields.update_field(
        C, "venue_name", "Garden Manor", expected_version=1, updated_by="emma"
    )
    fields = await world.core_fields.get(C)
    assert fields["venue_address"].value == "Manor Lane, Stow-on-the-Wold GL54 1AA"
    assert fields["venue_capacity"].value == 120
    assert fields["venue_capacity"].version == 2
    [event] = named(outcome.events, "core_fields_updated")
    p = event.payload
    assert p["couple_id"] == C
    assert p["field_name"] == "venue_name"
    assert p["old_value"] == "Grand Hotel"
    assert p["new_value"] == "Garden Manor"
    assert p["updated_by"] == "emma"
    assert p["timestamp"] == "2025-06-01T14:00:00.000Z"
    assert p["auto_populated_fields"] == ["venue_address", "venue_capacity"]
    assert p["auto_populated_values"] == {
        "venue_address": {"value": "Manor Lane, Stow-on-the-Wold GL54 1AA", "version": 2},
        "venue_capacity": {"value": 120, "version": 2},
    }


async def test_venue_lookup_ignores_case_and_explicit_values_win(world: World) -> None:
    outcome = await world.core_fields.update(
        C,
        {
            "venue_name": FieldChange("riverside barn", 1),
            "venue_capacity": FieldChange(150, 1),  # the couple knows better
        },
        updated_by="emma",
    )
    fields = await world.core_fields.get(C)
    assert fields["venue_address"].value == "Mill Road, Henley-on-Thames RG9 1AB"
    assert fields["venue_capacity"].value == 150
    venue_event = next(
        e
        for e in named(outcome.events, "core_fields_updated")
        if e.payload["field_name"] == "venue_name"
    )
    assert venue_event.payload["auto_populated_fields"] == ["venue_address"]


async def test_an_unknown_venue_fills_nothing(world: World) -> None:
    outcome = await world.core_fields.update_field(
        C, "venue_name", "Our Back Garden", expected_version=1, updated_by="emma"
    )
    [event] = named(outcome.events, "core_fields_updated")
    assert event.payload["auto_populated_fields"] == []
    assert (await world.core_fields.get(C))["venue_capacity"].value == 250


async def test_the_change_reaches_the_couple_the_wedding_and_every_connected_supplier(
    world: World,
) -> None:
    outcome = await world.core_fields.update_field(
        C, "venue_name", "Garden Manor", expected_version=1, updated_by="emma"
    )
    [event] = named(outcome.events, "core_fields_updated")
    assert set(event.channels) == {
        f"core_fields:{C}",
        f"couple:{C}",
        f"wedding:{demo.wedding}",
        *(f"supplier:{s}:clients" for s in demo.connected_suppliers),
    }
    # Never a supplier that is not connected to James & Emma.
    assert not any(demo.rival in channel for channel in all_channels(outcome.events))


async def test_a_disconnected_supplier_gets_no_event_channel_nor_notification(
    world: World,
) -> None:
    world.directory.disconnect(demo.caterer, C)
    outcome = await world.core_fields.update_field(
        C, "guest_count", 150, expected_version=1, updated_by="james"
    )
    assert f"supplier:{demo.caterer}:clients" not in all_channels(outcome.events)
    assert "user:lisa" not in all_channels(outcome.events)
    assert await world.notifications.unread_count("lisa") == 0


async def test_each_connected_suppliers_users_are_notified(world: World) -> None:
    outcome = await world.core_fields.update_field(
        C, "venue_name", "Garden Manor", expected_version=1, updated_by="emma"
    )
    notified = named(outcome.events, "notification_new")
    assert sorted(e.payload["user_id"] for e in notified) == [  # type: ignore[type-var]
        "lisa",
        "mike",
        "pat",
        "petra",
        "sarah",
        "tom",
    ]
    [lisa] = await world.notifications.list("lisa")
    assert lisa.message == "Emma changed the venue to Garden Manor"
    assert lisa.priority == "high"
    assert lisa.type == "core_field_change"
    assert lisa.action_url == f"/clients/{C}/core-fields"
    # The couple's own users are not notified of their own change.
    assert await world.notifications.unread_count("emma") == 0
    assert await world.notifications.unread_count("rita") == 0


async def test_an_update_of_ordinary_fields_reads_naturally(world: World) -> None:
    await world.core_fields.update_field(
        C, "guest_count", 150, expected_version=1, updated_by="james"
    )
    [sarah] = await world.notifications.list("sarah")
    assert sarah.message == "James updated the guest count to 150"
    assert sarah.priority == "medium"


@pytest.mark.parametrize("writer", ["sarah", "rita", "olivia", "nobody"])
async def test_only_the_couple_writes(world: World, writer: str) -> None:
    with pytest.raises(NotPermitted):
        await world.core_fields.update_field(
            C, "guest_count", 1, expected_version=None, updated_by=writer
        )
    assert (await world.core_fields.get(C))["guest_count"].value == 120


async def test_an_admin_may_write(world: World) -> None:
    outcome = await world.core_fields.update_field(
        C, "guest_count", 121, expected_version=1, updated_by="admin"
    )
    assert outcome.value["guest_count"].value == 121


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("guest_count", -1),
        ("guest_count", "many"),
        ("guest_count", True),
        ("wedding_date", "next June"),
        ("ceremony_time", "4pm"),
        ("contact_email", "emma"),
        ("timeline", "ceremony then party"),
        ("timeline", [{"time": "14:00"}]),
        ("favourite_colour", "blue"),
    ],
)
async def test_bad_values_are_refused_naming_the_field(
    world: World, field: str, value: object
) -> None:
    with pytest.raises(Invalid) as refused:
        await world.core_fields.update_field(
            C,
            field,
            value,  # type: ignore[arg-type]
            expected_version=None,
            updated_by="emma",
        )
    assert refused.value.field == field


async def test_an_unknown_couple_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.core_fields.get("c-nobody")


async def test_resaving_the_same_venue_keeps_a_hand_edited_address(world: World) -> None:
    await world.core_fields.update_field(
        C, "venue_address", "Side entrance, Royal Parade", expected_version=1, updated_by="emma"
    )
    outcome = await world.core_fields.update_field(
        C, "venue_name", "Grand Hotel", expected_version=1, updated_by="james"
    )
    assert outcome.events == ()
    assert (await world.core_fields.get(C))["venue_address"].value == "Side entrance, Royal Parade"
