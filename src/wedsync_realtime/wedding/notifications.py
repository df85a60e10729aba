"""Notifications: persisted per user, delivered live on ``user:{user_id}``.

Issue 5, "Journeys and notifications", and SPEC.md ("Notifications" events, "Notification
centre"): a notification has a type, title, message, optional action URL, a priority (low,
medium, high, urgent), and read and dismissed state. `NotificationService` creates them (for the
domain rules: form submission, journey milestone, invitation, core field change, mention, task
due), lists them (by type, unread only), counts the unread, marks read or unread, dismisses, and
clears all.

Every change returns one event on ``user:{user_id}`` carrying the user's new ``unread_count``, so
every connection of that user (every tab) updates its badge from the event alone:

* ``notification_new`` — the full notification;
* ``notification_read`` — ``read`` true (marked read) or false (marked unread);
* ``notification_dismissed`` — one notification, or ``notification_ids`` for "clear all".

A change that changes nothing (reading a read notification) returns no event. Acting on another
user's notification is refused as if it did not exist (`NotificationNotFound`): ids do not leak.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.errors import Invalid, NotFound
from wedsync_realtime.wedding.events import (
    DEFAULT_EVENT_PRIORITY,
    Clock,
    DomainEvent,
    Outcome,
    Payload,
    channel_name,
    iso_timestamp,
    utc_now,
)

log = logging.getLogger(__name__)

__all__ = [
    "EVENT_PRIORITY",
    "Notification",
    "NotificationDraft",
    "NotificationNotFound",
    "NotificationService",
    "NotificationStore",
    "NotificationType",
    "Priority",
]


class Priority(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


#: The event priority (1-10) a notification of each priority is published with.
EVENT_PRIORITY: dict[Priority, int] = {
    Priority.LOW: 3,
    Priority.MEDIUM: 5,
    Priority.HIGH: 7,
    Priority.URGENT: 10,
}


class NotificationType(enum.StrEnum):
    """The triggers of SPEC.md and issue 5. Stores accept any string; these are the known ones."""

    FORM_SUBMISSION = "form_submission"
    JOURNEY_MILESTONE = "journey_milestone"
    INVITATION = "invitation"
    CORE_FIELD_CHANGE = "core_field_change"
    MENTION = "mention"
    TASK_DUE = "task_due"
    CLIENT_MESSAGE = "client_message"
    PAYMENT_RECEIVED = "payment_received"
    MEETING_BOOKED = "meeting_booked"
    TASK_COMPLETED = "task_completed"
    ANNOUNCEMENT = "announcement"


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    """What a domain rule asks for; the service gives it an id and a creation time."""

    user_id: str
    type: str
    title: str
    message: str
    action_url: str | None = None
    priority: Priority = Priority.MEDIUM
    #: What caused it (``core_fields_updated/{couple}/{field}/v{version}``), when that is
    #: stable: the id is then derived from the cause and the user, so the same cause seen twice
    #: (a write and change capture, or a transaction re-read after a restart) notifies once.
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored notification. Times are ISO 8601 strings; `read_at`/`dismissed_at` None = not."""

    notification_id: str
    user_id: str
    type: str
    title: str
    message: str
    action_url: str | None
    priority: Priority
    created_at: str
    read_at: str | None = None
    dismissed_at: str | None = None

    @property
    def read(self) -> bool:
        return self.read_at is not None

    @property
    def dismissed(self) -> bool:
        return self.dismissed_at is not None

    def to_json(self) -> Payload:
        """The REST shape (and the body of ``notification_new``)."""
        return {
            "notification_id": self.notification_id,
            "user_id": self.user_id,
            "type": self.type,
            "title": self.title,
            "message": self.message,
            "action_url": self.action_url,
            "priority": self.priority.value,
            "read": self.read,
            "dismissed": self.dismissed,
            "created_at": self.created_at,
        }


class NotificationNotFound(NotFound):
    """No such notification for this user (it may exist for another user: not said)."""

    def __init__(self, notification_id: str) -> None:
        super().__init__(f"notification {notification_id!r} not found", field="notification_id")
        self.notification_id = notification_id


class NotificationStore(Protocol):
    """Persistence of notifications. Dismissed notifications are never listed nor counted."""

    async def insert_notification(self, notification: Notification) -> bool:
        """Store it; False (and nothing changed) when its id is already stored."""
        ...

    async def notification(self, user_id: str, notification_id: str) -> Notification | None:
        """The user's notification (dismissed or not), None when it is not the user's."""
        ...

    async def list_notifications(
        self, user_id: str, *, type: str | None, unread_only: bool, limit: int
    ) -> list[Notification]:
        """The user's undismissed notifications, newest first."""
        ...

    async def unread_count(self, user_id: str) -> int: ...

    async def set_read_at(
        self, user_id: str, notification_id: str, read_at: str | None
    ) -> None: ...

    async def set_dismissed_at(self, user_id: str, notification_id: str, at: str) -> None: ...

    async def dismiss_all(self, user_id: str, at: str) -> list[str]:
        """Dismiss every undismissed notification of the user; return their ids."""
        ...


def _new_id() -> str:
    return str(uuid.uuid4())


class NotificationService:
    """Notification rules over a `NotificationStore`; each method returns its events."""

    def __init__(
        self,
        store: NotificationStore,
        *,
        clock: Clock = utc_now,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_id = new_id

    def _now(self) -> str:
        return iso_timestamp(self._clock())

    # -- writes -----------------------------------------------------------------------------

    async def create(self, draft: NotificationDraft) -> Outcome[Notification]:
        """Store a notification and announce it (``notification_new``)."""
        if not draft.title.strip():
            raise Invalid("a notification needs a title", field="title")
        notification = Notification(
            notification_id=self._new_id() if draft.cause is None else _derived_id(draft),
            user_id=draft.user_id,
            type=str(draft.type),
            title=draft.title,
            message=draft.message,
            action_url=draft.action_url,
            priority=Priority(draft.priority),
            created_at=self._now(),
        )
        if not await self._store.insert_notification(notification):
            # The same cause notified before: announce the stored one again (same message id,
            # so subscribers who had it are not sent it twice).
            stored = await self._store.notification(draft.user_id, notification.notification_id)
            notification = stored or notification
        event = await self._event("notification_new", notification, notification.created_at)
        return Outcome(notification, (event,))

    async def create_many(self, drafts: Sequence[NotificationDraft]) -> Outcome[list[Notification]]:
        """`create` for each draft, in order."""
        # Concurrently (one round trip each on PostgreSQL), results in the drafts' order. A
        # draft that cannot be stored (its user was deleted meanwhile) is logged and skipped:
        # it must not cost the others, nor the event that caused them.
        results = await asyncio.gather(
            *(self.create(draft) for draft in drafts), return_exceptions=True
        )
        created: list[Notification] = []
        events: list[DomainEvent] = []
        for draft, result in zip(drafts, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and the like are not ours to swallow
                log.error("notification for %s not created: %r", draft.user_id, result)
                continue
            created.append(result.value)
            events.extend(result.events)
        return Outcome(created, tuple(events))

    async def mark_read(
        self, user_id: str, notification_id: str, *, read: bool = True
    ) -> Outcome[Notification]:
        """Mark read (or, with ``read=False``, unread)."""
        current = await self._owned(user_id, notification_id)
        if current.read == read:
            return Outcome(current)
        now = self._now()
        await self._store.set_read_at(user_id, notification_id, now if read else None)
        changed = await self._owned(user_id, notification_id)
        return Outcome(changed, (await self._event("notification_read", changed, now),))

    async def dismiss(self, user_id: str, notification_id: str) -> Outcome[Notification]:
        """Dismiss one notification (it leaves the list and the unread count)."""
        current = await self._owned(user_id, notification_id)
        if current.dismissed:
            return Outcome(current)
        now = self._now()
        await self._store.set_dismissed_at(user_id, notification_id, now)
        changed = await self._owned(user_id, notification_id)
        return Outcome(changed, (await self._event("notification_dismissed", changed, now),))

    async def clear_all(self, user_id: str) -> Outcome[list[str]]:
        """Dismiss every notification of the user: one event listing the ids."""
        now = self._now()
        ids = await self._store.dismiss_all(user_id, now)
        if not ids:
            return Outcome(ids)
        payload: Payload = {
            "notification_id": None,
            "notification_ids": list(ids),
            "user_id": user_id,
            "unread_count": await self._store.unread_count(user_id),
            "timestamp": now,
        }
        event = DomainEvent("notification_dismissed", (_user_channel(user_id),), payload)
        return Outcome(ids, (event,))

    # -- reads ------------------------------------------------------------------------------

    async def list(
        self,
        user_id: str,
        *,
        type: str | None = None,
        unread_only: bool = False,
        limit: int = 50,
    ) -> list[Notification]:
        """The user's notifications, newest first (dismissed ones excluded)."""
        if limit < 1:
            raise Invalid("limit must be at least 1", field="limit")
        return await self._store.list_notifications(
            user_id, type=type, unread_only=unread_only, limit=limit
        )

    async def unread_count(self, user_id: str) -> int:
        return await self._store.unread_count(user_id)

    # -- helpers ----------------------------------------------------------------------------

    async def _owned(self, user_id: str, notification_id: str) -> Notification:
        found = await self._store.notification(user_id, notification_id)
        if found is None:
            raise NotificationNotFound(notification_id)
        return found

    async def _event(self, name: str, notification: Notification, timestamp: str) -> DomainEvent:
        payload: Payload = {
            **notification.to_json(),
            "unread_count": await self._store.unread_count(notification.user_id),
            "timestamp": timestamp,
        }
        priority = (
            EVENT_PRIORITY[notification.priority]
            if name == "notification_new"
            else DEFAULT_EVENT_PRIORITY
        )
        return DomainEvent(name, (_user_channel(notification.user_id),), payload, priority)


#: The namespace of derived notification ids (uuid5), fixed forever: ids must stay stable.
_CAUSE_NAMESPACE = uuid.UUID("5d0b6f0e-8f0c-4b8e-9a55-77656473796e")


def _derived_id(draft: NotificationDraft) -> str:
    return str(uuid.uuid5(_CAUSE_NAMESPACE, f"{draft.cause}/{draft.user_id}"))


def _user_channel(user_id: str) -> str:
    return channel_name(ChannelKind.USER, user_id)
