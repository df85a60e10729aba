"""SPEC.md "REST API shapes": presence over REST, and last seen.

* ``GET /api/realtime/presence`` — `{user_presence, collaborator_presence}`: your own presence
  (the most available of your tracked presences on this node; "offline" with your last seen when
  you track none) and that of every user you may see (`wedding.presence.may_see`: your supplier's
  users and team, your partner, the couples or suppliers you are actively connected to; admins:
  everyone) who is present on this node. With ``?channel=name``: the presences of that channel,
  for whoever may read it (the channel's read rule, as its `presence_state`). Users appearing
  offline are never listed to others.
* ``POST /api/realtime/presence`` `{status, current_page?, device_type?, presence_data?}` — sets
  the fields on every presence you track on this node, as if each of your connections had
  re-tracked it (a status of `offline` is "appear offline"; `online`/`busy` is activity).
* ``GET /api/realtime/presence/last-seen?user_ids=a,b`` — `{user_id: {status, last_seen_at,
  active_ago_s}}` for the users you may see (others are left out): live status when present,
  else "offline" and the last seen of the past 7 days (null when none).

All of it reads this node's presences (the engine does not merge other nodes' yet).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from wedsync_realtime.api.wedsync import (
    ERROR_RESPONSES,
    Actor,
    ActorDep,
    NodeDep,
    WeddingDep,
    read_access,
)
from wedsync_realtime.engine.node import Node
from wedsync_realtime.engine.presence_status import ACTIVE, Status, iso_time
from wedsync_realtime.protocol.session import CHANNEL_PREFIX
from wedsync_realtime.wedding.presence import LivePresence, best_presence, live_presences, may_see
from wedsync_realtime.wedding.runtime import WeddingRuntime

__all__ = ["router"]

router = APIRouter(prefix="/api/realtime", tags=["presence"], responses=ERROR_RESPONSES)

#: Users one last-seen request may ask about.
MAX_LAST_SEEN_USERS = 100

StatusName = Literal["online", "idle", "away", "busy", "offline"]


class UserPresence(BaseModel):
    status: str
    current_page: str | None = None
    is_typing: bool = False
    device_type: str | None = None
    last_activity: str | None = Field(default=None, description="ISO 8601 UTC")
    appear_offline: bool = Field(default=False, description="Hidden from everyone else")


class CollaboratorPresence(BaseModel):
    user_id: str
    user_name: str
    user_type: str | None = None
    status: str
    current_page: str | None = None
    is_typing: bool = False
    device_type: str | None = None
    last_activity: str | None = None
    active_ago_s: int | None = Field(default=None, description="Seconds since the last activity")


class PresenceOut(BaseModel):
    user_presence: UserPresence
    collaborator_presence: list[CollaboratorPresence]
    channel: str | None = Field(default=None, description="The channel asked about, if any")


class PresenceIn(BaseModel):
    status: StatusName
    current_page: str | None = Field(default=None, max_length=500)
    device_type: Literal["desktop", "mobile", "tablet"] | None = None
    presence_data: dict[str, Any] | None = None


class PresenceSet(BaseModel):
    user_presence: UserPresence
    updated_presences: int = Field(description="Presences of yours on this node changed")


class LastSeen(BaseModel):
    status: str = Field(description="Live status, or offline")
    last_seen_at: str | None = None
    active_ago_s: int | None = None


def _str(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    return value if isinstance(value, str) else None


def _last_activity(presence: LivePresence) -> str | None:
    if presence.last_activity is not None:
        return iso_time(presence.last_activity)
    return _str(presence.meta, "last_activity")


def _ago(node: Node, presence: LivePresence) -> int | None:
    if presence.last_activity is None:
        return None
    return max(0, round(node.wall_clock() - presence.last_activity))


async def _own(
    node: Node, wedding: WeddingRuntime, actor: Actor, topic: str | None
) -> UserPresence:
    mine = [p for p in live_presences(node, topic) if p.user_id == actor.user_id]
    if not mine:
        seen = (await wedding.presence.last_seen([actor.user_id])).get(actor.user_id)
        return UserPresence(
            status=str(Status.OFFLINE), last_activity=iso_time(seen[0]) if seen else None
        )
    best = best_presence(mine)
    return UserPresence(
        status=best.status,
        current_page=_str(best.meta, "current_page"),
        is_typing=best.meta.get("is_typing") is True,
        device_type=_str(best.meta, "device_type"),
        last_activity=_last_activity(best),
        appear_offline=best.hidden,
    )


async def _collaborator(
    node: Node, wedding: WeddingRuntime, user_id: str, presences: list[LivePresence]
) -> CollaboratorPresence:
    best = best_presence(presences)
    meta = best.meta
    name = _str(meta, "user_name") or await wedding.directory.user_name(user_id) or user_id
    user_type = _str(meta, "user_type")
    if user_type is None:
        profile = await wedding.directory.user_profile(user_id)
        user_type = str(profile.user_type) if profile is not None else None
    return CollaboratorPresence(
        user_id=user_id,
        user_name=name,
        user_type=user_type,
        status=best.status,
        current_page=_str(meta, "current_page"),
        is_typing=meta.get("is_typing") is True,
        device_type=_str(meta, "device_type"),
        last_activity=_last_activity(best),
        active_ago_s=_ago(node, best),
    )


def _visible_by_user(presences: list[LivePresence], me: str) -> dict[str, list[LivePresence]]:
    """Others' presences that are not hidden, per user."""
    grouped: dict[str, list[LivePresence]] = defaultdict(list)
    for presence in presences:
        if presence.user_id != me and not presence.hidden:
            grouped[presence.user_id].append(presence)
    return grouped


@router.get("/presence")
async def get_presence(
    actor: ActorDep,
    node: NodeDep,
    wedding: WeddingDep,
    channel: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
) -> PresenceOut:
    """Your presence and your collaborators' (or a channel's presences, with `channel`)."""
    topic = None
    if channel is not None:
        await read_access(node, actor.principal, channel)
        topic = CHANNEL_PREFIX + channel
    others = _visible_by_user(live_presences(node, topic), actor.user_id)
    collaborators = []
    for user_id in sorted(others):
        if topic is None and not await may_see(wedding.directory, actor.profile, user_id):
            continue
        collaborators.append(await _collaborator(node, wedding, user_id, others[user_id]))
    return PresenceOut(
        user_presence=await _own(node, wedding, actor, topic),
        collaborator_presence=collaborators,
        channel=channel,
    )


@router.post("/presence")
async def set_presence(
    body: PresenceIn, actor: ActorDep, node: NodeDep, wedding: WeddingDep
) -> PresenceSet:
    """Set your status (and page, device) on every presence you track on this node."""
    fields: dict[str, Any] = {"status": body.status}
    for name in ("current_page", "device_type", "presence_data"):
        value = getattr(body, name)
        if value is not None:
            fields[name] = value
    size = len(orjson.dumps(fields))
    if size > node.settings.max_payload_bytes:
        raise HTTPException(
            422, {"message": f"presence_data: {size} bytes is too large", "field": "presence_data"}
        )
    targets = [
        (channel, conn_id, entry)
        for channel, conn_id, entry in node.presence.entries()
        if (conn := node.connections.get(conn_id)) is not None
        and conn.principal.subject == actor.user_id
    ]
    for channel, conn_id, entry in targets:
        payload = {**entry.payload, **fields}
        if body.status != "offline":
            payload.pop("appear_offline", None)  # a status other than offline shows you again
        await node.track_presence(node.connections[conn_id], channel, entry.key, payload)
    if not targets and Status(body.status) in ACTIVE:
        wedding.presence.seen(actor.user_id, body.status, node.wall_clock())
    return PresenceSet(
        user_presence=await _own(node, wedding, actor, None), updated_presences=len(targets)
    )


@router.get("/presence/last-seen")
async def last_seen(
    actor: ActorDep,
    node: NodeDep,
    wedding: WeddingDep,
    user_ids: Annotated[str, Query(min_length=1, max_length=4000, description="Comma-separated")],
) -> dict[str, LastSeen]:
    """Status and last seen of the users you may see ("Lisa — online, active 2 minutes
    ago"); users you may not see are left out."""
    wanted = list(dict.fromkeys(u.strip() for u in user_ids.split(",") if u.strip()))
    if not wanted or len(wanted) > MAX_LAST_SEEN_USERS:
        raise HTTPException(
            422,
            {"message": f"user_ids: 1 to {MAX_LAST_SEEN_USERS} ids", "field": "user_ids"},
        )
    visible = [u for u in wanted if await may_see(wedding.directory, actor.profile, u)]
    live = _visible_by_user(live_presences(node), "")
    stored = await wedding.presence.last_seen([u for u in visible if u not in live])
    now = node.wall_clock()
    answer: dict[str, LastSeen] = {}
    for user_id in visible:
        if user_id in live:
            best = best_presence(live[user_id])
            at = best.last_activity if best.last_activity is not None else now
            answer[user_id] = LastSeen(
                status=best.status, last_seen_at=iso_time(at), active_ago_s=round(now - at)
            )
        elif user_id in stored:
            at = stored[user_id][0]
            answer[user_id] = LastSeen(
                status=str(Status.OFFLINE),
                last_seen_at=iso_time(at),
                active_ago_s=max(0, round(now - at)),
            )
        else:
            answer[user_id] = LastSeen(status=str(Status.OFFLINE))
    return answer
