"""The write API of the embedded default: core fields, journey steps, form responses.

Issue 5, "REST API": "Plus the write API of the embedded default: core fields, form responses,
journey steps, notifications." Each write runs the domain service, which stores the change and
returns its events; `WeddingRuntime.deliver` hands those to the router before the answer goes
back, so a caller that gets 200 knows every subscriber has been sent the change. Reads are
allowed to whoever may read the matching channel (``core_fields:{C}``,
``journey:progress:{J}``, ``form:{F}``, ``form:responses:{F}``): the REST API shows nothing the
channel would not.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from wedsync_realtime.api.deps import caller
from wedsync_realtime.api.wedsync import (
    ERROR_RESPONSES,
    ActorDep,
    ErrorBody,
    JourneyReaderDep,
    JourneysDep,
    NodeDep,
    WeddingDep,
    WritableWeddingDep,
    operator,
    read_access,
)
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.wedding.channels import ChannelKind
from wedsync_realtime.wedding.core_fields import CoreFieldValue, FieldChange
from wedsync_realtime.wedding.directory import UserType
from wedsync_realtime.wedding.errors import NotFound
from wedsync_realtime.wedding.events import channel_name
from wedsync_realtime.wedding.forms import FormDefinition, FormResponse
from wedsync_realtime.wedding.journeys import JourneyInstance

__all__ = ["router"]

router = APIRouter(prefix="/api/wedsync", tags=["wedsync"], responses=ERROR_RESPONSES)

PrincipalDep = Annotated[Principal, Depends(caller)]
OperatorDep = Annotated[Principal, Depends(operator)]

# -- core fields ------------------------------------------------------------------------------


class CoreFieldOut(BaseModel):
    field_name: str
    value: Any = Field(description="JSON value; null when never set")
    version: int = Field(description="0 while never set, then one more per change")
    updated_by: str | None = None
    updated_at: str | None = None

    @classmethod
    def of(cls, value: CoreFieldValue) -> CoreFieldOut:
        return cls.model_validate(value.to_json())


class CoreFields(BaseModel):
    couple_id: str
    fields: dict[str, CoreFieldOut]


class FieldChangeIn(BaseModel):
    value: Any = Field(description="The new value (null clears the field)")
    version: int = Field(ge=0, description="The version the writer saw (0: never set)")


class CoreFieldsPatch(BaseModel):
    changes: dict[str, FieldChangeIn] = Field(
        min_length=1, max_length=20, description="field name → change; all or nothing"
    )


class CoreFieldsUpdated(BaseModel):
    couple_id: str
    updated: dict[str, CoreFieldOut] = Field(
        description="The fields that changed, venue-dependent fields filled in included"
    )


class CoreFieldConflict(ErrorBody):
    current: CoreFieldOut
    expected_version: int


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": CoreFieldConflict, "description": "Stale version: current value"}
}


@router.get("/couples/{couple_id}/core-fields")
async def get_core_fields(
    couple_id: str, principal: PrincipalDep, node: NodeDep, wedding: WeddingDep
) -> CoreFields:
    """Every core field of the couple with its version (the couple and connected suppliers)."""
    await read_access(node, principal, channel_name(ChannelKind.CORE_FIELDS, couple_id))
    fields = await wedding.core_fields.get(couple_id)
    return CoreFields(
        couple_id=couple_id, fields={k: CoreFieldOut.of(v) for k, v in fields.items()}
    )


@router.patch("/couples/{couple_id}/core-fields", responses=_CONFLICT)
async def patch_core_fields(
    couple_id: str, body: CoreFieldsPatch, actor: ActorDep, wedding: WritableWeddingDep
) -> CoreFieldsUpdated:
    """Change core fields (the couple only), each based on the version the writer saw; a stale
    version refuses the whole change with 409 naming the current value."""
    changes = {k: FieldChange(c.value, c.version) for k, c in body.changes.items()}
    outcome = await wedding.core_fields.update(couple_id, changes, updated_by=actor.user_id)
    updated = await wedding.deliver(outcome)
    return CoreFieldsUpdated(
        couple_id=couple_id, updated={k: CoreFieldOut.of(v) for k, v in updated.items()}
    )


@router.put("/couples/{couple_id}/core-fields/{field_name}", responses=_CONFLICT)
async def put_core_field(
    couple_id: str,
    field_name: str,
    body: FieldChangeIn,
    actor: ActorDep,
    wedding: WritableWeddingDep,
) -> CoreFieldsUpdated:
    """Change one core field (as PATCH with one change)."""
    outcome = await wedding.core_fields.update_field(
        couple_id, field_name, body.value, expected_version=body.version, updated_by=actor.user_id
    )
    updated = await wedding.deliver(outcome)
    return CoreFieldsUpdated(
        couple_id=couple_id, updated={k: CoreFieldOut.of(v) for k, v in updated.items()}
    )


# -- journeys ---------------------------------------------------------------------------------


class JourneyStepOut(BaseModel):
    step_id: str
    name: str
    kind: str
    status: str = Field(description="locked, available or completed")
    completed_at: str | None = None
    completed_by: str | None = None


class JourneyOut(BaseModel):
    journey_id: str
    journey_name: str
    supplier_id: str
    couple_id: str
    status: str
    progress_percentage: int
    steps: list[JourneyStepOut]
    next_steps: list[str] = Field(description="Ids of the steps available now")

    @classmethod
    def of(cls, instance: JourneyInstance) -> JourneyOut:
        next_steps = [s.step_id for s in instance.next_steps]
        return cls.model_validate({**instance.to_json(), "next_steps": next_steps})


_STEP_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Step locked or already completed"}
}


@router.get("/journeys/{journey_id}")
async def get_journey(
    journey_id: str, principal: PrincipalDep, node: NodeDep, journeys: JourneyReaderDep
) -> JourneyOut:
    """A couple's journey with its steps (its supplier and its couple), on either backend."""
    await read_access(node, principal, channel_name(ChannelKind.JOURNEY_PROGRESS, journey_id))
    return JourneyOut.of(await journeys.get(journey_id))


@router.post("/journeys/{journey_id}/steps/{step_id}/complete", responses=_STEP_CONFLICT)
async def complete_journey_step(
    journey_id: str, step_id: str, actor: ActorDep, journeys: JourneysDep, wedding: WeddingDep
) -> JourneyOut:
    """Complete an available step (the couple or the supplier); the next step opens."""
    outcome = await journeys.complete_step(journey_id, step_id, completed_by=actor.user_id)
    return JourneyOut.of(await wedding.deliver(outcome))


@router.post("/journeys/{journey_id}/steps/{step_id}/email-opened")
async def journey_email_opened(
    journey_id: str,
    step_id: str,
    _operator: OperatorDep,
    journeys: JourneysDep,
    wedding: WeddingDep,
) -> JourneyOut:
    """The couple opened the step's email (reported by the mailer: service role or admin)."""
    return JourneyOut.of(await wedding.deliver(await journeys.email_opened(journey_id, step_id)))


@router.post("/journeys/{journey_id}/steps/{step_id}/task-due")
async def journey_task_due(
    journey_id: str,
    step_id: str,
    _operator: OperatorDep,
    journeys: JourneyReaderDep,
    wedding: WeddingDep,
) -> JourneyOut:
    """The step's task is due (reported by the scheduler: service role or admin). It writes
    no journey row, only the couple's notification, so it is served in production mode too,
    where no row change could announce it."""
    return JourneyOut.of(await wedding.deliver(await journeys.task_due(journey_id, step_id)))


# -- forms ------------------------------------------------------------------------------------


class FormFieldOut(BaseModel):
    field_id: str
    label: str
    required: bool


class FormOut(BaseModel):
    form_id: str
    supplier_id: str
    title: str
    fields: list[FormFieldOut]

    @classmethod
    def of(cls, form: FormDefinition) -> FormOut:
        return cls(
            form_id=form.form_id,
            supplier_id=form.supplier_id,
            title=form.title,
            fields=[
                FormFieldOut(field_id=f.field_id, label=f.label, required=f.required)
                for f in form.fields
            ],
        )


class FormResponseOut(BaseModel):
    form_id: str
    couple_id: str
    data: dict[str, Any] = Field(description="field_id → answer")
    status: str = Field(description="draft or submitted")
    submitted_at: str | None = None
    updated_at: str | None = None
    updated_by: str | None = None
    completion_percentage: int

    @classmethod
    def of(cls, response: FormResponse, form: FormDefinition) -> FormResponseOut:
        return cls.model_validate(response.to_json(form))


class AnswerIn(BaseModel):
    value: Any = Field(description="The answer (null or blank: unanswered)")


@router.get("/forms/{form_id}")
async def get_form(
    form_id: str, principal: PrincipalDep, node: NodeDep, wedding: WeddingDep
) -> FormOut:
    """The form's title and fields (its supplier and the connected couples it was sent to)."""
    await read_access(node, principal, channel_name(ChannelKind.FORM, form_id))
    return FormOut.of(await wedding.forms.form(form_id))


@router.get("/forms/{form_id}/responses/{couple_id}")
async def get_form_response(
    form_id: str, couple_id: str, actor: ActorDep, node: NodeDep, wedding: WeddingDep
) -> FormResponseOut:
    """A couple's answers: for the form's supplier, and for the couple itself."""
    profile = actor.profile
    if profile.user_type is UserType.COUPLE and profile.couple_id != couple_id:
        raise NotFound(f"no response of {couple_id!r} to form {form_id!r}", field="couple_id")
    await read_access(node, actor.principal, channel_name(ChannelKind.FORM_RESPONSES, form_id))
    form = await wedding.forms.form(form_id)
    return FormResponseOut.of(await wedding.forms.get_response(form_id, couple_id), form)


@router.put("/forms/{form_id}/response/fields/{field_id}")
async def answer_form_field(
    form_id: str, field_id: str, body: AnswerIn, actor: ActorDep, wedding: WritableWeddingDep
) -> FormResponseOut:
    """Save one answer of the caller's couple (``form_field_updated`` to the supplier)."""
    outcome = await wedding.forms.update_field(form_id, field_id, body.value, user_id=actor.user_id)
    response = await wedding.deliver(outcome)
    return FormResponseOut.of(response, await wedding.forms.form(form_id))


@router.post("/forms/{form_id}/response/submit")
async def submit_form(
    form_id: str, actor: ActorDep, wedding: WritableWeddingDep
) -> FormResponseOut:
    """Submit the caller's couple's response (every required field answered)."""
    response = await wedding.deliver(await wedding.forms.submit(form_id, user_id=actor.user_id))
    return FormResponseOut.of(response, await wedding.forms.form(form_id))
