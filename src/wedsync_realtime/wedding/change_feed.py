"""Domain changes → domain events: the entry point change capture feeds into the one router.

Issue 5, "One pipeline for domain events": on PostgreSQL the WedSync tables change under the
server (the platform writes them), and logical replication hands each committed transaction on.
The CDC pipeline (`cdc/`, another module's business) turns its `CapturedChange`s into the
`DomainChange`s below — table name, action, and the rows as JSON values (``to_jsonb`` of the typed
values, as the Postgres Changes payload has them) — and calls `ChangeFeed.apply` once per
transaction. The feed asks the same services that the write API uses for the events
(`CoreFieldsService.announce`, `FormService.response_events`, `JourneyService.completion_events`),
so both sources produce the same events, and hands them to the same `EventRouter`, whose
domain-derived message ids make a re-read transaction harmless (notifications have ids derived
from their cause, so they are stored and announced once too).

Handled: ``core_field_values`` (insert/update; a venue change in the same transaction carries the
venue-dependent fields as ``auto_populated_fields``), ``form_responses`` (an update to
``submitted`` is ``form_submitted``; otherwise one ``form_field_updated`` per answer that changed)
and ``journey_instance_steps`` (an update to ``completed`` is ``journey_step_completed`` with the
milestone notifications, the instance's progress and next steps read after the commit; a first
``email_opened_at`` is ``journey_email_opened``). Telling a change from a touch needs the old row,
i.e. ``REPLICA IDENTITY FULL`` — the migrations set it. Other tables yield no events.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wedsync_realtime.wedding.core_fields import (
    VENUE_DEPENDENT_FIELDS,
    AppliedChange,
    CoreField,
    CoreFieldsService,
    CoreFieldValue,
)
from wedsync_realtime.wedding.errors import NotFound
from wedsync_realtime.wedding.events import DomainEvent, JsonValue
from wedsync_realtime.wedding.forms import FormResponse, FormService
from wedsync_realtime.wedding.journeys import JourneyInstance, JourneyService, StepStatus
from wedsync_realtime.wedding.router import EventRouter, RouteReport

__all__ = ["ChangeFeed", "ChangeType", "DomainChange"]

Row = Mapping[str, JsonValue]


class ChangeType(enum.StrEnum):
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class DomainChange:
    """One committed row change of a WedSync table, values as JSON."""

    table: str
    type: ChangeType
    record: Row | None
    old_record: Row | None = None


def _str(row: Row, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _int(row: Row, key: str) -> int:
    value = row.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ChangeFeed:
    """Turns committed transactions of domain changes into events, and routes them."""

    def __init__(
        self,
        router: EventRouter,
        core_fields: CoreFieldsService,
        forms: FormService,
        *,
        journeys: JourneyService | None = None,
    ) -> None:
        self._router = router
        self._core_fields = core_fields
        self._forms = forms
        self._journeys = journeys

    async def apply(self, transaction: Sequence[DomainChange]) -> RouteReport:
        """Route the events of one committed transaction."""
        return await self._router.route(await self.events_for(transaction))

    async def events_for(self, transaction: Sequence[DomainChange]) -> tuple[DomainEvent, ...]:
        """The events of one committed transaction, in commit order per kind."""
        events: list[DomainEvent] = []
        events += await self._core_field_events(
            [c for c in transaction if c.table == "core_field_values"]
        )
        for change in transaction:
            if change.table == "form_responses":
                events += await self._form_events(change)
            elif change.table == "journey_instance_steps":
                events += await self._journey_events(change)
        return tuple(events)

    async def _core_field_events(self, changes: Sequence[DomainChange]) -> list[DomainEvent]:
        by_couple: dict[tuple[str, str], list[AppliedChange]] = {}
        for change in changes:
            if change.type is ChangeType.DELETE or change.record is None:
                continue
            new, old = change.record, change.old_record or {}
            if old and old.get("value") == new.get("value"):
                continue  # a touch of the row without a new value: no event, as the write API
            couple_id, updated_by = _str(new, "couple_id"), _str(new, "updated_by")
            value = CoreFieldValue(
                couple_id=couple_id,
                field_name=_str(new, "field_name"),
                value=new.get("value"),
                version=_int(new, "version"),
                updated_by=updated_by or None,
                updated_at=_str(new, "updated_at") or None,
            )
            by_couple.setdefault((couple_id, updated_by), []).append(
                AppliedChange(old.get("value"), value)
            )
        events: list[DomainEvent] = []
        for (couple_id, updated_by), applied in by_couple.items():
            names = {a.field_name for a in applied}
            auto = (
                {f.value for f in VENUE_DEPENDENT_FIELDS} & names
                if CoreField.VENUE_NAME.value in names
                else set()
            )
            events += await self._core_fields.announce(
                couple_id, applied, updated_by=updated_by, auto_populated=auto
            )
        return events

    async def _form_events(self, change: DomainChange) -> list[DomainEvent]:
        if change.type is ChangeType.DELETE or change.record is None:
            return []
        new, old = change.record, change.old_record or {}
        form = await self._forms.form(_str(new, "form_id"))
        data = new.get("data")
        response = FormResponse(
            form_id=form.form_id,
            couple_id=_str(new, "couple_id"),
            data=dict(data) if isinstance(data, dict) else {},
            status=_str(new, "status") or "draft",
            submitted_at=_str(new, "submitted_at") or None,
            updated_at=_str(new, "updated_at") or None,
            updated_by=_str(new, "updated_by") or None,
        )
        user = response.updated_by
        if response.status == "submitted" and old.get("status") != "submitted":
            return list(await self._forms.submission_events(form, response, user_id=user))
        before = old.get("data")
        old_data = before if isinstance(before, dict) else {}
        changed = [k for k, v in response.data.items() if old_data.get(k) != v]
        events: list[DomainEvent] = []
        for field_id in changed:
            events += await self._forms.response_events(
                "form_field_updated", form, response, field_id=field_id, user_id=user
            )
        return events

    async def _journey_events(self, change: DomainChange) -> list[DomainEvent]:
        """A step's progress: only an update (a started journey's rows inserted as they are,
        already completed or not, are its set-up, not progress)."""
        journeys = self._journeys
        if journeys is None or change.type is not ChangeType.UPDATE or not change.record:
            return []
        new, old = change.record, change.old_record or {}
        done = StepStatus.COMPLETED.value
        completed = new.get("status") == done and old.get("status") != done
        opened = new.get("email_opened_at") is not None and old.get("email_opened_at") is None
        if not (completed or opened):
            return []
        step_id = _str(new, "step_id")
        instance = await _journey(journeys, _str(new, "instance_id"), step_id)
        if instance is None:
            return []
        events: list[DomainEvent] = []
        if opened:
            events += await journeys.email_opened_events(
                instance, step_id, opened_at=_str(new, "email_opened_at") or None
            )
        if completed:
            events += await journeys.completion_events(
                instance,
                step_id,
                completed_by=_str(new, "completed_by") or None,
                completed_at=_str(new, "completed_at") or None,
            )
        return events


async def _journey(
    journeys: JourneyService, instance_id: str, step_id: str
) -> JourneyInstance | None:
    """The instance as it is now; None when it (or the step) is gone since the commit."""
    try:
        instance = await journeys.get(instance_id)
        instance.step(step_id)
    except NotFound:
        return None
    return instance
