"""Forms: a couple fills in a supplier's form; the supplier watches it fill up live.

SPEC.md user story 2 ("Shot List Preferences": progress moving as fields complete, completed
sections without refresh) and issue 5's form events: ``form_field_updated`` and
``form_submitted`` with {form_id, supplier_id, couple_id, field_id, user_name,
completion_percentage, timestamp} (plus form_title, couple_name, status and, for a field,
``field_completed``) on ``form:{F}``, ``form:responses:{F}``, ``supplier:{S}:forms`` and
``supplier:{S}:clients``. On submission each user of the supplier gets a notification.

Privacy, in `FormService.response_events`: events are produced only for a couple the form was sent
to and that is actively connected to the form's supplier; for any other couple nothing is produced,
so a disconnected couple's data never reaches a supplier's channels. Answers themselves are not in
the events (SPEC: "no sensitive data in socket messages"; ``form:{F}`` is shared by every couple the
form was sent to): the supplier reads them over REST.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wedsync_realtime.wedding.audience import Audience
from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.directory import UserType
from wedsync_realtime.wedding.errors import Invalid, NotFound, NotPermitted
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
    "FormDefinition",
    "FormField",
    "FormResponse",
    "FormService",
    "FormStore",
    "form_fields",
    "is_answered",
]

_MAX_ANSWER_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class FormField:
    field_id: str
    label: str
    required: bool = False


def form_fields(raw: Iterable[Mapping[str, object]] | None) -> tuple[FormField, ...]:
    """A form's fields from their stored JSON list (``{field_id, label, required}`` objects,
    in display order; None: no fields)."""
    return tuple(
        FormField(str(f["field_id"]), str(f["label"]), bool(f.get("required", False)))
        for f in raw or []
    )


@dataclass(frozen=True, slots=True)
class FormDefinition:
    form_id: str
    supplier_id: str
    title: str
    fields: tuple[FormField, ...]

    def field(self, field_id: str) -> FormField:
        for candidate in self.fields:
            if candidate.field_id == field_id:
                return candidate
        raise Invalid(f"form {self.form_id} has no field {field_id!r}", field="field_id")


@dataclass(frozen=True, slots=True)
class FormResponse:
    """A couple's answers to a form (field_id -> value) and whether they submitted it."""

    form_id: str
    couple_id: str
    data: dict[str, JsonValue] = field(default_factory=dict)
    status: str = "draft"
    submitted_at: str | None = None
    updated_at: str | None = None
    updated_by: str | None = None

    def completion_percentage(self, form: FormDefinition) -> int:
        """Answered fields of the form as a whole percentage."""
        if not form.fields:
            return 100 if self.status == "submitted" else 0
        answered = sum(is_answered(self.data.get(f.field_id)) for f in form.fields)
        return answered * 100 // len(form.fields)

    def to_json(self, form: FormDefinition) -> Payload:
        return {
            "form_id": self.form_id,
            "couple_id": self.couple_id,
            "data": dict(self.data),
            "status": self.status,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "completion_percentage": self.completion_percentage(form),
        }


def is_answered(value: JsonValue) -> bool:
    """Whether a value counts as an answer (not None, not blank, not an empty list)."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


class FormStore(Protocol):
    async def form_definition(self, form_id: str) -> FormDefinition | None: ...

    async def form_response(self, form_id: str, couple_id: str) -> FormResponse | None: ...

    async def save_form_answer(
        self,
        form_id: str,
        couple_id: str,
        field_id: str,
        value: JsonValue,
        *,
        updated_by: str,
        at: str,
    ) -> FormResponse:
        """Set one answer (creating the draft response when missing); return the response."""
        ...

    async def submit_form_response(
        self, form_id: str, couple_id: str, *, submitted_by: str, at: str
    ) -> FormResponse: ...


class FormService:
    """A couple's answers and submissions; each write returns its events."""

    def __init__(
        self,
        store: FormStore,
        audience: Audience,
        notifications: NotificationService,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._audience = audience
        self._notifications = notifications
        self._clock = clock

    async def get_response(self, form_id: str, couple_id: str) -> FormResponse:
        """The couple's response (an empty draft when they have not started)."""
        await self.form(form_id)
        found = await self._store.form_response(form_id, couple_id)
        return found or FormResponse(form_id, couple_id)

    async def update_field(
        self, form_id: str, field_id: str, value: JsonValue, *, user_id: str
    ) -> Outcome[FormResponse]:
        """Save one answer of the user's couple."""
        form, couple_id = await self._writable(form_id, user_id)
        form.field(field_id)
        if isinstance(value, str) and len(value) > _MAX_ANSWER_CHARS:
            raise Invalid(f"an answer holds at most {_MAX_ANSWER_CHARS} characters", field="value")
        now = iso_timestamp(self._clock())
        response = await self._store.save_form_answer(
            form_id, couple_id, field_id, value, updated_by=user_id, at=now
        )
        events = await self.response_events(
            "form_field_updated", form, response, field_id=field_id, user_id=user_id
        )
        return Outcome(response, events)

    async def submit(self, form_id: str, *, user_id: str) -> Outcome[FormResponse]:
        """Submit the user's couple's response; every required field must be answered."""
        form, couple_id = await self._writable(form_id, user_id)
        current = await self._store.form_response(form_id, couple_id) or FormResponse(
            form_id, couple_id
        )
        missing = [
            f.label
            for f in form.fields
            if f.required and not is_answered(current.data.get(f.field_id))
        ]
        if missing:
            raise Invalid(f"answer the required fields first: {', '.join(missing)}", field="data")
        now = iso_timestamp(self._clock())
        response = await self._store.submit_form_response(
            form_id, couple_id, submitted_by=user_id, at=now
        )
        return Outcome(response, await self.submission_events(form, response, user_id=user_id))

    async def submission_events(
        self, form: FormDefinition, response: FormResponse, *, user_id: str | None
    ) -> tuple[DomainEvent, ...]:
        """``form_submitted`` and the supplier's notifications, for a stored submission (from
        `submit` or from change capture)."""
        events = await self.response_events(
            "form_submitted", form, response, field_id=None, user_id=user_id
        )
        if not events:
            return ()
        notified = await self._notifications.create_many(
            await self._submission_notifications(form, response)
        )
        return (*events, *notified.events)

    async def response_events(
        self,
        event: str,
        form: FormDefinition,
        response: FormResponse,
        *,
        field_id: str | None,
        user_id: str | None,
    ) -> tuple[DomainEvent, ...]:
        """The events of a stored response change (from `update_field`/`submit` or from change
        capture); none unless the couple was sent the form and is connected to its supplier."""
        facts = await self._audience.form(form.form_id)
        if facts is None or response.couple_id not in facts.sent_to:
            return ()
        if not await self._audience.is_connected(form.supplier_id, response.couple_id):
            return ()
        user_name = (await self._audience.user_name(user_id) if user_id else None) or "Someone"
        payload: Payload = {
            "form_id": form.form_id,
            "supplier_id": form.supplier_id,
            "couple_id": response.couple_id,
            "field_id": field_id,
            "user_name": user_name,
            "completion_percentage": response.completion_percentage(form),
            "timestamp": response.updated_at or iso_timestamp(self._clock()),
            "form_title": form.title,
            "couple_name": await self._audience.couple_name(response.couple_id),
            "status": response.status,
        }
        if field_id is not None:
            payload["field_completed"] = is_answered(response.data.get(field_id))
        k, f, s = ChannelKind, form.form_id, form.supplier_id
        channels = (
            channel_name(k.FORM, f),
            channel_name(k.FORM_RESPONSES, f),
            channel_name(k.SUPPLIER_FORMS, s),
            channel_name(k.SUPPLIER_CLIENTS, s),
        )
        return (DomainEvent(event, channels, payload),)

    # -- helpers ----------------------------------------------------------------------------

    async def form(self, form_id: str) -> FormDefinition:
        """The form's definition (title, fields in order)."""
        form = await self._store.form_definition(form_id)
        if form is None:
            raise NotFound(f"unknown form {form_id!r}", field="form_id")
        return form

    async def _writable(self, form_id: str, user_id: str) -> tuple[FormDefinition, str]:
        """The form and the user's couple, when that couple may fill it in now."""
        profile = await self._audience.user_profile(user_id)
        if profile is None or profile.user_type is not UserType.COUPLE or not profile.couple_id:
            raise NotPermitted("only a couple fills in a form")
        form = await self.form(form_id)
        facts = await self._audience.form(form_id)
        if facts is None or profile.couple_id not in facts.sent_to:
            raise NotFound(f"unknown form {form_id!r}", field="form_id")
        if not await self._audience.is_connected(form.supplier_id, profile.couple_id):
            raise NotPermitted("you are no longer connected to this form's supplier")
        return form, profile.couple_id

    async def _submission_notifications(
        self, form: FormDefinition, response: FormResponse
    ) -> list[NotificationDraft]:
        couple_id = response.couple_id
        couple_name = await self._audience.couple_name(couple_id) or couple_id
        return [
            NotificationDraft(
                user_id=user_id,
                type=NotificationType.FORM_SUBMISSION,
                title=f"New form submission: {form.title}",
                message=f"{couple_name} submitted {form.title}",
                action_url=f"/forms/{form.form_id}/responses/{couple_id}",
                priority=Priority.HIGH,
                cause=f"form_submitted/{form.form_id}/{couple_id}/{response.submitted_at}",
            )
            for user_id in await self._audience.supplier_users(form.supplier_id)
        ]
