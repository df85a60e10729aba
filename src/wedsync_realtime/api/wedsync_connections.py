"""Supplier-couple connections over REST: list your own, pause, end or (re)activate one.

``PUT /api/wedsync/connections/{supplier_id}/{couple_id}`` with ``{"status": "active" | "paused"
| "ended"}`` runs `ConnectionService.set_status` (who may do what is documented there: the
couple's users and operators anything, the supplier's users pause or end only). When the pair
stops being active, the channels joined on this node that it allowed are closed before the
answer goes back; then ``connection_updated`` goes out on ``supplier:{S}:clients`` and
``couple:{C}``. In production mode it answers 503, as the other writes do: the platform writes
``supplier_client_connections`` and change capture re-checks joined members.

``GET /api/wedsync/connections?supplier_id=&couple_id=`` lists the caller's own pairs (every
status); the service role and admins name a supplier or a couple.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from wedsync_realtime.api.deps import caller
from wedsync_realtime.api.wedsync import (
    ERROR_RESPONSES,
    WeddingDep,
    WritableWeddingDep,
    profile_of,
)
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.wedding.connections import (
    Connection,
    ConnectionService,
    ConnectionStatus,
    Editor,
)
from wedsync_realtime.wedding.runtime import WeddingRuntime

__all__ = ["router"]

router = APIRouter(
    prefix="/api/wedsync/connections", tags=["connections"], responses=ERROR_RESPONSES
)

#: Why the connection API is off in production mode (reads included: the service keeps its
#: pairs in the embedded store).
CONNECTIONS_ON_POSTGRES = (
    "Supplier-couple connections are served by the embedded store only (WEDSYNC_DATABASE_URL "
    "is set: the platform writes supplier_client_connections)"
)


class ConnectionOut(BaseModel):
    supplier_id: str
    couple_id: str
    status: str = Field(description="active, paused, ended (or pending)")
    updated_at: str = Field(description="When the status was last set (else: created)")
    updated_by: str | None = None

    @classmethod
    def of(cls, connection: Connection) -> ConnectionOut:
        return cls.model_validate(connection.to_json())


class ConnectionList(BaseModel):
    connections: list[ConnectionOut] = Field(description="In (supplier_id, couple_id) order")


class ConnectionStatusIn(BaseModel):
    status: Literal["active", "paused", "ended"] = Field(
        description="active: only the couple's users and operators; paused, ended: also the "
        "supplier's users"
    )


def _service(wedding: WeddingRuntime) -> ConnectionService:
    if wedding.connections is None:
        raise HTTPException(503, {"message": CONNECTIONS_ON_POSTGRES})
    return wedding.connections


async def editor(principal: Annotated[Principal, Depends(caller)], wedding: WeddingDep) -> Editor:
    """The caller as an `Editor`: the service role, or a user with a WedSync profile (403
    without one)."""
    if principal.is_service:
        return Editor.service_role(principal.subject or principal.role)
    profile = await profile_of(wedding, principal)
    if profile is None:
        raise HTTPException(
            403, {"message": f"No WedSync user profile for {principal.user_id!r}", "field": "sub"}
        )
    return Editor.user(profile)


EditorDep = Annotated[Editor, Depends(editor)]


@router.get("")
async def list_connections(
    who: EditorDep,
    wedding: WeddingDep,
    supplier_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    couple_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> ConnectionList:
    """The caller's connections: a supplier's users see the supplier's, a couple's users the
    couple's (the other id filters); the service role and admins name either."""
    found = await _service(wedding).list(who, supplier_id=supplier_id, couple_id=couple_id)
    return ConnectionList(connections=[ConnectionOut.of(c) for c in found])


@router.put("/{supplier_id}/{couple_id}")
async def put_connection(
    supplier_id: str,
    couple_id: str,
    body: ConnectionStatusIn,
    who: EditorDep,
    wedding: WritableWeddingDep,
) -> ConnectionOut:
    """Set the pair's status. Pausing or ending closes, at once, the channels it allowed
    (``core_fields:{C}``, ``wedding:{W}``, ``collaboration:{S}:{C}``...) on every socket of
    this node; ``connection_updated`` then goes to ``supplier:{S}:clients`` and
    ``couple:{C}``."""
    service = _service(wedding)
    outcome = await service.set_status(supplier_id, couple_id, ConnectionStatus(body.status), who)
    return ConnectionOut.of(await wedding.deliver(outcome))
