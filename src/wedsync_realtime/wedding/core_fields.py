"""Core Fields: the couple's wedding details, versioned per field, synced to every supplier.

Issue 5, "Core Fields", and SPEC.md user story 1. The fields (`CoreField`): wedding date, venue
name, address and capacity, guest count, ceremony time, contact details, timeline. Each has its
own version: 0 while never set, then one more on every change.

The rules, in `CoreFieldsService.update`:

* only the couple's users (or an admin) write;
* a write names the version it was based on (`FieldChange.expected_version`); when the field has
  moved on since, the whole update is refused with `VersionConflict`, which names the current
  value and version: nobody silently overwrites a change they have not seen. ``None`` means
  "last write wins", for system writers that hold no version;
* a value equal to the current one changes nothing (no version, no event);
* a venue change fills ``venue_address`` and ``venue_capacity`` from the venue directory (unless
  the same update sets them) and lists those that changed in ``auto_populated_fields``;
* each changed field yields one ``core_fields_updated`` event {couple_id, field_name, old_value,
  new_value, updated_by, timestamp, auto_populated_fields} (plus ``version``,
  ``updated_by_name`` and ``auto_populated_values``: the filled fields' new values and versions)
  on ``core_fields:{C}``, ``couple:{C}``, each ``wedding:{W}`` of the couple and each actively
  connected supplier's ``supplier:{S}:clients``; then one notification per user of each
  connected supplier ("Emma changed the venue to Garden Manor").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from wedsync_realtime.wedding.audience import Audience, couple_audience, may_act_for_couple
from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.errors import Conflict, Invalid, NotFound, NotPermitted
from wedsync_realtime.wedding.events import (
    Clock,
    DomainEvent,
    JsonValue,
    Outcome,
    Payload,
    channel_name,
    iso_timestamp,
    utc_now,
)
from wedsync_realtime.wedding.notifications import (
    NotificationDraft,
    NotificationService,
    NotificationType,
    Priority,
)

__all__ = [
    "VENUE_DEPENDENT_FIELDS",
    "AppliedChange",
    "CoreField",
    "CoreFieldStore",
    "CoreFieldValue",
    "CoreFieldsService",
    "FieldChange",
    "FieldWrite",
    "Venue",
    "VenueDirectory",
    "VersionConflict",
    "plan_core_field_write",
    "validate_core_field",
]


class CoreField(enum.StrEnum):
    WEDDING_DATE = "wedding_date"
    VENUE_NAME = "venue_name"
    VENUE_ADDRESS = "venue_address"
    VENUE_CAPACITY = "venue_capacity"
    GUEST_COUNT = "guest_count"
    CEREMONY_TIME = "ceremony_time"
    CONTACT_NAME = "contact_name"
    CONTACT_EMAIL = "contact_email"
    CONTACT_PHONE = "contact_phone"
    TIMELINE = "timeline"


#: How a field is named in a sentence ("Emma updated the guest count to 150").
_LABELS: dict[CoreField, str] = {
    CoreField.WEDDING_DATE: "wedding date",
    CoreField.VENUE_NAME: "venue",
    CoreField.VENUE_ADDRESS: "venue address",
    CoreField.VENUE_CAPACITY: "venue capacity",
    CoreField.GUEST_COUNT: "guest count",
    CoreField.CEREMONY_TIME: "ceremony time",
    CoreField.CONTACT_NAME: "contact name",
    CoreField.CONTACT_EMAIL: "contact email",
    CoreField.CONTACT_PHONE: "contact phone",
    CoreField.TIMELINE: "timeline",
}

#: Filled from the venue directory when the venue changes.
VENUE_DEPENDENT_FIELDS = (CoreField.VENUE_ADDRESS, CoreField.VENUE_CAPACITY)

#: Changes suppliers must not miss are notified with high priority.
_HIGH_PRIORITY_FIELDS = frozenset(
    {CoreField.WEDDING_DATE, CoreField.VENUE_NAME, CoreField.CEREMONY_TIME}
)

_MAX_TEXT = 500
_MAX_TIMELINE_ITEMS = 200


@dataclass(frozen=True, slots=True)
class CoreFieldValue:
    """A field's current value; version 0 with value None when never set."""

    couple_id: str
    field_name: str
    value: JsonValue
    version: int
    updated_by: str | None = None
    updated_at: str | None = None

    def to_json(self) -> Payload:
        return {
            "field_name": self.field_name,
            "value": self.value,
            "version": self.version,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A requested change: the new value and the version the writer saw (None: any)."""

    value: JsonValue
    expected_version: int | None


@dataclass(frozen=True, slots=True)
class FieldWrite:
    """One write handed to the store."""

    field_name: str
    value: JsonValue
    expected_version: int | None


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """A field the store changed: its value before and its new state."""

    old_value: JsonValue
    new: CoreFieldValue

    @property
    def field_name(self) -> str:
        return self.new.field_name


@dataclass(frozen=True, slots=True)
class Venue:
    venue_id: str
    name: str
    address: str | None
    capacity: int | None


class VersionConflict(Conflict):
    """A write based on a version that is no longer current; carries the current state."""

    def __init__(self, current: CoreFieldValue, expected_version: int) -> None:
        super().__init__(
            f"core field {current.field_name!r} is at version {current.version} "
            f"(current value {current.value!r}), not {expected_version}: "
            "reload it and apply your change again",
            field=current.field_name,
        )
        self.current = current
        self.expected_version = expected_version


class CoreFieldStore(Protocol):
    async def core_field_values(self, couple_id: str) -> dict[str, CoreFieldValue]:
        """The couple's fields that were ever set, by name."""
        ...

    async def write_core_fields(
        self, couple_id: str, writes: Sequence[FieldWrite], *, updated_by: str, at: str
    ) -> list[AppliedChange]:
        """Apply `writes` atomically, in order; return the fields whose value changed.

        Raises `VersionConflict` (writing nothing) when a write's `expected_version` is not the
        field's current version (0 when never set). A value equal to the current one is not
        written and not returned.
        """
        ...


def plan_core_field_write(
    couple_id: str,
    write: FieldWrite,
    stored: CoreFieldValue | None,
    *,
    updated_by: str,
    at: str,
) -> tuple[CoreFieldValue, AppliedChange | None]:
    """What a store's `write_core_fields` does with one write, given the field as stored (None
    when never set): the field's current state (version 0 when never set) and the change to
    store, None when the value is already the stored one. Raises `VersionConflict` when the
    write was based on another version."""
    current = stored if stored is not None else CoreFieldValue(couple_id, write.field_name, None, 0)
    expected = write.expected_version
    if expected is not None and expected != current.version:
        raise VersionConflict(current, expected)
    if stored is not None and current.value == write.value:
        return current, None
    new = CoreFieldValue(
        couple_id, write.field_name, write.value, current.version + 1, updated_by, at
    )
    return current, AppliedChange(current.value, new)


class VenueDirectory(Protocol):
    async def venue_by_name(self, name: str) -> Venue | None:
        """The venue of that name (case-insensitive), None when not in the directory."""
        ...


def validate_core_field(field_name: str, value: JsonValue) -> CoreField:
    """The field, when `value` fits it (None clears any field); raises `Invalid` otherwise."""
    try:
        core_field = CoreField(field_name)
    except ValueError:
        known = ", ".join(f.value for f in CoreField)
        raise Invalid(
            f"unknown core field {field_name!r} (known: {known})", field=field_name
        ) from None
    if value is None:
        return core_field
    problem = _problem(core_field, value)
    if problem:
        raise Invalid(f"{field_name}: {problem}", field=field_name)
    return core_field


def _problem(field: CoreField, value: JsonValue) -> str | None:
    if field in (CoreField.VENUE_CAPACITY, CoreField.GUEST_COUNT):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return "must be a whole number, 0 or more"
        return None
    if field is CoreField.TIMELINE:
        if not isinstance(value, list) or len(value) > _MAX_TIMELINE_ITEMS:
            return f"must be a list of at most {_MAX_TIMELINE_ITEMS} items"
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("title"), str):
                return 'each item must be an object with a "title" (and a "time")'
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        return f"must be text of at most {_MAX_TEXT} characters"
    if field is CoreField.WEDDING_DATE:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return "must be a date like 2025-06-14"
    if field is CoreField.CEREMONY_TIME:
        try:
            dt.time.fromisoformat(value)
        except ValueError:
            return "must be a time like 16:00"
    if field is CoreField.CONTACT_EMAIL and "@" not in value:
        return "must be an email address"
    return None


class CoreFieldsService:
    """Reads and writes the couple's core fields; writes return their events."""

    def __init__(
        self,
        store: CoreFieldStore,
        venues: VenueDirectory,
        audience: Audience,
        notifications: NotificationService,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._venues = venues
        self._audience = audience
        self._notifications = notifications
        self._clock = clock

    async def get(self, couple_id: str) -> dict[str, CoreFieldValue]:
        """Every core field of the couple (unset ones at version 0 with value None)."""
        if await self._audience.couple_name(couple_id) is None:
            raise NotFound(f"unknown couple {couple_id!r}", field="couple_id")
        stored = await self._store.core_field_values(couple_id)
        return {
            f.value: stored.get(f.value) or CoreFieldValue(couple_id, f.value, None, 0)
            for f in CoreField
        }

    async def update_field(
        self,
        couple_id: str,
        field_name: str,
        value: JsonValue,
        *,
        expected_version: int | None,
        updated_by: str,
    ) -> Outcome[dict[str, CoreFieldValue]]:
        """`update` of one field."""
        return await self.update(
            couple_id, {field_name: FieldChange(value, expected_version)}, updated_by=updated_by
        )

    async def update(
        self, couple_id: str, changes: Mapping[str, FieldChange], *, updated_by: str
    ) -> Outcome[dict[str, CoreFieldValue]]:
        """Apply `changes` (all or nothing); the value is the fields that changed, by name."""
        profile = await self._audience.user_profile(updated_by)
        if not may_act_for_couple(profile, couple_id):
            raise NotPermitted(f"only the couple {couple_id} updates its core fields")
        couple_name = await self._audience.couple_name(couple_id)
        if couple_name is None:
            raise NotFound(f"unknown couple {couple_id!r}", field="couple_id")
        if not changes:
            raise Invalid("no core field to update", field="changes")
        writes = [
            FieldWrite(validate_core_field(name, c.value).value, c.value, c.expected_version)
            for name, c in changes.items()
        ]
        auto = await self._venue_writes(couple_id, changes)
        now = iso_timestamp(self._clock())
        applied = await self._store.write_core_fields(
            couple_id, [*writes, *auto], updated_by=updated_by, at=now
        )
        events = await self.announce(
            couple_id,
            applied,
            updated_by=updated_by,
            auto_populated={w.field_name for w in auto},
            couple_name=couple_name,
        )
        return Outcome({a.field_name: a.new for a in applied}, events)

    async def announce(
        self,
        couple_id: str,
        applied: Sequence[AppliedChange],
        *,
        updated_by: str,
        auto_populated: set[str] | frozenset[str] = frozenset(),
        couple_name: str | None = None,
    ) -> tuple[DomainEvent, ...]:
        """The events of changes already stored (by `update`, or seen by change capture).

        Changes to the fields named in `auto_populated` ride on the event of the field that
        caused them (the venue) instead of having events of their own. `couple_name` is the
        couple's display name when the caller already read it (None: read it here).
        """
        if not applied:
            return ()
        where, actor_name = await asyncio.gather(
            couple_audience(self._audience, couple_id), self._audience.user_name(updated_by)
        )
        channels = where.channels(channel_name(ChannelKind.CORE_FIELDS, couple_id))
        actor = actor_name or "Someone"
        filled = [a for a in applied if a.field_name in auto_populated]
        primary = [a for a in applied if a.field_name not in auto_populated] or filled
        events: list[DomainEvent] = []
        for change in primary:
            riders = filled if change.field_name == CoreField.VENUE_NAME else []
            payload: Payload = {
                "couple_id": couple_id,
                "field_name": change.field_name,
                "old_value": change.old_value,
                "new_value": change.new.value,
                "updated_by": updated_by,
                "timestamp": change.new.updated_at or iso_timestamp(self._clock()),
                "auto_populated_fields": [r.field_name for r in riders],
                "version": change.new.version,
                "updated_by_name": actor,
                "auto_populated_values": {
                    r.field_name: {"value": r.new.value, "version": r.new.version} for r in riders
                },
            }
            events.append(DomainEvent("core_fields_updated", channels, payload))
        drafts = await self._supplier_notifications(
            couple_id, where.suppliers, actor, primary, couple_name
        )
        notified = await self._notifications.create_many(drafts)
        return (*events, *notified.events)

    async def _venue_writes(
        self, couple_id: str, changes: Mapping[str, FieldChange]
    ) -> list[FieldWrite]:
        """The venue-dependent fields to fill, when the update changes the venue."""
        venue_change = changes.get(CoreField.VENUE_NAME)
        if venue_change is None or not isinstance(venue_change.value, str):
            return []
        current = (await self._store.core_field_values(couple_id)).get(CoreField.VENUE_NAME)
        if current is not None and current.value == venue_change.value:
            return []  # re-saving the same venue must not undo manual edits of its address
        venue = await self._venues.venue_by_name(venue_change.value)
        if venue is None:
            return []
        filled: dict[CoreField, JsonValue] = {
            CoreField.VENUE_ADDRESS: venue.address,
            CoreField.VENUE_CAPACITY: venue.capacity,
        }
        return [FieldWrite(f.value, value, None) for f, value in filled.items() if f not in changes]

    async def _supplier_notifications(
        self,
        couple_id: str,
        suppliers: Sequence[str],
        actor: str,
        changes: Sequence[AppliedChange],
        couple_name: str | None,
    ) -> list[NotificationDraft]:
        fields = [CoreField(c.field_name) for c in changes if c.field_name in _FIELD_NAMES]
        if not fields:
            return []
        if len(fields) == 1:
            title = f"{_LABELS[fields[0]].capitalize()} changed"
            message = _sentence(actor, fields[0], changes[0].new.value)
        else:
            title = "Wedding details changed"
            labels = [_LABELS[f] for f in fields]
            message = f"{actor} updated the {', '.join(labels[:-1])} and {labels[-1]}"
        # The couple's name (unless known) and every supplier's users at once (round trips on
        # PostgreSQL).
        all_users = asyncio.gather(*(self._audience.supplier_users(s) for s in suppliers))
        if couple_name is None:
            couple_name, users = await asyncio.gather(
                self._audience.couple_name(couple_id), all_users
            )
        else:
            users = await all_users
        shown_name = couple_name or couple_id
        priority = Priority.HIGH if _HIGH_PRIORITY_FIELDS & set(fields) else Priority.MEDIUM
        versions = ",".join(f"{c.field_name}/v{c.new.version}" for c in changes)
        cause = f"core_fields_updated/{couple_id}/{versions}"
        drafts: list[NotificationDraft] = []
        for supplier_users in users:
            for user_id in supplier_users:
                drafts.append(
                    NotificationDraft(
                        user_id=user_id,
                        type=NotificationType.CORE_FIELD_CHANGE,
                        title=f"{shown_name}: {title}",
                        message=message,
                        action_url=f"/clients/{couple_id}/core-fields",
                        priority=priority,
                        cause=cause,
                    )
                )
        return drafts


_FIELD_NAMES = frozenset(f.value for f in CoreField)


def _sentence(actor: str, field: CoreField, value: JsonValue) -> str:
    """ "Emma changed the venue to Garden Manor", "James updated the guest count to 150"."""
    label = _LABELS[field]
    if value is None:
        return f"{actor} cleared the {label}"
    if field is CoreField.TIMELINE:
        return f"{actor} updated the timeline"
    verb = "changed" if field in _HIGH_PRIORITY_FIELDS else "updated"
    return f"{actor} {verb} the {label} to {value}"
