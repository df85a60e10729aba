"""SPEC.md "REST API shapes" answered from the node: channels, status, events, subscribe.

* ``GET /api/realtime/channels`` — the caller's catalog channels (their own, their clients' or
  their suppliers', their weddings) and every channel they have joined, each with its type and
  this node's subscriber count; their subscriptions; their limits. Operators (service role,
  admins) see every channel joined on this node.
* ``GET /api/realtime/channels/{name}`` — one channel, for whoever may read it.
* ``GET /api/realtime/status`` — whether the caller is connected, how many channels they hold,
  and the messages their channels retain (history: the recovery window).
* ``POST /api/realtime/events`` — publish an event on a channel the caller may write to, through
  the domain router (per-channel message rate of the caller's tier applies); each one published
  is a ``realtime_events`` row of the audit log (`expires_in_minutes` its `expires_at`).
* ``POST /api/realtime/subscribe`` — validate channels (the SPEC's short names with filters, or
  catalog names) against the policy and return the topics to join.

Counts are this node's: the engine keeps local subscribers only (other nodes' are not summed).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, Field

from wedsync_realtime.api.deps import caller
from wedsync_realtime.api.wedsync import (
    ERROR_RESPONSES,
    NodeDep,
    WeddingDep,
    profile_of,
    read_access,
)
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action
from wedsync_realtime.engine.history import MAX_MESSAGE_ID_LENGTH
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import ChannelError
from wedsync_realtime.protocol.session import CHANNEL_PREFIX
from wedsync_realtime.timestamps import iso_from_epoch
from wedsync_realtime.wedding.channels import ChannelKind, parse_channel
from wedsync_realtime.wedding.directory import UserProfile, UserType
from wedsync_realtime.wedding.events import DomainEvent, channel_name
from wedsync_realtime.wedding.router import EventRouter, audit_route
from wedsync_realtime.wedding.runtime import WeddingRuntime

__all__ = ["router"]

router = APIRouter(prefix="/api/realtime", tags=["realtime"], responses=ERROR_RESPONSES)

PrincipalDep = Annotated[Principal, Depends(caller)]

#: SPEC.md "Data model": `realtime_channels.max_subscribers` default (advisory, not enforced).
MAX_SUBSCRIBERS = 1000
#: SPEC.md: `POST /api/realtime/subscribe` is rate-limited to 10 per minute per user.
SUBSCRIBE_PER_MINUTE = 10

_K = ChannelKind
#: SPEC.md "Channels": private, shared, broadcast and resource channels.
_TYPES: dict[ChannelKind, str] = {
    **{
        k: "private"
        for k in (
            _K.SUPPLIER,
            _K.SUPPLIER_TEAM,
            _K.SUPPLIER_CLIENTS,
            _K.SUPPLIER_FORMS,
            _K.SUPPLIER_JOURNEYS,
            _K.SUPPLIER_DASHBOARD,
            _K.COUPLE,
            _K.COUPLE_SUPPLIERS,
            _K.COUPLE_TASKS,
            _K.COUPLE_TIMELINE,
            _K.COUPLE_DASHBOARD,
            _K.USER,
        )
    },
    **{k: "shared" for k in (_K.WEDDING, _K.COLLABORATION, _K.FORM, _K.JOURNEY)},
    _K.BROADCAST: "broadcast",
    **{k: "resource" for k in (_K.CORE_FIELDS, _K.FORM_RESPONSES, _K.JOURNEY_PROGRESS)},
}


def channel_type(name: str) -> str:
    """The SPEC's channel type; channels outside the catalog count as shared."""
    ref = parse_channel(name)
    return _TYPES[ref.kind] if ref is not None else "shared"


class ChannelInfo(BaseModel):
    name: str
    type: str = Field(description="private, shared, broadcast or resource")
    subscriber_count: int = Field(description="Subscribers on this node")
    max_subscribers: int
    message_rate_limit: int = Field(description="Messages per minute per user (your tier)")
    auth_required: bool


class UserSubscription(BaseModel):
    channel_name: str
    connected_at: str | None = Field(
        default=None, description="Not tracked yet (no subscription ledger): null"
    )
    last_activity: str
    subscription_tier: str


class SubscriptionLimits(BaseModel):
    max_channels: int = Field(description="Channels per connection for your tier")
    current_channels: int = Field(description="Channels you hold, across your connections")
    available_channels: int


class ChannelsOut(BaseModel):
    channels: list[ChannelInfo]
    user_subscriptions: list[UserSubscription]
    subscription_limits: SubscriptionLimits


class StatusOut(BaseModel):
    connected: bool
    activeChannels: int
    messageCount: int = Field(description="Messages your joined channels retain")
    lastMessageAt: str | None = None


class EventIn(BaseModel):
    event_type: str = Field(min_length=1, max_length=100)
    channel_name: str = Field(min_length=1, max_length=255)
    payload: dict[str, Any]
    priority: int = Field(default=5, ge=1, le=10, description="10 is most urgent")
    expires_in_minutes: int | None = Field(
        default=None,
        ge=1,
        le=1440,
        description="The audit log's `expires_at` (default 5); the message itself is kept as "
        "long as the channel's history TTL",
    )


class EventOut(BaseModel):
    event_id: str
    estimated_delivery_ms: float = Field(description="Time to hand it to this node's sockets")
    subscriber_count: int
    broadcast_scheduled: bool
    duplicate: bool = Field(default=False, description="Id already published: not sent again")


class SubscribeFilters(BaseModel):
    supplier_id: str | None = None
    couple_id: str | None = None
    wedding_id: str | None = None


class SubscribeIn(BaseModel):
    channels: list[str] = Field(min_length=1, max_length=50)
    filters: SubscribeFilters | None = None


class SubscriptionOut(BaseModel):
    channel: str
    topic: str = Field(description="The topic to join (`realtime:` + channel)")
    status: str
    filter: dict[str, str] | None = None


class SubscribeOut(BaseModel):
    success: bool
    subscriptions: list[SubscriptionOut]


def _wall_time(node: Node, monotonic: float) -> str:
    seconds = node.wall_clock() - (node.clock() - monotonic)
    return iso_from_epoch(seconds)


async def _own_channels(wedding: WeddingRuntime, profile: UserProfile | None) -> list[str]:
    """The catalog channels the caller's profile makes theirs."""
    if profile is None:
        return []
    names = [channel_name(_K.USER, profile.user_id)]
    if profile.user_type is UserType.SUPPLIER and profile.supplier_id:
        s = profile.supplier_id
        names += [channel_name(k, s) for k in (_K.SUPPLIER, _K.SUPPLIER_TEAM, _K.SUPPLIER_CLIENTS)]
        names += [channel_name(k, s) for k in (_K.SUPPLIER_FORMS, _K.SUPPLIER_JOURNEYS)]
        names.append(channel_name(_K.SUPPLIER_DASHBOARD, s))
        for c in await wedding.directory.supplier_couples(s):
            names += [channel_name(_K.CORE_FIELDS, c), channel_name(_K.COLLABORATION, s, c)]
            names += [
                channel_name(_K.WEDDING, w) for w in await wedding.directory.couple_weddings(c)
            ]
    elif profile.user_type is UserType.COUPLE and profile.couple_id:
        c = profile.couple_id
        names += [channel_name(k, c) for k in (_K.COUPLE, _K.COUPLE_SUPPLIERS, _K.COUPLE_TASKS)]
        names += [channel_name(k, c) for k in (_K.COUPLE_TIMELINE, _K.COUPLE_DASHBOARD)]
        names.append(channel_name(_K.CORE_FIELDS, c))
        names += [channel_name(_K.WEDDING, w) for w in await wedding.directory.couple_weddings(c)]
        for s in await wedding.directory.connected_suppliers(c):
            names.append(channel_name(_K.COLLABORATION, s, c))
    return names


def _info(node: Node, principal: Principal, name: str) -> ChannelInfo:
    limit = node.message_limit(principal)
    return ChannelInfo(
        name=name,
        type=channel_type(name),
        subscriber_count=node.hub.count(CHANNEL_PREFIX + name),
        max_subscribers=MAX_SUBSCRIBERS,
        message_rate_limit=limit if limit is not None else 0,
        auth_required=True,
    )


def _is_operator(principal: Principal, profile: UserProfile | None) -> bool:
    return principal.is_service or (profile is not None and profile.user_type is UserType.ADMIN)


@router.get("/channels")
async def list_channels(principal: PrincipalDep, node: NodeDep, wedding: WeddingDep) -> ChannelsOut:
    """Your channels with their type and subscribers, your subscriptions and your limits."""
    subject = principal.subject
    mine = [c for c in node.connections.values() if subject and c.principal.subject == subject]
    subscriptions = [
        UserSubscription(
            channel_name=m.channel,
            last_activity=_wall_time(node, conn.last_seen),
            subscription_tier=m.principal.tier,
        )
        for conn in mine
        for m in conn.memberships.values()
    ]
    profile = await profile_of(wedding, principal)
    names = await _own_channels(wedding, profile)
    names += [s.channel_name for s in subscriptions]
    if _is_operator(principal, profile):
        names += [m.channel for c in node.connections.values() for m in c.memberships.values()]
    limit = node.channel_limit(principal).maximum
    current = node.user_channel_count(subject)
    return ChannelsOut(
        channels=[_info(node, principal, n) for n in dict.fromkeys(names)],
        user_subscriptions=subscriptions,
        subscription_limits=SubscriptionLimits(
            max_channels=limit, current_channels=current, available_channels=max(0, limit - current)
        ),
    )


@router.get("/channels/{name}")
async def channel_info(name: str, principal: PrincipalDep, node: NodeDep) -> ChannelInfo:
    """One channel, for whoever may read it."""
    await read_access(node, principal, name)
    return _info(node, principal, name)


@router.get("/status")
async def status(principal: PrincipalDep, node: NodeDep) -> StatusOut:
    """Your connection status and what your joined channels hold."""
    subject = principal.subject
    topics = {
        m.topic
        for c in node.connections.values()
        if subject and c.principal.subject == subject
        for m in c.memberships.values()
    }
    count, last_ms = 0, None
    for topic in sorted(topics):
        rule = node.history_rule(topic)
        if rule is None:
            continue
        read = await node.history.read(topic, limit=rule.size)
        count += len(read.entries)
        if read.entries:
            newest = read.entries[-1].time_ms
            last_ms = newest if last_ms is None else max(last_ms, newest)
    last = iso_from_epoch(last_ms / 1000) if last_ms is not None else None
    connected = any(subject and c.principal.subject == subject for c in node.connections.values())
    return StatusOut(
        connected=connected,
        activeChannels=node.user_channel_count(subject),
        messageCount=count,
        lastMessageAt=last,
    )


@router.post("/events", responses={429: {"description": "Message rate of your tier exceeded"}})
async def publish_event(
    body: EventIn,
    principal: PrincipalDep,
    node: NodeDep,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=MAX_MESSAGE_ID_LENGTH)
    ] = None,
) -> EventOut:
    """Publish an event on a channel you may write to (a coordinator's "Ceremony moved to
    4 PM" on ``wedding:{id}``). An `Idempotency-Key` makes a retry safe."""
    channel = body.channel_name
    try:
        await node.require(principal, channel, Action.BROADCAST, True, "write to")
    except ChannelError as exc:
        raise HTTPException(403, {"message": exc.message, "field": "channel_name"}) from None
    size = len(orjson.dumps(body.payload))
    if size > node.settings.max_payload_bytes:
        raise HTTPException(
            422,
            {
                "message": f"payload: {size} bytes exceeds the limit of "
                f"{node.settings.max_payload_bytes} bytes",
                "field": "payload",
            },
        )
    limit = node.message_limit(principal)
    key = (principal.subject or principal.user_id, CHANNEL_PREFIX + channel)
    if limit is not None and not node.message_rate.try_take(key, limit):
        raise HTTPException(
            429, {"message": f"Too many messages: at most {limit} per minute on a channel"}
        )
    event = DomainEvent(body.event_type, (channel,), body.payload, body.priority)
    report = await EventRouter(node).route_with_id(event, idempotency_key or str(uuid.uuid4()))
    if node.audit is not None:
        minutes = body.expires_in_minutes
        audit_route(
            node.audit,
            event,
            report.messages,
            report.failed,
            user_id=principal.subject or principal.role,
            expires_in_s=minutes * 60.0 if minutes is not None else None,
        )
    if report.failed or not report.messages:
        raise HTTPException(503, {"message": "The event could not be published; retry it"})
    published = report.messages[0].published
    return EventOut(
        event_id=published.id,
        estimated_delivery_ms=round(report.elapsed_s * 1000, 3),
        subscriber_count=node.hub.count(CHANNEL_PREFIX + channel),
        broadcast_scheduled=not published.duplicate,
        duplicate=published.duplicate,
    )


#: SPEC.md's short channel names → (catalog kind, the filter that gives its id).
_SHORT_NAMES: dict[str, tuple[ChannelKind, str]] = {
    "form-responses": (_K.SUPPLIER_FORMS, "supplier_id"),
    "journey-progress": (_K.SUPPLIER_JOURNEYS, "supplier_id"),
    "core-fields": (_K.CORE_FIELDS, "couple_id"),
    "wedding": (_K.WEDDING, "wedding_id"),
}


def _resolve(name: str, filters: SubscribeFilters) -> tuple[str, dict[str, str] | None]:
    short = _SHORT_NAMES.get(name)
    if short is not None:
        kind, key = short
        value = getattr(filters, key)
        if not value:
            raise HTTPException(
                422, {"message": f"channel {name!r} needs filters.{key}", "field": f"filters.{key}"}
            )
        return channel_name(kind, value), {key: value}
    if parse_channel(name) is None:
        known = ", ".join(_SHORT_NAMES)
        raise HTTPException(
            422,
            {
                "message": f"unknown channel {name!r} (short names: {known}; or a catalog "
                "channel such as supplier:{id}:clients)",
                "field": "channels",
            },
        )
    return name, None


@router.post("/subscribe", responses={429: {"description": "More than 10 calls a minute"}})
async def subscribe(body: SubscribeIn, principal: PrincipalDep, node: NodeDep) -> SubscribeOut:
    """Check that you may join each channel and return the topics to join."""
    key = ("rest-subscribe", principal.subject or principal.user_id)
    if not node.message_rate.try_take(key, SUBSCRIBE_PER_MINUTE):
        raise HTTPException(429, {"message": "At most 10 subscribe calls per minute"})
    filters = body.filters or SubscribeFilters()
    subscriptions = []
    for name in body.channels:
        channel, used = _resolve(name, filters)
        await read_access(node, principal, channel)
        subscriptions.append(
            SubscriptionOut(
                channel=channel, topic=CHANNEL_PREFIX + channel, status="active", filter=used
            )
        )
    return SubscribeOut(success=True, subscriptions=subscriptions)
