"""The node: connections, channels, fan-out (local first, then other nodes), presence and limits.

    async with Node(settings, verifier=..., policy=..., broker=...) as node:
        connection = node.connect(principal, version)
        ...

A node owns no sockets: transports create connections through it and feed them frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from wedsync_realtime.auth.jwt import Principal, TokenVerifier
from wedsync_realtime.auth.policy import Action, ChannelPolicy
from wedsync_realtime.backends.base import Broker, BrokerMessage, HistoryStore
from wedsync_realtime.cdc.subscriptions import PostgresChanges
from wedsync_realtime.engine.audit import ACCESS_DENIED, AuditRecorder
from wedsync_realtime.engine.connection import Connection
from wedsync_realtime.engine.history import ChannelLocks, Published, history_body
from wedsync_realtime.engine.hub import Hub, Subscriber
from wedsync_realtime.engine.limits import KeyedRateLimiter
from wedsync_realtime.engine.metrics import NodeMetrics
from wedsync_realtime.engine.presence import PresenceDiff, PresenceRegistry
from wedsync_realtime.engine.presence_status import (
    ACTIVE,
    PresenceListener,
    Status,
    StatusClock,
    Thresholds,
    declared_status,
    is_hidden,
)
from wedsync_realtime.errors import ChannelError, CloseCode, ConnectionRefused, ErrorCode
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import (
    Message,
    PayloadEncoding,
    ProtocolVersion,
    encode_message,
)
from wedsync_realtime.protocol.session import CHANNEL_PREFIX, OutFrame
from wedsync_realtime.protocol.wsframe import websocket_frame
from wedsync_realtime.settings import HistoryRule, Settings
from wedsync_realtime.timestamps import iso_from_epoch

__all__ = ["ChannelLimit", "Node", "PresenceChangeListener"]

#: Channel names whose history rule is remembered (a cache; cleared when full).
RULE_CACHE_SIZE = 10_000

log = logging.getLogger(__name__)
audit = logging.getLogger("wedsync_realtime.audit")

SHUTDOWN_MESSAGE = "Server is shutting down"

#: Longest the presence status clock sleeps before looking at its deadlines again.
MAX_DECAY_WAIT_S = 60.0


@runtime_checkable
class PresenceChangeListener(PresenceListener, Protocol):
    """A `PresenceListener` also told whenever one of a user's presences on this node changed
    (tracked, re-tracked, hidden, untracked, decayed, restored by activity): `topic` and
    `conn_id` name the presence, which `presence` and `presence_clock` then describe (or no
    longer hold). Called on the presence path: must not block or raise."""

    def presence_changed(self, user_id: str, topic: str, conn_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelLimit:
    maximum: int
    #: How the limit is described in the error, e.g. "for free tier".
    scope: str


class Node:
    """One server process's engine."""

    def __init__(
        self,
        settings: Settings,
        *,
        verifier: TokenVerifier,
        policy: ChannelPolicy,
        broker: Broker,
        history: HistoryStore,
        postgres_changes: PostgresChanges | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.settings = settings
        self.verifier = verifier
        self.policy = policy
        self.broker = broker
        self.history = history
        #: Database change capture; None on the embedded default (no database).
        self.postgres_changes = postgres_changes
        self.channel_locks = ChannelLocks()
        self._message_ids = itertools.count(1)
        self._rules: dict[str, HistoryRule | None] = {}
        #: Called by the sweeper every few seconds (e.g. to drop expired memory history).
        self.housekeeping: list[Callable[[], None]] = []
        self.clock = clock
        self.wall_clock = wall_clock
        self.hub = Hub()
        #: Figures for `GET /api/realtime/metrics` (`engine.metrics`).
        self.metrics = NodeMetrics(clock, channel_count=self.hub.__len__)
        self.presence = PresenceRegistry(self.id)
        #: Server-side status decay of WedSync presence metas (`engine.presence_status`).
        self.presence_clock = StatusClock(
            Thresholds(
                settings.presence_idle_after_s,
                settings.presence_away_after_s,
                settings.presence_offline_after_s,
            )
        )
        self._presence_listener: PresenceListener | None = None
        self._change_listener: PresenceChangeListener | None = None
        #: The audit log (`engine.audit`): told of joins, leaves, presences and refusals; None
        #: turns it off. Set by the composition root; started and flushed with the node.
        self.audit: AuditRecorder | None = None
        self._decayer: asyncio.Task[None] | None = None
        self._decay_wake = asyncio.Event()
        self._decay_at: float | None = None
        self.message_rate = KeyedRateLimiter(clock)
        self.connections: dict[str, Connection] = {}
        self._per_user: Counter[str] = Counter()
        self._user_channels: Counter[str] = Counter()
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        #: Set whenever the last connection leaves (drain waits on it).
        self._all_gone = asyncio.Event()
        self.accepting = False

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def presence_listener(self) -> PresenceListener | None:
        """Told whenever a user is seen (last-seen records) and, if a `PresenceChangeListener`,
        whenever a presence changes; set by the composition root."""
        return self._presence_listener

    @presence_listener.setter
    def presence_listener(self, listener: PresenceListener | None) -> None:
        self._presence_listener = listener
        # The protocol check runs once here, not on every presence change.
        self._change_listener = listener if isinstance(listener, PresenceChangeListener) else None

    async def start(self) -> None:
        await self.broker.start(self)
        if self.postgres_changes is not None:
            await self.postgres_changes.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="node-sweeper")
        self._decayer = asyncio.create_task(self._decay_loop(), name="node-presence-decay")
        if self.audit is not None:
            self.audit.start()
        self.accepting = True

    async def drain(self) -> None:
        """Graceful shutdown: every channel gets a `system` error and `phx_close`, every socket
        a close frame (1001, "going away"); waits up to `shutdown_grace_s` for them to go out."""
        self.accepting = False
        for conn in list(self.connections.values()):
            conn.shutdown_all(SHUTDOWN_MESSAGE)
            conn.close(CloseCode.GOING_AWAY, "server shutting down")
        if self.connections:
            self._all_gone.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.shutdown_grace_s):
                    await self._all_gone.wait()
        for conn in list(self.connections.values()):
            conn.log.warning("did not close within the grace period, aborting")
            conn.abort()

    async def close(self) -> None:
        self.accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._decayer is not None:
            self._decayer.cancel()
            await asyncio.gather(self._decayer, return_exceptions=True)
            self._decayer = None
        if self.postgres_changes is not None:
            await self.postgres_changes.stop()
        if self.audit is not None:
            await self.audit.close()  # writes what is queued
        await self.broker.close()
        await self.history.close()

    # -- connections ---------------------------------------------------------------------------

    def connect(self, principal: Principal, version: ProtocolVersion, peer: str = "") -> Connection:
        """Admit a new connection.

        Raises:
            ConnectionRefused: the server is shutting down, or the user has too many connections.
        """
        if not self.accepting:
            raise ConnectionRefused(ErrorCode.UNKNOWN, "Server is shutting down", 503)
        subject = principal.subject
        if (
            subject is not None
            and self._per_user[subject] >= self.settings.max_connections_per_user
        ):
            raise ConnectionRefused(
                ErrorCode.CONNECTION_RATE_LIMIT, "Too many connected users", 429
            )
        conn = Connection(self, principal, version, peer)
        self.connections[conn.id] = conn
        if subject is not None:
            self._per_user[subject] += 1
            self.metrics.users_connected(len(self._per_user))
        conn.log.info("connected from %s (vsn %s)", peer, version)
        return conn

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection whose socket is gone; its presences leave."""
        if self.connections.pop(conn.id, None) is None:
            return
        self.metrics.connection_ended(conn.close_code)
        conn.detach()
        subject = conn.principal.subject
        if subject is not None:
            self._per_user[subject] -= 1
            if self._per_user[subject] <= 0:
                del self._per_user[subject]
        if not self.connections:
            self._all_gone.set()
        conn.log.info("disconnected")

    async def reauthorize(
        self, wanted: Callable[[str], bool], users: frozenset[str] = frozenset()
    ) -> int:
        """Re-check every joined channel whose name `wanted` accepts, and every channel of the
        `users` (JWT `sub`: their own facts changed, e.g. a profile's type), on every
        connection; close the ones the policy no longer allows (`Connection.reauthorize`)."""
        closed = 0
        for conn in list(self.connections.values()):
            if conn.principal.subject in users:
                closed += await conn.reauthorize(lambda _channel: True)
            else:
                closed += await conn.reauthorize(wanted)
        return closed

    def user_channel_count(self, subject: str | None) -> int:
        """Channels joined by the user `subject` across connections (0 without a subject)."""
        return self._user_channels[subject] if subject is not None else 0

    def channel_limit(self, principal: Principal) -> ChannelLimit:
        if principal.is_service:
            return ChannelLimit(self.settings.service_role_max_channels, "for the service role")
        tier = principal.tier
        limits = self.settings.tier_limits(tier)
        return ChannelLimit(limits.max_channels, f"for {tier} tier")

    def message_limit(self, principal: Principal) -> int | None:
        """Broadcasts per minute per channel, or None: the service role (our own back end,
        publishing on behalf of many users) is not rate-limited per channel."""
        if principal.is_service:
            return None
        return self.settings.tier_limits(principal.tier).messages_per_minute

    def check_payload_size(self, size: int) -> None:
        limit = self.settings.max_payload_bytes
        if size > limit:
            raise ChannelError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"Payload of {size} bytes exceeds the limit of {limit} bytes",
            )

    async def require(
        self, principal: Principal, channel: str, action: Action, private: bool, verb: str
    ) -> None:
        """Authorize or raise `Unauthorized`; every denial goes to the audit log."""
        decision = await self.policy.authorize(principal, channel, action, private=private)
        if not decision.allowed:
            audit.warning(
                "denied %s on %s to user %s (%s): %s",
                action,
                channel,
                principal.user_id,
                principal.role,
                decision.reason,
            )
            if self.audit is not None:
                user = principal.subject or principal.role
                details = {"action": str(action), "role": principal.role, "reason": decision.reason}
                self.audit.access(ACCESS_DENIED, channel, user, details)
            raise ChannelError(
                ErrorCode.UNAUTHORIZED,
                f"You do not have permissions to {verb} this Channel topic: {channel}",
            )

    # -- channels ------------------------------------------------------------------------------

    def subscribe(
        self, conn: Connection, topic: str, subject: str | None, *, presence: bool, hold: bool
    ) -> Subscriber:
        """Add a local subscriber; `subject` is the user the channel counts against. With
        `hold`, broadcasts wait in `Subscriber.pending` until the caller releases them."""
        subscriber = Subscriber(conn, presence, [] if hold else None)
        if self.hub.add(topic, subscriber):
            self._background(self.broker.subscribe(topic))
        if subject is not None:
            self._user_channels[subject] += 1
        return subscriber

    def unsubscribe(self, conn: Connection, topic: str, subject: str | None) -> None:
        if self.audit is not None:
            self.audit.left(conn.id, topic)
        if self.hub.remove(topic, conn.id):
            self._background(self.broker.unsubscribe(topic))
        if subject is not None:
            self._user_channels[subject] -= 1
            if self._user_channels[subject] <= 0:
                del self._user_channels[subject]
        diff = self.untrack_presence(conn, topic)
        if diff is not None:
            self._background(self.publish_presence(topic, diff))

    def history_rule(self, topic: str) -> HistoryRule | None:
        """The history kept for `topic` (a `realtime:` topic); None when it keeps none."""
        try:
            return self._rules[topic]
        except KeyError:
            if len(self._rules) >= RULE_CACHE_SIZE:
                self._rules.clear()
            rule = self.settings.history_rule(topic.removeprefix(CHANNEL_PREFIX))
            self._rules[topic] = rule
            return rule

    async def publish(
        self,
        message: OutboundBroadcast,
        exclude: str | None = None,
        *,
        message_id: str | None = None,
    ) -> Published:
        """Give the message its id and position, then fan it out locally and to other nodes.

        `message_id` makes the publish idempotent: an id already published on the channel
        within `idempotency_ttl_s` is not published again (needs history on the channel).
        """
        start = self.clock()
        # Unique without a uuid4 per message: this node's random id and a counter.
        message_id = message_id or f"{self.id}-{next(self._message_ids)}"
        try:
            rule = self.history_rule(message.topic)
            if rule is None:
                message.meta = {"id": message_id}
                delivered = await self._fan_out(message, exclude, start)
                return Published(message_id, None, delivered=delivered)
            locks = self.channel_locks
            await locks.acquire(message.topic)
            try:
                appended = await self.history.append(
                    message.topic,
                    history_body(message),
                    message_id=message_id,
                    max_size=rule.size,
                    ttl=rule.ttl_s,
                )
                position = appended.position
                if appended.duplicate:
                    return Published(message_id, position, duplicate=True)
                message.meta = {
                    "id": message_id,
                    "offset": position.offset,
                    "epoch": position.epoch,
                }
                delivered = await self._fan_out(message, exclude, start)
            finally:
                locks.release(message.topic)
        except Exception:
            self.metrics.publish_failed(message.topic)
            raise
        return Published(message_id, position, delivered=delivered)

    async def _fan_out(self, message: OutboundBroadcast, exclude: str | None, start: float) -> int:
        """Local subscribers first, then other nodes. Returns the local deliveries. `start`:
        when the publish began (the metrics time it to the last local hand-off)."""
        metrics = self.metrics
        drops = metrics.dropped_deliveries
        delivered = self.hub.broadcast(message, exclude)
        metrics.published(message.topic, start, delivered, metrics.dropped_deliveries - drops)
        body: dict[str, Any] = {
            "kind": "broadcast",
            "event": message.event,
            "payload": message.payload,
            "raw": message.raw,
            "encoding": int(message.encoding),
            "meta": message.meta,
        }
        await self.broker.publish(BrokerMessage(message.topic, self.id, body))
        return delivered

    async def publish_presence(self, topic: str, diff: PresenceDiff) -> None:
        body: dict[str, Any] = {"kind": "presence_diff", "diff": diff.payload()}
        if diff.owner is not None:
            # A hidden presence: its owner gets the diff, everyone else `others` (or nothing).
            others = diff.others.payload() if diff.others is not None else None
            body = {**body, "diff": others, "owner": diff.owner, "owner_diff": diff.payload()}
        self._push_presence(topic, body)
        await self.broker.publish(BrokerMessage(topic, self.id, body))

    def _push_presence(self, topic: str, body: dict[str, Any]) -> None:
        shared = body["diff"]
        frames = _presence_frames(topic, shared) if shared is not None else None
        owner = body.get("owner")
        if owner is None:
            if frames is not None:
                self.hub.push_presence(topic, frames)
            return
        own_frames = _presence_frames(topic, body["owner_diff"])
        self.hub.push_presence(
            topic, frames, private=(lambda conn: self.presence_owner(conn) == owner, own_frames)
        )

    # -- presence (WedSync statuses: engine.presence_status) ----------------------------------

    @staticmethod
    def presence_owner(conn: Connection) -> str:
        """Who sees a hidden presence of `conn`: its user, or the connection itself."""
        return conn.principal.subject or conn.id

    async def track_presence(
        self, conn: Connection, topic: str, key: str, payload: dict[str, Any]
    ) -> None:
        """A client's `track`: registry, status clock and last seen, then the diff."""
        hidden = is_hidden(payload)
        old = self.presence.get(topic, conn.id)
        diff = self.presence.track(
            topic, conn.id, key, payload, owner=self.presence_owner(conn), hidden=hidden
        )
        declared = declared_status(payload)
        wall = self.wall_clock()
        if declared is None:
            self.presence_clock.forget(topic, conn.id)
            seen_at = wall
        else:
            deadline = self.presence_clock.track(topic, conn.id, declared, self.clock(), wall)
            if deadline is not None and (self._decay_at is None or deadline < self._decay_at):
                self._decay_wake.set()
            tracked = self.presence_clock.get(topic, conn.id)
            seen_at = tracked.since_wall if tracked is not None else wall
        if not hidden:
            self._seen(conn, declared, seen_at)
        elif old is not None and not old.hidden:
            self._seen(conn, Status.OFFLINE, wall)  # "appear offline" from now: last seen now
        if self.audit is not None:
            self.audit.activity(conn.id, topic)
        self._presence_changed(conn, topic)
        if diff is not None:
            await self.publish_presence(topic, diff)

    def untrack_presence(self, conn: Connection, topic: str) -> PresenceDiff | None:
        """Forget `conn`'s presence on `topic` (the caller publishes the diff); a visible
        presence leaving is a last-seen moment if it was active until now."""
        entry = self.presence.get(topic, conn.id)
        diff = self.presence.untrack(topic, conn.id)
        tracked = self.presence_clock.forget(topic, conn.id)
        if entry is not None and not entry.hidden:
            wall = self.wall_clock()
            if tracked is None:
                self._seen(conn, None, wall)
            else:
                at = wall if tracked.current in ACTIVE else tracked.since_wall
                self._seen(conn, tracked.current, at)
        if entry is not None:
            self._presence_changed(conn, topic)
        return diff

    def presence_activity(self, conn: Connection, topic: str) -> None:
        """Activity other than a track (a broadcast on `topic`): restarts the connection's
        inactivity clock there, restoring a decayed status. Plain metas: nothing to do."""
        if self.audit is not None:
            self.audit.activity(conn.id, topic)
        clock = self.presence_clock
        if clock.get(topic, conn.id) is None:
            return
        wall = self.wall_clock()
        restored = clock.activity(topic, conn.id, self.clock(), wall)
        entry = self.presence.get(topic, conn.id)
        if entry is not None and not entry.hidden:
            self._seen(conn, restored or declared_status(entry.payload), wall)
        if restored is not None:
            self._presence_changed(conn, topic)
            diff = self.presence.replace_meta(topic, conn.id, {})
            if diff is not None:
                self._background(self.publish_presence(topic, diff))

    async def decay_presence(self) -> int:
        """Apply every status change that is due (see `StatusClock`); returns how many.
        The new meta names the last activity unless the client's own meta does."""
        changes = self.presence_clock.due(self.clock())
        for change in changes:
            entry = self.presence.get(change.topic, change.conn_id)
            if entry is None:
                continue
            overrides: dict[str, Any] = {"status": str(change.status)}
            if "last_activity" not in entry.payload:
                overrides["last_activity"] = iso_from_epoch(change.last_activity)
            diff = self.presence.replace_meta(change.topic, change.conn_id, overrides)
            conn = self.connections.get(change.conn_id)
            if conn is not None:
                self._presence_changed(conn, change.topic)
            if diff is not None:
                await self.publish_presence(change.topic, diff)
        return len(changes)

    def _seen(self, conn: Connection, status: Status | None, at: float) -> None:
        listener, subject = self.presence_listener, conn.principal.subject
        if listener is not None and subject is not None:
            listener.seen(subject, str(status) if status is not None else None, at)

    def _presence_changed(self, conn: Connection, topic: str) -> None:
        if self.audit is not None:
            self._audit_presence(self.audit, conn, topic)
        listener, subject = self._change_listener, conn.principal.subject
        if subject is not None and listener is not None:
            listener.presence_changed(subject, topic, conn.id)

    def _audit_presence(self, audit: AuditRecorder, conn: Connection, topic: str) -> None:
        """Tell the audit log what `conn`'s presence on `topic` is now (None: gone)."""
        entry = self.presence.get(topic, conn.id)
        tracked = self.presence_clock.get(topic, conn.id)
        audit.presence(
            conn.id,
            topic,
            conn.principal.subject or conn.principal.role,
            entry.payload if entry is not None else None,
            status=str(tracked.current) if tracked is not None else None,
            last_activity=tracked.since_wall if tracked is not None else None,
            hidden=entry is not None and entry.hidden,
        )

    async def _decay_loop(self) -> None:
        """Sleep until the next status change is due, or a track brings a sooner one."""
        while True:
            self._decay_wake.clear()
            deadline = self._decay_at = self.presence_clock.next_deadline()
            delay = MAX_DECAY_WAIT_S if deadline is None else deadline - self.clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(delay, 0.0), MAX_DECAY_WAIT_S)):
                    await self._decay_wake.wait()
            try:
                await self.decay_presence()
            except Exception:
                log.exception("presence status decay failed")

    async def handle_message(self, message: BrokerMessage) -> None:
        """A message from another node: deliver it to the local subscribers."""
        if message.origin == self.id:
            return
        body = message.body
        if body.get("kind") == "broadcast":
            self.hub.broadcast(
                OutboundBroadcast(
                    topic=message.channel,
                    event=body["event"],
                    payload=body["payload"],
                    raw=body["raw"],
                    encoding=PayloadEncoding(body["encoding"]),
                    meta=body["meta"],
                )
            )
        elif body.get("kind") == "presence_diff":
            self._push_presence(message.channel, body)

    # -- housekeeping --------------------------------------------------------------------------

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _sweep(self) -> None:
        """Close idle sockets and forget refilled rate-limit buckets, every few seconds."""
        idle = self.settings.idle_timeout_s
        period = min(5.0, idle / 4)
        while True:
            await asyncio.sleep(period)
            now = self.clock()
            for conn in list(self.connections.values()):
                if conn.closing:
                    # A close frame waits behind what the client has not read; a client that
                    # reads nothing would hold its socket and queue forever.
                    if conn.closing_for(now) > self.settings.shutdown_grace_s:
                        conn.log.warning("close not completed, aborting the connection")
                        conn.abort()
                elif conn.last_seen < now - idle:
                    conn.log.info("idle for %.0f s, closing", idle)
                    conn.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
            self.message_rate.prune()
            for task in self.housekeeping:
                task()


def _presence_frames(
    topic: str, payload: dict[str, Any]
) -> dict[ProtocolVersion, tuple[OutFrame, bytes]]:
    """A `presence_diff` encoded and framed once per protocol version."""
    frames: dict[ProtocolVersion, tuple[OutFrame, bytes]] = {}
    for version in ProtocolVersion:
        frame = encode_message(version, Message(topic, "presence_diff", payload))
        frames[version] = (frame, websocket_frame(frame))
    return frames
