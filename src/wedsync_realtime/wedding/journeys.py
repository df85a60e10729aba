"""Journeys: a supplier's ordered steps, run per couple, with live progress.

Issue 5, "Journeys and notifications", and SPEC.md user story 4: the couple completes "Venue
Walkthrough"; Mike sees it at once; "Contract Review" becomes available; timelines update; other
suppliers of the wedding see the progress.

A journey (a supplier's template: name and ordered steps) runs as one *instance* per couple. The
instance's id is the ``{journey_id}`` of the journey channels (``journey:{journey_id}:{client_id}``,
``journey:progress:{journey_id}``), as `Directory.journey` resolves it for the access rules.
Steps of an instance are ``locked``, ``available`` or ``completed``; the first step starts
available, and completing a step makes the next locked one available, so steps complete in order.

Events (payload {journey_id, step_id, supplier_id, couple_id, progress_percentage, next_steps,
timestamp}, plus journey_name, step_name, journey_status and, on completion, completed_by):
``journey_step_completed``, ``journey_email_opened``, ``journey_task_due``; on
``journey:{J}:{C}``, ``journey:progress:{J}``, ``couple:{C}``, ``couple:{C}:timeline``, each
``wedding:{W}`` of the couple and, while the supplier is actively connected to the couple,
``supplier:{S}:journeys`` and ``supplier:{S}:clients``. Other suppliers follow the progress on the
wedding channel; a journey is the business of its pair, so it never goes to their own channels.

On the embedded default the write API completes steps (`JourneyService.complete_step`); on
PostgreSQL the platform writes ``journey_instance_steps`` and change capture (`change_feed`) asks
the same `completion_events` / `email_opened_events` for the events, so both give the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from wedsync_realtime.wedding.audience import Audience
from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.directory import UserType
from wedsync_realtime.wedding.errors import Conflict, NotFound, NotPermitted
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
    "JourneyInstance",
    "JourneyService",
    "JourneyStep",
    "JourneyStore",
    "StepKind",
    "StepStatus",
]


class StepStatus(enum.StrEnum):
    LOCKED = "locked"
    AVAILABLE = "available"
    COMPLETED = "completed"


class StepKind(enum.StrEnum):
    TASK = "task"
    EMAIL = "email"
    MEETING = "meeting"


@dataclass(frozen=True, slots=True)
class JourneyStep:
    """One step of one couple's journey."""

    step_id: str
    name: str
    position: int
    kind: StepKind
    status: StepStatus
    completed_at: str | None = None
    completed_by: str | None = None
    due_at: str | None = None
    email_opened_at: str | None = None

    def brief(self) -> Payload:
        return {"step_id": self.step_id, "name": self.name, "kind": self.kind.value}


@dataclass(frozen=True, slots=True)
class JourneyInstance:
    """A couple's run of a journey, its steps in order."""

    journey_id: str
    journey_name: str
    supplier_id: str
    couple_id: str
    status: str
    steps: tuple[JourneyStep, ...]

    @property
    def progress_percentage(self) -> int:
        """Completed steps as a whole percentage (100 only when every step is done)."""
        if not self.steps:
            return 0
        done = sum(s.status is StepStatus.COMPLETED for s in self.steps)
        return done * 100 // len(self.steps)

    @property
    def next_steps(self) -> tuple[JourneyStep, ...]:
        """The steps available now, in order."""
        return tuple(s for s in self.steps if s.status is StepStatus.AVAILABLE)

    def step(self, step_id: str) -> JourneyStep:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise NotFound(f"journey {self.journey_id} has no step {step_id!r}", field="step_id")

    def to_json(self) -> Payload:
        steps: list[JsonValue] = [
            {
                "step_id": s.step_id,
                "name": s.name,
                "kind": s.kind.value,
                "status": s.status.value,
                "completed_at": s.completed_at,
                "completed_by": s.completed_by,
            }
            for s in self.steps
        ]
        return {
            "journey_id": self.journey_id,
            "journey_name": self.journey_name,
            "supplier_id": self.supplier_id,
            "couple_id": self.couple_id,
            "status": self.status,
            "progress_percentage": self.progress_percentage,
            "steps": steps,
        }


class JourneyStore(Protocol):
    async def journey_instance(self, journey_id: str) -> JourneyInstance | None: ...

    async def complete_journey_step(
        self, journey_id: str, step_id: str, *, completed_by: str, at: str
    ) -> bool:
        """Atomically complete the step if it is available, make the next locked step
        available, and mark the instance completed after its last step. False (and nothing
        changed) when the step was not available."""
        ...

    async def record_email_opened(self, journey_id: str, step_id: str, *, at: str) -> bool:
        """Record the first opening of the step's email; False when already recorded."""
        ...


class JourneyService:
    """Journey progress; each write returns its events (and milestone notifications)."""

    def __init__(
        self,
        store: JourneyStore,
        audience: Audience,
        notifications: NotificationService,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._audience = audience
        self._notifications = notifications
        self._clock = clock

    async def get(self, journey_id: str) -> JourneyInstance:
        instance = await self._store.journey_instance(journey_id)
        if instance is None:
            raise NotFound(f"unknown journey {journey_id!r}", field="journey_id")
        return instance

    async def complete_step(
        self, journey_id: str, step_id: str, *, completed_by: str
    ) -> Outcome[JourneyInstance]:
        """Complete an available step (by the couple, the supplier's users or an admin)."""
        instance = await self.get(journey_id)
        await self._check_actor(instance, completed_by)
        step = instance.step(step_id)
        if step.status is StepStatus.COMPLETED:
            raise Conflict(f"step {step.name!r} is already completed", field="step_id")
        if step.status is StepStatus.LOCKED:
            waiting = ", ".join(s.name for s in instance.next_steps) or "the previous steps"
            raise Conflict(
                f"step {step.name!r} is not available yet: complete {waiting} first",
                field="step_id",
            )
        now = iso_timestamp(self._clock())
        if not await self._store.complete_journey_step(
            journey_id, step_id, completed_by=completed_by, at=now
        ):
            raise Conflict(f"step {step.name!r} changed meanwhile; reload it", field="step_id")
        done = await self.get(journey_id)
        events = await self.completion_events(
            done, step_id, completed_by=completed_by, completed_at=now
        )
        return Outcome(done, events)

    async def email_opened(self, journey_id: str, step_id: str) -> Outcome[JourneyInstance]:
        """The couple opened the step's email (first opening only yields an event)."""
        instance = await self.get(journey_id)
        instance.step(step_id)
        now = iso_timestamp(self._clock())
        if not await self._store.record_email_opened(journey_id, step_id, at=now):
            return Outcome(instance)
        instance = await self.get(journey_id)
        return Outcome(instance, await self.email_opened_events(instance, step_id, opened_at=now))

    async def completion_events(
        self,
        instance: JourneyInstance,
        step_id: str,
        *,
        completed_by: str | None,
        completed_at: str | None,
    ) -> tuple[DomainEvent, ...]:
        """``journey_step_completed`` and the milestone notifications, for a completion that is
        stored (from `complete_step`, or from change capture on PostgreSQL). `instance` is the
        journey as read after the completion; the notifications' ids derive from the step and
        `completed_at`, so the same completion seen twice notifies once."""
        step = instance.step(step_id)
        now = completed_at or iso_timestamp(self._clock())
        # Read once for both the channels and the recipients of this one completion.
        connected = await self._is_connected(instance)
        extra: Payload = {"completed_by": completed_by}
        event = await self._event(
            "journey_step_completed", instance, step, now, extra, connected=connected
        )
        drafts = await self._milestone_notifications(
            instance, step, completed_by, completed_at, connected=connected
        )
        notified = await self._notifications.create_many(drafts)
        return (event, *notified.events)

    async def email_opened_events(
        self, instance: JourneyInstance, step_id: str, *, opened_at: str | None
    ) -> tuple[DomainEvent, ...]:
        """``journey_email_opened``, for a first opening that is stored (from `email_opened`,
        or from change capture on PostgreSQL)."""
        now = opened_at or iso_timestamp(self._clock())
        step = instance.step(step_id)
        return (await self._event("journey_email_opened", instance, step, now, {}),)

    async def task_due(self, journey_id: str, step_id: str) -> Outcome[JourneyInstance]:
        """A step's task is due: an event and a notification to the couple (none if done)."""
        instance = await self.get(journey_id)
        step = instance.step(step_id)
        if step.status is StepStatus.COMPLETED:
            return Outcome(instance)
        now = iso_timestamp(self._clock())
        event = await self._event("journey_task_due", instance, step, now, {})
        supplier = await self._audience.supplier_name(instance.supplier_id) or "Your supplier"
        drafts = [
            NotificationDraft(
                user_id=user_id,
                type=NotificationType.TASK_DUE,
                title=f"Task due: {step.name}",
                message=f"{step.name} for {supplier} ({instance.journey_name}) is due",
                action_url=f"/journeys/{journey_id}",
                priority=Priority.HIGH,
            )
            for user_id in await self._audience.couple_users(instance.couple_id)
        ]
        notified = await self._notifications.create_many(drafts)
        return Outcome(instance, (event, *notified.events))

    # -- helpers ----------------------------------------------------------------------------

    async def _check_actor(self, instance: JourneyInstance, user_id: str) -> None:
        profile = await self._audience.user_profile(user_id)
        if profile is None:
            raise NotPermitted("unknown user")
        if profile.user_type is UserType.ADMIN:
            return
        own_couple = (
            profile.user_type is UserType.COUPLE and profile.couple_id == instance.couple_id
        )
        own_supplier = (
            profile.user_type is UserType.SUPPLIER and profile.supplier_id == instance.supplier_id
        )
        if not (own_couple or own_supplier):
            raise NotPermitted(f"only the couple and the supplier of journey {instance.journey_id}")
        if not await self._is_connected(instance):
            raise Conflict("the supplier and the couple are no longer connected")

    async def _is_connected(self, instance: JourneyInstance) -> bool:
        return await self._audience.is_connected(instance.supplier_id, instance.couple_id)

    async def _channels(self, instance: JourneyInstance, connected: bool | None) -> tuple[str, ...]:
        """Where an event about the instance goes; `connected` None = read it now."""
        k, j, c, s = ChannelKind, instance.journey_id, instance.couple_id, instance.supplier_id
        channels = [
            channel_name(k.JOURNEY, j, c),
            channel_name(k.JOURNEY_PROGRESS, j),
            channel_name(k.COUPLE, c),
            channel_name(k.COUPLE_TIMELINE, c),
            *(channel_name(k.WEDDING, w) for w in await self._audience.couple_weddings(c)),
        ]
        if connected is None:
            connected = await self._is_connected(instance)
        if connected:
            channels += [channel_name(k.SUPPLIER_JOURNEYS, s), channel_name(k.SUPPLIER_CLIENTS, s)]
        return tuple(channels)

    async def _event(
        self,
        name: str,
        instance: JourneyInstance,
        step: JourneyStep,
        now: str,
        extra: Payload,
        *,
        connected: bool | None = None,
    ) -> DomainEvent:
        payload: Payload = {
            "journey_id": instance.journey_id,
            "step_id": step.step_id,
            "supplier_id": instance.supplier_id,
            "couple_id": instance.couple_id,
            "progress_percentage": instance.progress_percentage,
            "next_steps": [s.brief() for s in instance.next_steps],
            "timestamp": now,
            "journey_name": instance.journey_name,
            "step_name": step.name,
            "journey_status": instance.status,
            **extra,
        }
        return DomainEvent(name, await self._channels(instance, connected), payload)

    async def _milestone_notifications(
        self,
        instance: JourneyInstance,
        step: JourneyStep,
        completed_by: str | None,
        completed_at: str | None,
        *,
        connected: bool,
    ) -> list[NotificationDraft]:
        """The other side hears of the milestone ("✅ Venue Walkthrough — Completed"): the
        supplier's users (while connected to the couple) and the couple's, but not who did it."""
        couple_name = await self._audience.couple_name(instance.couple_id) or instance.couple_id
        actor = (await self._audience.user_name(completed_by) if completed_by else None) or (
            couple_name
        )
        following = ", ".join(s.name for s in instance.next_steps)
        message = f"{actor} completed {step.name}"
        message += f". Next: {following}" if following else f". {instance.journey_name} is complete"
        recipients: list[str] = []
        if connected:
            recipients += await self._audience.supplier_users(instance.supplier_id)
        recipients += await self._audience.couple_users(instance.couple_id)
        cause = f"journey_step_completed/{instance.journey_id}/{step.step_id}/{completed_at or ''}"
        return [
            NotificationDraft(
                user_id=user_id,
                type=NotificationType.JOURNEY_MILESTONE,
                title=f"✅ {step.name} — Completed",
                message=message,
                action_url=f"/journeys/{instance.journey_id}",
                priority=Priority.MEDIUM,
                cause=cause,
            )
            for user_id in recipients
            if user_id != completed_by
        ]
