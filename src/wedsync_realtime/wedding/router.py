"""The one router of domain events: every `DomainEvent`, whatever produced it, goes out here.

Issue 5, "One pipeline for domain events": a domain change — from the server's own write API on
the embedded default, or from PostgreSQL change capture (`wedding.change_feed`) — becomes
`DomainEvent`s, and this router publishes each event's `payload` under its `event` name on every
channel of `channels`, through the node (history position, fan-out to local subscribers and to
other nodes).

**Message ids are derived from the domain, not drawn at random.** `message_id` names what the
event is about (a couple's field at a version, a notification, a journey step...), so the same
change routed twice — a retried write, a change capture that re-reads a transaction after a
restart, a write seen both by the REST handler and by change capture — gets the same id, and the
node's per-channel idempotency (history `append` by id) delivers it once. The id is the same on
every channel of the event: idempotency is scoped per channel already, and a client joined to
several of the event's channels (``core_fields:{C}`` and ``supplier:{S}:clients``) can drop the
copies by id, as SPEC.md "Sync behaviour" asks ("dedupe by message id"). Idempotency needs
history on the channel (the default keeps it on every channel); a channel configured without
history delivers a repeat again.

One channel failing to publish (a history backend error) does not stop the others: the failure
is logged and reported, and because ids are deterministic, routing the same events again later
fills in only what is missing.

With an `audit` recorder (set by the composition root), every routed event is one
``realtime_events`` row (`audit_route`): its first channel, how many channels it was published
on, the local deliveries and the failed channels.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from wedsync_realtime.engine.audit import DEFAULT_EXPIRES_S, AuditRecorder
from wedsync_realtime.engine.history import MAX_MESSAGE_ID_LENGTH, Published
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.session import CHANNEL_PREFIX
from wedsync_realtime.wedding.events import DomainEvent, JsonValue, Payload

__all__ = [
    "EventRouter",
    "Publisher",
    "RouteReport",
    "RoutedMessage",
    "audit_route",
    "domain_key",
    "message_id",
]

log = logging.getLogger(__name__)

#: Prefix of the ids the router gives, so a message id tells where a message came from.
ID_PREFIX = "wsd"


class Publisher(Protocol):
    """What the router needs of the engine (`engine.node.Node` is one)."""

    async def publish(
        self,
        message: OutboundBroadcast,
        exclude: str | None = None,
        *,
        message_id: str | None = None,
    ) -> Published: ...


@dataclass(frozen=True, slots=True)
class RoutedMessage:
    """One event published on one channel."""

    event: str
    channel: str
    published: Published


@dataclass(slots=True)
class RouteReport:
    """What routing a batch of events did, channel by channel, in publishing order."""

    messages: list[RoutedMessage] = field(default_factory=list)
    #: (event, channel, error) of the publishes that raised.
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    #: Seconds the batch took to hand to the node (encode, history append, local fan-out).
    elapsed_s: float = 0.0

    @property
    def delivered(self) -> int:
        """Local deliveries of every message (this node's subscribers)."""
        return sum(m.published.delivered for m in self.messages)

    @property
    def duplicates(self) -> int:
        return sum(m.published.duplicate for m in self.messages)


def _text(value: JsonValue) -> str:
    return "" if value is None else str(value)


def domain_key(event: DomainEvent) -> str:
    """What the event is about, stable across every source of the same change.

    Known events are keyed by their domain identity (a core field's version; a notification
    and its state; a journey step); any other event by a digest of its payload, so that only an
    identical event repeats an id.
    """
    p = event.payload
    name = event.event
    if name == "core_fields_updated" and "version" in p:
        return f"{_text(p.get('couple_id'))}/{_text(p.get('field_name'))}/v{_text(p['version'])}"
    if name == "notification_new" and p.get("notification_id"):
        return _text(p["notification_id"])
    if name == "notification_read" and p.get("notification_id"):
        state = "read" if p.get("read") else "unread"
        return f"{_text(p['notification_id'])}/{state}/{_text(p.get('timestamp'))}"
    if name == "notification_dismissed" and p.get("notification_id"):
        return _text(p["notification_id"])
    if name in ("journey_step_completed", "journey_email_opened") and p.get("step_id"):
        return f"{_text(p.get('journey_id'))}/{_text(p['step_id'])}"
    if name == "journey_task_due" and p.get("step_id"):
        return f"{_text(p.get('journey_id'))}/{_text(p['step_id'])}/{_text(p.get('timestamp'))}"
    if name in ("form_field_updated", "form_submitted") and p.get("form_id"):
        parts = (p.get("form_id"), p.get("couple_id"), p.get("field_id"), p.get("timestamp"))
        return "/".join(_text(part) for part in parts)
    return "sha256:" + _digest(p)


def _digest(payload: Payload) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def message_id(event: DomainEvent) -> str:
    """The event's message id: ``wsd:{event}:{domain_key}``, hashed when too long for the
    node (ids are at most `MAX_MESSAGE_ID_LENGTH` characters)."""
    candidate = f"{ID_PREFIX}:{event.event}:{domain_key(event)}"
    if len(candidate) <= MAX_MESSAGE_ID_LENGTH:
        return candidate
    digest = hashlib.sha256(candidate.encode()).hexdigest()[:40]
    return f"{ID_PREFIX}:{event.event[:60]}:h:{digest}"


def audit_route(
    audit: AuditRecorder,
    event: DomainEvent,
    messages: Iterable[RoutedMessage],
    failed: Iterable[tuple[str, str, str]],
    *,
    user_id: str | None = None,
    expires_in_s: float | None = None,
) -> None:
    """One ``realtime_events`` row for `event`, routed as `messages` (and `failed`):
    `broadcast_count` the channels it was published on (an idempotent repeat is not),
    `delivered_count` the local deliveries, `failed_count` the channels that failed."""
    published = delivered = 0
    for message in messages:
        if not message.published.duplicate:
            published += 1
            delivered += message.published.delivered
    audit.event(
        event.event,
        event.channels[0] if event.channels else None,
        event.payload,
        user_id=user_id,
        broadcast_count=published,
        delivered_count=delivered,
        failed_count=sum(1 for _ in failed),
        priority=event.priority,
        expires_in_s=DEFAULT_EXPIRES_S if expires_in_s is None else expires_in_s,
    )


class EventRouter:
    """Publishes domain events through a `Publisher`, with ids derived from the domain."""

    def __init__(self, publisher: Publisher, audit: AuditRecorder | None = None) -> None:
        self._publisher = publisher
        #: Where `route` records each event (None: nowhere); see `audit_route`.
        self.audit = audit

    async def route(self, events: Iterable[DomainEvent]) -> RouteReport:
        """Publish every event on each of its channels, in order; never raises for one
        failed channel (see `RouteReport.failed`)."""
        report = RouteReport()
        started = time.perf_counter()
        for event in events:
            first_message, first_failure = len(report.messages), len(report.failed)
            await self._route_one(event, message_id(event), report)
            if self.audit is not None:
                messages = report.messages[first_message:]
                audit_route(self.audit, event, messages, report.failed[first_failure:])
        report.elapsed_s = time.perf_counter() - started
        return report

    async def route_with_id(self, event: DomainEvent, event_id: str) -> RouteReport:
        """Publish one event under a caller-chosen id (the REST events API, whose caller may
        give an Idempotency-Key)."""
        report = RouteReport()
        started = time.perf_counter()
        await self._route_one(event, event_id, report)
        report.elapsed_s = time.perf_counter() - started
        return report

    async def _route_one(self, event: DomainEvent, event_id: str, report: RouteReport) -> None:
        for channel in event.channels:
            # A fresh message per channel: the node writes its position into `meta`.
            message = OutboundBroadcast(
                topic=CHANNEL_PREFIX + channel, event=event.event, payload=dict(event.payload)
            )
            try:
                published = await self._publisher.publish(message, message_id=event_id)
            except Exception as exc:
                log.exception("publishing %s on %s failed", event.event, channel)
                report.failed.append((event.event, channel, f"{type(exc).__name__}: {exc}"))
                continue
            report.messages.append(RoutedMessage(event.event, channel, published))
