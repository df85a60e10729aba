"""The domain event router: every event on every channel, ids from the domain, repeats
delivered once, one failing channel not stopping the others; and the change feed, whose events
for a stored change are the write API's."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import make_settings
from tests.support.wedding import World, demo_world, named
from wedsync_realtime.app import build_node
from wedsync_realtime.engine.history import MAX_MESSAGE_ID_LENGTH, Published
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.wedding.change_feed import ChangeFeed, ChangeType, DomainChange
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.events import DomainEvent
from wedsync_realtime.wedding.router import EventRouter, domain_key, message_id


class Recorder:
    """A publisher that records (topic, event, payload, id), failing on `broken` topics."""

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.sent: list[tuple[str, str, object, str | None]] = []
        self.broken = broken

    async def publish(
        self,
        message: OutboundBroadcast,
        exclude: str | None = None,
        *,
        message_id: str | None = None,
    ) -> Published:
        if message.topic in self.broken:
            raise OSError("history backend down")
        self.sent.append((message.topic, message.event, message.payload, message_id))
        return Published(message_id or "?", None, delivered=1)


def field_event(version: int, couple: str = "c1") -> DomainEvent:
    payload = {"couple_id": couple, "field_name": "guest_count", "version": version, "new_value": 1}
    return DomainEvent(
        "core_fields_updated", (f"core_fields:{couple}", f"couple:{couple}"), payload
    )


async def test_each_event_goes_out_on_each_channel_in_order_with_one_id() -> None:
    recorder = Recorder()
    notice = DomainEvent("notification_new", ("user:u1",), {"notification_id": "n1"})
    report = await EventRouter(recorder).route([field_event(2), notice])
    assert [(t, e) for t, e, _, _ in recorder.sent] == [
        ("realtime:core_fields:c1", "core_fields_updated"),
        ("realtime:couple:c1", "core_fields_updated"),
        ("realtime:user:u1", "notification_new"),
    ]
    ids = [i for _, _, _, i in recorder.sent]
    assert ids[0] == ids[1] == "wsd:core_fields_updated:c1/guest_count/v2"
    assert ids[2] == "wsd:notification_new:n1"
    assert recorder.sent[0][2] == field_event(2).payload
    assert report.delivered == 3 and not report.failed


def test_ids_follow_the_domain_identity() -> None:
    assert message_id(field_event(2)) == message_id(field_event(2))
    assert message_id(field_event(2)) != message_id(field_event(3))
    assert message_id(field_event(2, "c1")) != message_id(field_event(2, "c2"))
    read = {"notification_id": "n1", "read": True, "timestamp": "t1"}
    unread = {**read, "read": False}
    assert domain_key(DomainEvent("notification_read", (), read)) != domain_key(
        DomainEvent("notification_read", (), unread)
    )
    custom = DomainEvent("timeline_changed", ("wedding:w1",), {"at": "16:00"})
    assert domain_key(custom).startswith("sha256:")
    assert domain_key(custom) == domain_key(dataclasses.replace(custom))
    assert domain_key(custom) != domain_key(dataclasses.replace(custom, payload={"at": "17:00"}))


def test_long_ids_are_hashed_to_fit_the_node() -> None:
    long = DomainEvent("notification_new", ("user:u",), {"notification_id": "x" * 300})
    assert len(message_id(long)) <= MAX_MESSAGE_ID_LENGTH
    other = DomainEvent("notification_new", ("user:u",), {"notification_id": "y" * 300})
    assert message_id(long) != message_id(other)


async def test_one_failing_channel_does_not_stop_the_others() -> None:
    recorder = Recorder(broken=frozenset({"realtime:core_fields:c1"}))
    report = await EventRouter(recorder).route([field_event(2)])
    assert [t for t, _, _, _ in recorder.sent] == ["realtime:couple:c1"]
    assert report.failed == [
        ("core_fields_updated", "core_fields:c1", "OSError: history backend down")
    ]


async def test_routing_the_same_events_again_delivers_nothing_new() -> None:
    async with build_node(make_settings()) as node:
        router = EventRouter(node)
        first = await router.route([field_event(2)])
        again = await router.route([field_event(2)])
        later = await router.route([field_event(3)])
    assert first.duplicates == 0 and len(first.messages) == 2
    assert again.duplicates == 2
    assert [m.published.id for m in again.messages] == [m.published.id for m in first.messages]
    assert later.duplicates == 0


# -- the change feed ------------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    return demo_world()


async def test_a_captured_venue_change_yields_the_write_apis_events(world: World) -> None:
    C = demo.couple
    written = await world.core_fields.update_field(
        C, "venue_name", "Garden Manor", expected_version=1, updated_by="emma"
    )
    rows = written.value
    old = {
        "venue_name": "Grand Hotel",
        "venue_address": "1 Royal Parade, Bath BA1 2AB",
        "venue_capacity": 250,
    }
    transaction = [
        DomainChange(
            "core_field_values",
            ChangeType.UPDATE,
            {
                "couple_id": C,
                "field_name": name,
                "value": row.value,
                "version": row.version,
                "updated_by": row.updated_by,
                "updated_at": row.updated_at,
            },
            {"couple_id": C, "field_name": name, "value": old[name]},
        )
        for name, row in rows.items()
    ]
    recorder = Recorder()
    feed = ChangeFeed(EventRouter(recorder), world.core_fields, world.forms)
    captured = await feed.events_for(transaction)

    expected = named(written.events, "core_fields_updated")
    got = named(captured, "core_fields_updated")
    assert got == expected  # same payload, same channels
    assert [message_id(e) for e in got] == [message_id(e) for e in expected]
    assert len(named(captured, "notification_new")) == len(
        named(written.events, "notification_new")
    )

    unchanged = dataclasses.replace(transaction[0], old_record=transaction[0].record)
    assert await feed.events_for([unchanged]) == ()
    report = await feed.apply(transaction[:1])
    assert {t for t, _, _, _ in recorder.sent} >= {f"realtime:core_fields:{C}"}
    assert not report.failed


async def test_a_captured_form_submission_yields_form_submitted(world: World) -> None:
    F = demo.shot_list_form
    before = {
        "form_id": F,
        "couple_id": demo.couple,
        "status": "draft",
        "data": {"family_groups": "x"},
    }
    after = {
        **before,
        "status": "submitted",
        "updated_by": "emma",
        "updated_at": "2025-06-01T14:00:00.000Z",
    }
    feed = ChangeFeed(EventRouter(Recorder()), world.core_fields, world.forms)
    submitted = await feed.events_for(
        [DomainChange("form_responses", ChangeType.UPDATE, after, before)]
    )
    # As the write API's submit: the event, then a notification for each of the supplier's users.
    supplier_users = await world.directory.supplier_users(demo.photographer)
    assert [e.event for e in submitted] == ["form_submitted"] + ["notification_new"] * len(
        supplier_users
    )
    assert submitted[0].payload["user_name"] == "Emma"
    assert [e.channels for e in submitted[1:]] == [(f"user:{u}",) for u in supplier_users]
    # Seen again (change capture re-reading the transaction): the same notification, not a new one.
    again = await feed.events_for(
        [DomainChange("form_responses", ChangeType.UPDATE, after, before)]
    )
    assert [message_id(e) for e in again] == [message_id(e) for e in submitted]
    assert await world.notifications.unread_count(supplier_users[0]) == 1
    typed = {**before, "data": {"family_groups": "x", "photo_style": "candid"}}
    updated = await feed.events_for(
        [DomainChange("form_responses", ChangeType.UPDATE, typed, before)]
    )
    assert [(e.event, e.payload["field_id"]) for e in updated] == [
        ("form_field_updated", "photo_style")
    ]
    assert await feed.events_for([DomainChange("weddings", ChangeType.INSERT, {"id": "w9"})]) == ()
