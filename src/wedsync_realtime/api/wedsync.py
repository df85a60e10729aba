"""The WedSync REST API: how its routers are installed, who the caller is, how errors look.

The endpoints live in `wedsync_domain` (core fields, journeys, forms), `wedsync_notifications`
and `realtime_api` (SPEC.md "REST API shapes": channels, status, events). This module holds
what they share:

* `get_wedding` — the `WeddingRuntime` (SQLite on the embedded default, PostgreSQL in
  production mode); `get_writable_wedding` and `get_journeys` answer 503 in production mode,
  where the platform writes core fields, forms and journeys itself and change capture
  announces them (`get_journey_reader` serves the journey reads on both);
* `wedsync_user` — the caller as a WedSync user: the JWT `sub` is the user id of
  ``user_profiles``; a verified token without a profile is refused (403);
* `operator` — the service role or an admin profile, for operations endpoints;
* `read_access` — the catalog policy's read rule of a channel, reused for REST reads, so the
  REST API never shows what the channel would not (denials go to the audit log);
* errors: a `DomainError` is answered ``{"message", "field"}`` with its status (a stale core
  field version also names the current value), and a request that fails validation on these
  paths ``{"message", "field", "errors"}`` with 422, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from wedsync_realtime.api.deps import caller, get_node
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import ChannelError
from wedsync_realtime.wedding.core_fields import VersionConflict
from wedsync_realtime.wedding.directory import UserProfile, UserType
from wedsync_realtime.wedding.errors import DomainError
from wedsync_realtime.wedding.journeys import JourneyService
from wedsync_realtime.wedding.runtime import WeddingRuntime

__all__ = [
    "ERROR_RESPONSES",
    "Actor",
    "ErrorBody",
    "get_wedding",
    "install",
    "operator",
    "profile_of",
    "read_access",
    "wedsync_user",
]

#: Paths whose validation errors are answered in the `{"message", "field"}` shape.
API_PREFIXES = ("/api/wedsync/", "/api/realtime/")


class ErrorBody(BaseModel):
    """Every error of these endpoints."""

    message: str
    field: str | None = Field(default=None, description="The request field it is about")


class ValidationErrorBody(ErrorBody):
    errors: list[dict[str, Any]] = Field(description="Every problem, as pydantic reports it")


#: For `responses=` of every endpoint: the statuses they may answer with this body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid token"},
    403: {"model": ErrorBody, "description": "Not allowed (or no WedSync profile)"},
    404: {"model": ErrorBody, "description": "Unknown id"},
    422: {"model": ValidationErrorBody, "description": "A bad value, naming the field"},
    503: {"model": ErrorBody, "description": "No embedded WedSync store on this server"},
}


async def get_wedding(request: Request) -> WeddingRuntime:
    wedding: WeddingRuntime | None = getattr(request.app.state, "wedding", None)
    if wedding is None:
        raise HTTPException(503, {"message": "This server has no WedSync store"})
    return wedding


#: Why the write API of core fields, forms and journeys is off in production mode.
WRITES_ON_POSTGRES = (
    "The WedSync write API runs on the embedded store only (WEDSYNC_DATABASE_URL is set: the "
    "platform writes the WedSync tables and change capture announces their changes)"
)


async def get_writable_wedding(
    wedding: Annotated[WeddingRuntime, Depends(get_wedding)],
) -> WeddingRuntime:
    """The runtime, when it serves the write API of core fields, forms and journeys."""
    if not wedding.writes:
        raise HTTPException(503, {"message": WRITES_ON_POSTGRES})
    return wedding


async def get_journey_reader(
    wedding: Annotated[WeddingRuntime, Depends(get_wedding)],
) -> JourneyService:
    """The journey service, for reads (both backends keep journeys)."""
    if wedding.journeys is None:
        raise HTTPException(503, {"message": "This server keeps no WedSync journeys"})
    return wedding.journeys


async def get_journeys(
    wedding: Annotated[WeddingRuntime, Depends(get_writable_wedding)],
    journeys: Annotated[JourneyService, Depends(get_journey_reader)],
) -> JourneyService:
    """The journey service, for writes (the embedded default only)."""
    return journeys


@dataclass(frozen=True, slots=True)
class Actor:
    """A verified caller with a WedSync profile."""

    principal: Principal
    profile: UserProfile

    @property
    def user_id(self) -> str:
        return self.profile.user_id

    @property
    def is_admin(self) -> bool:
        return self.profile.user_type is UserType.ADMIN


async def profile_of(wedding: WeddingRuntime, principal: Principal) -> UserProfile | None:
    """The caller's WedSync profile (JWT `sub` = user id); None without a subject or profile."""
    subject = principal.subject
    return await wedding.directory.user_profile(subject) if subject else None


async def wedsync_user(
    principal: Annotated[Principal, Depends(caller)],
    wedding: Annotated[WeddingRuntime, Depends(get_wedding)],
) -> Actor:
    """The caller's WedSync profile (JWT `sub` = user id); 403 without one."""
    profile = await profile_of(wedding, principal)
    if profile is None:
        raise HTTPException(
            403, {"message": f"No WedSync user profile for {principal.user_id!r}", "field": "sub"}
        )
    return Actor(principal, profile)


async def operator(
    principal: Annotated[Principal, Depends(caller)],
    wedding: Annotated[WeddingRuntime, Depends(get_wedding)],
) -> Principal:
    """The service role, or a user whose profile is an admin; 403 for anyone else."""
    if principal.is_service:
        return principal
    profile = await profile_of(wedding, principal)
    if profile is None or profile.user_type is not UserType.ADMIN:
        raise HTTPException(
            403, {"message": "Only the service role or an admin may call this endpoint"}
        )
    return principal


async def read_access(node: Node, principal: Principal, channel: str) -> None:
    """403 unless the caller may subscribe to `channel` (the catalog's read rule)."""
    try:
        await node.require(principal, channel, Action.SUBSCRIBE, True, "read")
    except ChannelError as exc:
        raise HTTPException(403, {"message": exc.message}) from None


NodeDep = Annotated[Node, Depends(get_node)]
WeddingDep = Annotated[WeddingRuntime, Depends(get_wedding)]
WritableWeddingDep = Annotated[WeddingRuntime, Depends(get_writable_wedding)]
JourneysDep = Annotated[JourneyService, Depends(get_journeys)]
JourneyReaderDep = Annotated[JourneyService, Depends(get_journey_reader)]
ActorDep = Annotated[Actor, Depends(wedsync_user)]


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, DomainError):  # pragma: no cover - registered for DomainError only
        raise exc
    body: dict[str, Any] = {"message": exc.message, "field": exc.field}
    if isinstance(exc, VersionConflict):
        body["current"] = exc.current.to_json()
        body["expected_version"] = exc.expected_version
    return JSONResponse(body, status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for it only
        raise exc
    if not request.url.path.startswith(API_PREFIXES):
        # Other routers keep FastAPI's own shape.
        return await request_validation_exception_handler(request, exc)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    field = ".".join(str(part) for part in first["loc"][1:]) or None
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return JSONResponse({"message": message, "field": field, "errors": errors}, status_code=422)


def install(app: FastAPI) -> None:
    """Add the WedSync routers and error handlers to `app`."""
    from wedsync_realtime.api import (
        realtime_api,
        realtime_metrics,
        realtime_presence,
        wedsync_connections,
        wedsync_domain,
        wedsync_notifications,
    )

    app.include_router(wedsync_domain.router)
    app.include_router(wedsync_notifications.router)
    app.include_router(wedsync_connections.router)
    app.include_router(realtime_api.router)
    app.include_router(realtime_presence.router)
    app.include_router(realtime_metrics.router)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
