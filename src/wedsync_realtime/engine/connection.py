"""One client connection: runs its protocol session against the node, and owns its send queue.

The transport feeds frames in (`receive_text` / `receive_bytes`) and runs `write_loop`, which
drains the bounded send queue into the socket. Fan-out only ever calls `send`, which never blocks:
a connection whose queue is full is a slow consumer and is closed with
`CloseCode.SLOW_CONSUMER` instead of slowing everyone else or growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action
from wedsync_realtime.backends.base import StreamPosition
from wedsync_realtime.cdc.subscriptions import BindingError, Identity
from wedsync_realtime.engine.audit import ACCESS_REVOKED
from wedsync_realtime.engine.history import (
    MAX_MESSAGE_ID_LENGTH,
    message_from_entry,
    position_meta,
)
from wedsync_realtime.engine.limits import TokenBucket
from wedsync_realtime.errors import AuthError, ChannelError, CloseCode, ErrorCode
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import PayloadEncoding, ProtocolVersion
from wedsync_realtime.protocol.requests import (
    AccessTokenRequest,
    BadRequest,
    BroadcastConfig,
    BroadcastRequest,
    HeartbeatRequest,
    JoinConfig,
    JoinRequest,
    LeaveRequest,
    PresenceAction,
    PresenceRequest,
    Request,
)
from wedsync_realtime.protocol.session import CHANNEL_PREFIX, OutFrame, Session

if TYPE_CHECKING:
    from wedsync_realtime.engine.hub import Subscriber
    from wedsync_realtime.engine.node import Node
    from wedsync_realtime.settings import HistoryRule

__all__ = ["Connection", "Transport"]

#: Presence calls a connection may make in a burst before the per-minute rate applies.
PRESENCE_BURST = 10

log = logging.getLogger(__name__)
audit = logging.getLogger("wedsync_realtime.audit")


class Transport(Protocol):
    """The socket side of a connection (see `transport/`)."""

    async def send(self, frame: OutFrame) -> None:
        """Write one frame; waits while the socket's write buffer is full (flow control)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame with `code` and close."""
        ...

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        """Write at once if the socket's buffer has room; False means "queue it and `send` it
        later". `wire` is `frame` already framed for the socket, when the caller has it."""
        ...

    def abort(self) -> None:
        """Drop the TCP connection now, without a close handshake: for a peer that reads
        nothing, where a close frame would wait behind everything it has not read."""
        ...


@dataclass(slots=True)
class Membership:
    """A joined channel of this connection."""

    topic: str
    join_ref: str | None
    config: JoinConfig
    principal: Principal
    presence_key: str
    #: The user this channel counts against (per-user channel cap), fixed at join: a token
    #: refresh may change `principal`, never the count it was added to.
    subject: str | None
    #: Policy decisions for writes, asked lazily on first use (as Supabase does).
    writes: dict[Action, bool] = field(default_factory=dict)
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)
    #: Pushes (postgres_changes, system) made before the join reply went out; sent after it.
    early: list[OutFrame] | None = field(default=None, repr=False)

    @property
    def channel(self) -> str:
        return self.topic.removeprefix(CHANNEL_PREFIX)


class Connection:
    """A connected client."""

    def __init__(
        self, node: Node, principal: Principal, version: ProtocolVersion, peer: str = ""
    ) -> None:
        self.id = uuid.uuid4().hex
        self.node = node
        self.principal = principal
        self.version = version
        self.peer = peer
        self.session = Session(version)
        self.memberships: dict[str, Membership] = {}
        self.last_seen = node.clock()
        settings = node.settings
        self._queue: deque[OutFrame] = deque()
        self._queue_max = settings.send_queue_max
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._closed_at = 0.0
        self._transport: Transport | None = None
        #: True while the writer awaits a frame it took off the queue: new frames must queue
        #: behind it, or one written directly would overtake it.
        self._writing = False
        self._joins = TokenBucket(settings.joins_per_second, settings.joins_per_second, node.clock)
        self._presence_calls = TokenBucket(
            PRESENCE_BURST, settings.presence_per_minute / 60.0, node.clock
        )
        self.log = _ConnectionLog(log, {"conn": self.id[:8], "user": principal.user_id})

    # -- output --------------------------------------------------------------------------------

    def send(self, frame: OutFrame, wire: bytes | None = None) -> None:
        """Write or queue a frame without blocking; overflow closes the connection as a slow
        consumer. `wire` is the frame already framed for the socket (shared by a fan-out)."""
        if self._close is not None:
            return
        queue = self._queue
        if (
            not queue
            and not self._writing
            and self._transport is not None
            and self._transport.write_nowait(frame, wire)
        ):
            return
        if len(queue) >= self._queue_max:
            self._slow_consumer()
            return
        queue.append(frame)
        self._wake.set()

    def _slow_consumer(self) -> None:
        """The queue is full, so the socket's write buffer is full too (the writer waits on flow
        control): the client reads nothing. Drop it rather than buffer without bound; a client
        that is merely behind reconnects and, with recovery, catches up from history."""
        self.log.warning(
            "slow consumer: %d frames queued, dropping the connection", len(self._queue)
        )
        self.node.metrics.delivery_dropped()
        self._queue.clear()
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now (see `Transport.abort`)."""
        if self._transport is not None:
            self._transport.abort()

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been written."""
        if self._close is None:
            self._close = (code, reason)
            self._closed_at = self.node.clock()
            self._wake.set()

    def closing_for(self, now: float) -> float:
        """Seconds since `close` was asked for (0 when it was not)."""
        return now - self._closed_at if self._close is not None else 0.0

    @property
    def closing(self) -> bool:
        return self._close is not None

    @property
    def close_code(self) -> int | None:
        """The close code the server gave this connection; None while it has given none."""
        return self._close[0] if self._close is not None else None

    async def write_loop(self, transport: Transport) -> None:
        """Drain the queue into the transport until the connection is closed."""
        self._transport = transport
        queue, wake = self._queue, self._wake
        while True:
            await wake.wait()
            wake.clear()
            while queue:
                self._writing = True
                try:
                    await transport.send(queue.popleft())
                finally:
                    self._writing = False
            if self._close is not None:
                await transport.close(*self._close)
                return

    # -- input ---------------------------------------------------------------------------------

    async def receive_text(self, data: str | bytes) -> None:
        self.last_seen = self.node.clock()
        await self.handle(self.session.receive_text(data))

    async def receive_bytes(self, data: bytes) -> None:
        self.last_seen = self.node.clock()
        await self.handle(self.session.receive_bytes(data))

    async def handle(self, request: Request) -> None:
        """Act on one request; a refused request is answered on its own channel only."""
        match request:
            case HeartbeatRequest(ref=ref):
                self.send(self.session.reply("phoenix", ref, None, "ok", {}))
            case AccessTokenRequest():
                await self._refresh_token(request)
            case BadRequest():
                self._refuse(request.topic, request.ref, request.join_ref, request.reason)
            case JoinRequest() | LeaveRequest() | BroadcastRequest() | PresenceRequest():
                try:
                    await self._channel_request(request)
                except ChannelError as exc:
                    self._refuse(request.topic, request.ref, request.join_ref, exc.reason)

    async def _channel_request(
        self, request: JoinRequest | LeaveRequest | BroadcastRequest | PresenceRequest
    ) -> None:
        match request:
            case JoinRequest():
                await self._join(request)
            case LeaveRequest():
                self._leave(request)
            case BroadcastRequest():
                await self._broadcast(request)
            case PresenceRequest():
                await self._presence(request)

    def _refuse(self, topic: str, ref: str | None, join_ref: str | None, reason: str) -> None:
        self.log.warning("refused on %s: %s", topic, reason)
        self.send(self.session.error_reply(topic, ref, join_ref, reason))

    # -- channels ------------------------------------------------------------------------------

    async def _join(self, request: JoinRequest) -> None:
        node, topic, channel = self.node, request.topic, request.subtopic
        if not self._joins.try_take():
            reason = f"{ErrorCode.CLIENT_JOIN_RATE_LIMIT}: Too many joins per second"
            self._refuse(topic, request.ref, request.join_ref, reason)
            self.close(CloseCode.JOIN_RATE_LIMITED, "too many joins per second")
            return
        if request.replaces_join_ref is not None or topic in self.memberships:
            # Phoenix closes the old channel of the topic before joining it again.
            self._shutdown(topic, None)
        principal = self._channel_principal(request.access_token)
        limit = node.channel_limit(principal)
        if len(self.memberships) >= limit.maximum:
            raise ChannelError(
                ErrorCode.CHANNEL_RATE_LIMIT,
                f"Too many channels. Maximum {limit.maximum} channels allowed {limit.scope}",
            )
        if node.user_channel_count(principal.subject) >= node.settings.max_channels_per_user:
            raise ChannelError(
                ErrorCode.CHANNEL_RATE_LIMIT,
                f"Too many channels. Maximum {node.settings.max_channels_per_user} channels "
                "allowed per user",
            )
        config = request.config
        await node.require(principal, channel, Action.SUBSCRIBE, config.private, "read from")
        if config.postgres_changes and node.postgres_changes is None:
            raise ChannelError(
                ErrorCode.POSTGRES_CHANGES_UNAVAILABLE,
                "Postgres Changes need a database; this server runs without WEDSYNC_DATABASE_URL",
            )
        rule = node.history_rule(topic)
        if config.broadcast.replay is not None and rule is None:
            raise ChannelError(
                ErrorCode.UNABLE_TO_REPLAY, f"Channel {channel} keeps no history to replay"
            )
        presence_read = (
            config.presence.enabled
            and (
                await node.policy.authorize(
                    principal, channel, Action.PRESENCE_READ, private=config.private
                )
            ).allowed
        )
        membership = Membership(
            topic=topic,
            join_ref=request.join_ref,
            config=config,
            principal=principal,
            # uuid4, not Supabase's uuid1: a uuid1 carries the server's MAC address.
            presence_key=config.presence.key or str(uuid.uuid4()),
            subject=principal.subject,
        )
        self.memberships[topic] = membership
        self.session.joined(topic, request.join_ref)
        # With history, live broadcasts are held back while history is read, so that the
        # client gets the stream in offset order with nothing twice and nothing skipped.
        subscriber = node.subscribe(
            self, topic, membership.subject, presence=presence_read, hold=rule is not None
        )
        self._schedule_expiry(membership)
        response: dict[str, Any] = {"postgres_changes": []}
        if config.postgres_changes:
            try:
                response["postgres_changes"] = await self._subscribe_changes(membership)
            except ChannelError:
                self._forget(topic)
                raise
            if self.memberships.get(topic) is not membership:
                return  # left (or the socket went) while the bindings were checked
        if rule is not None:
            try:
                await self._join_history(membership, subscriber, rule, response, request)
            except Exception:
                self._forget(topic)
                raise
            return
        if config.broadcast.recover is not None:
            response["recovered"] = False  # nothing to recover from: the client reloads
        self.send(self.session.reply(topic, request.ref, request.join_ref, "ok", response))
        self._joined(membership, presence_read)

    async def _subscribe_changes(self, membership: Membership) -> list[dict[str, Any]]:
        """Subscribe the join's `postgres_changes` bindings; returns their echo with ids.

        Changes go out as `postgres_changes` pushes and capture status as `system` messages
        (`extension: postgres_changes`), both on the channel's current join_ref; any made before
        the join reply is sent (e.g. while history is read) wait in `Membership.early` and follow
        the reply, as "Subscribed to PostgreSQL" must (reference notes §2.2).
        """
        changes = self.node.postgres_changes
        assert changes is not None
        topic = membership.topic
        session = self.session

        def push(event: str, payload: dict[str, Any]) -> None:
            if self.memberships.get(topic) is not membership:
                return
            frame = session.push(topic, event, payload)
            if membership.early is not None:
                membership.early.append(frame)  # the join reply has not gone out yet
            else:
                self.send(frame)

        def deliver(payload: dict[str, Any]) -> None:
            push("postgres_changes", payload)

        def on_system(payload: dict[str, Any]) -> None:
            push("system", dict(payload, channel=membership.channel))

        membership.early = []

        try:
            return await changes.subscribe(
                self.id,
                topic,
                [binding.raw for binding in membership.config.postgres_changes],
                Identity.from_claims(membership.principal.claims),
                deliver,
                on_system,
            )
        except BindingError as exc:
            raise ChannelError(ErrorCode.POSTGRES_CHANGES_BINDING, str(exc)) from None
        except Exception as exc:  # the database is unreachable
            self.log.error("postgres_changes subscription failed on %s", topic, exc_info=exc)
            raise ChannelError(
                ErrorCode.POSTGRES_CHANGES_UNAVAILABLE,
                "Unable to subscribe to changes: the database is unavailable, try again",
            ) from None

    def _joined(self, membership: Membership, presence_read: bool) -> None:
        """The join reply (and any replay) went out: send what waited for it."""
        early, membership.early = membership.early, None
        for frame in early or ():
            self.send(frame)
        if presence_read:
            # Hidden ("appear offline") presences are seen by their owner only.
            presence = self.node.presence.state(
                membership.topic, viewer=self.node.presence_owner(self)
            )
            self.send(self.session.push(membership.topic, "presence_state", presence))
        audit, principal = self.node.audit, membership.principal
        if audit is not None:
            bindings = membership.config.postgres_changes
            audit.joined(
                self.id,
                membership.topic,
                principal.subject or principal.role,
                tier=principal.tier,
                max_channels=self.node.channel_limit(principal).maximum,
                bindings=[binding.raw for binding in bindings] if bindings else (),
            )
        self.log.info("joined %s", membership.channel)

    async def _join_history(
        self,
        membership: Membership,
        subscriber: Subscriber,
        rule: HistoryRule,
        response: dict[str, Any],
        request: JoinRequest,
    ) -> None:
        """Finish a join on a channel with history: read it, reply with the stream position
        (and `recovered` when recovery was asked), send the replayed messages, then the live
        ones that arrived meanwhile, skipping those at or before the position."""
        topic = membership.topic
        try:
            top, replay, recovered = await self._read_history(
                topic, membership.config.broadcast, rule
            )
        except ChannelError:
            raise
        except Exception as exc:
            self.log.error("history read failed on %s", topic, exc_info=exc)
            raise ChannelError(
                ErrorCode.HISTORY_UNAVAILABLE, "Channel history is unavailable, try again"
            ) from None
        if self.memberships.get(topic) is not membership:
            return  # left (or the socket went) while history was read
        response["position"] = position_meta(top)
        if recovered is not None:
            response["recovered"] = recovered
        self.send(self.session.reply(topic, request.ref, request.join_ref, "ok", response))
        version = self.version
        for message in replay:
            frame = message.frame_for(version)
            if frame is not None:
                self.send(frame, message.wire_for(version))
        held, subscriber.pending = subscriber.pending or [], None
        for message in held:
            meta = message.meta or {}
            if meta.get("epoch") == top.epoch and meta.get("offset", 0) <= top.offset:
                continue  # already covered by the position (and sent if replayed)
            frame = message.frame_for(version)
            if frame is not None:
                self.send(frame, message.wire_for(version))
        self._joined(membership, subscriber.presence)

    async def _read_history(
        self, topic: str, config: BroadcastConfig, rule: HistoryRule
    ) -> tuple[StreamPosition, list[OutboundBroadcast], bool | None]:
        """(stream top, messages to replay, recovered — None when recovery was not asked)."""
        history = self.node.history
        if config.recover is not None:
            since = StreamPosition(config.recover.offset, config.recover.epoch)
            read = await history.read(topic, since=since, limit=rule.size)
            if not read.recoverable:
                self.log.info(
                    "cannot recover %s from %s:%d (stream at %s:%d)",
                    topic,
                    since.epoch,
                    since.offset,
                    read.top.epoch,
                    read.top.offset,
                )
                return read.top, [], False
            replay = [
                message_from_entry(topic, entry, read.top.epoch, replayed=True)
                for entry in read.entries
            ]
            return read.top, replay, True
        if config.replay is not None:
            limit = min(config.replay.limit or self.node.settings.replay_default_limit, rule.size)
            read = await history.read(topic, since_ms=config.replay.since, limit=rule.size)
            # Supabase replays the newest `limit` messages since `since`, oldest first.
            chosen = read.entries[-limit:]
            replay = [
                message_from_entry(topic, entry, read.top.epoch, replayed=True) for entry in chosen
            ]
            return read.top, replay, None
        return await history.position(topic), [], None

    def _channel_principal(self, token: str | None) -> Principal:
        """The identity a channel acts as: its join token, or the connection's.

        New-style API keys (`sb_...`) fall back to the connection's token, as in Supabase.
        """
        if token is None or token.startswith("sb_"):
            token = self.principal.token
        if token == self.principal.token and self.principal.expires_at > self.node.wall_clock():
            return self.principal
        try:
            return self.node.verifier.verify(token)
        except AuthError as exc:
            raise ChannelError(exc.code, exc.message) from None

    def _leave(self, request: LeaveRequest) -> None:
        # Phoenix: reply ok to the leave, then phx_close (ref = join_ref).
        self.send(self.session.reply(request.topic, request.ref, request.join_ref, "ok", {}))
        self._shutdown(request.topic, None)

    def _shutdown(self, topic: str, system_error: str | None) -> None:
        """Close one channel: optional `system` error, then `phx_close`, then clean up."""
        membership = self.memberships.get(topic)
        if membership is None:
            return
        if system_error is not None:
            self.send(self.session.system(topic, "error", system_error))
        self.send(self.session.close_push(topic, membership.join_ref))
        self._forget(topic)

    def _forget(self, topic: str) -> None:
        """Drop a channel's membership and subscription without writing anything."""
        membership = self.memberships.pop(topic, None)
        if membership is None:
            return
        self.session.closed(topic)
        if membership.expiry is not None:
            membership.expiry.cancel()
        self.node.unsubscribe(self, topic, membership.subject)
        if membership.config.postgres_changes and self.node.postgres_changes is not None:
            self.node.postgres_changes.unsubscribe(self.id, topic)

    def shutdown_all(self, system_error: str) -> None:
        """Close every channel with a `system` error (server shutdown)."""
        for topic in list(self.memberships):
            self._shutdown(topic, system_error)

    def detach(self) -> None:
        """The socket is gone: leave every channel without writing anything."""
        for topic, membership in list(self.memberships.items()):
            if membership.expiry is not None:
                membership.expiry.cancel()
            self.node.unsubscribe(self, topic, membership.subject)
        if self.node.postgres_changes is not None:
            self.node.postgres_changes.unsubscribe_all(self.id)
        self.memberships.clear()
        self._close = self._close or (CloseCode.NORMAL, "")
        self._queue.clear()
        self._wake.set()

    # -- broadcast and presence ----------------------------------------------------------------

    async def _broadcast(self, request: BroadcastRequest) -> None:
        membership = self.memberships[request.topic]
        ack = membership.config.broadcast.ack
        node = self.node
        node.check_payload_size(request.size)
        if not await self._may_write(membership, Action.BROADCAST, "write to"):
            return
        limit = node.message_limit(membership.principal)
        # Per user and channel; callers without a subject (anon keys) are limited per connection.
        key = (membership.principal.subject or self.id, request.topic)
        if limit is not None and not node.message_rate.try_take(key, limit):
            reason = (
                f"{ErrorCode.MESSAGE_RATE_LIMIT}: Too many messages. Maximum {limit} messages "
                f"per minute allowed on a channel for {membership.principal.tier} tier"
            )
            if ack:
                self._refuse(request.topic, request.ref, request.join_ref, reason)
            else:
                self.log.warning("dropped broadcast on %s: %s", request.topic, reason)
            return
        payload = request.payload
        if request.raw is not None and request.encoding is PayloadEncoding.JSON:
            payload = _json_object(request.raw)
        message = OutboundBroadcast(
            topic=request.topic,
            event=request.event,
            payload=payload,
            raw=request.raw,
            encoding=request.encoding,
            # Client metadata is not forwarded (Supabase ignores it, broadcast_handler.ex):
            # `meta` is the server's to fill. Only its `id` is read, as an idempotency key.
        )
        exclude = None if membership.config.broadcast.self_ else self.id
        node.presence_activity(self, request.topic)  # a broadcast is activity, a heartbeat not
        published = await node.publish(
            message, exclude=exclude, message_id=_message_id(request.meta)
        )
        if published.duplicate:
            self.log.info("duplicate broadcast %s on %s not published", published.id, request.topic)
        if ack:
            self.send(
                self.session.reply(
                    request.topic, request.ref, request.join_ref, "ok", published.ack()
                )
            )

    async def _may_write(self, membership: Membership, action: Action, verb: str) -> bool:
        """Whether the write may go ahead; False when the channel closed while the policy was
        asked. A refusal raises `Unauthorized`."""
        allowed = membership.writes.get(action)
        if allowed is None:
            decision = await self.node.policy.authorize(
                membership.principal,
                membership.channel,
                action,
                private=membership.config.private,
            )
            allowed = membership.writes[action] = decision.allowed
            if self.memberships.get(membership.topic) is not membership:
                return False
        if not allowed:
            raise ChannelError(
                ErrorCode.UNAUTHORIZED,
                f"You do not have permissions to {verb} this Channel topic: {membership.channel}",
            )
        return True

    async def _presence(self, request: PresenceRequest) -> None:
        membership = self.memberships[request.topic]
        node = self.node
        node.check_payload_size(request.size)
        if not self._presence_calls.try_take():
            raise ChannelError(
                ErrorCode.CLIENT_PRESENCE_RATE_LIMIT,
                f"Too many presence messages. Maximum {node.settings.presence_per_minute} "
                "per minute allowed on a connection",
            )
        if not await self._may_write(membership, Action.PRESENCE_WRITE, "track presence on"):
            return
        if request.action is PresenceAction.TRACK:
            # Statuses, "appear offline" and last seen: Node.track_presence.
            await node.track_presence(self, request.topic, membership.presence_key, request.payload)
        else:
            diff = node.untrack_presence(self, request.topic)
            if diff is not None:
                await node.publish_presence(request.topic, diff)
        self.send(self.session.reply(request.topic, request.ref, request.join_ref, "ok", {}))

    # -- tokens --------------------------------------------------------------------------------

    async def _refresh_token(self, request: AccessTokenRequest) -> None:
        """`access_token`: never answered; re-verify and re-authorize (realtime_channel.ex)."""
        membership = self.memberships.get(request.topic)
        token = request.token
        if membership is None or token is None or token.startswith("sb_"):
            return
        if token == membership.principal.token:
            return
        try:
            principal = self.node.verifier.verify(token)
        except AuthError as exc:
            self._shutdown(request.topic, exc.message)
            return
        decision = await self.node.policy.authorize(
            principal, membership.channel, Action.SUBSCRIBE, private=membership.config.private
        )
        if not decision.allowed:
            self._revoked(principal, membership.channel, decision.reason)
            self._shutdown(
                request.topic,
                "You no longer have permission to read from this Channel topic: "
                f"{membership.channel}",
            )
            return
        membership.principal = principal
        membership.writes.clear()
        self._schedule_expiry(membership)
        if membership.config.postgres_changes and self.node.postgres_changes is not None:
            # Later row-visibility checks use the new claims (Supabase re-reads them too).
            self.node.postgres_changes.update_identity(
                self.id, Identity.from_claims(principal.claims), request.topic
            )

    async def reauthorize(self, wanted: Callable[[str], bool]) -> int:
        """Ask the policy again for every joined channel whose name `wanted` accepts; close
        (``system`` error, then ``phx_close``) those it no longer allows to read. Returns how
        many were closed.

        The facts a decision read may change while a member stays joined (a supplier-couple
        connection ends, a team member is removed): the domain calls this through
        `Node.reauthorize`, as the token refresh path does for one channel.
        """
        closed = 0
        for topic, membership in list(self.memberships.items()):
            if not wanted(membership.channel):
                continue
            decision = await self.node.policy.authorize(
                membership.principal,
                membership.channel,
                Action.SUBSCRIBE,
                private=membership.config.private,
            )
            if self.memberships.get(topic) is not membership:
                continue  # left while the policy was asked
            membership.writes.clear()  # write decisions are asked again on next use
            if decision.allowed:
                continue
            audit.warning(
                "revoked %s on %s from user %s (%s): %s",
                Action.SUBSCRIBE,
                membership.channel,
                membership.principal.user_id,
                membership.principal.role,
                decision.reason,
            )
            self._revoked(membership.principal, membership.channel, decision.reason)
            self._shutdown(
                topic,
                "You no longer have permission to read from this Channel topic: "
                f"{membership.channel}",
            )
            closed += 1
        return closed

    def _revoked(self, principal: Principal, channel: str, reason: str | None) -> None:
        """Record in the audit log that `principal` lost the right to read `channel`."""
        if self.node.audit is not None:
            details = {"action": str(Action.SUBSCRIBE), "role": principal.role, "reason": reason}
            user = principal.subject or principal.role
            self.node.audit.access(ACCESS_REVOKED, channel, user, details)

    def _schedule_expiry(self, membership: Membership) -> None:
        if membership.expiry is not None:
            membership.expiry.cancel()
        delay = membership.principal.expires_at - self.node.wall_clock()
        loop = asyncio.get_running_loop()
        membership.expiry = loop.call_later(max(delay, 0), self._expire, membership)

    def _expire(self, membership: Membership) -> None:
        if self.memberships.get(membership.topic) is not membership:
            return
        try:
            self.node.verifier.verify(membership.principal.token)
        except AuthError as exc:
            self.log.info("token expired on %s", membership.channel)
            self._shutdown(membership.topic, exc.message)
        else:  # the clock fired early: check again later
            self._schedule_expiry(membership)


class _ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the connection and user it is about."""

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        extra = self.extra or {}
        return f"[conn={extra.get('conn')} user={extra.get('user')}] {msg}", kwargs


def _message_id(meta: dict[str, Any]) -> str | None:
    """The client's message id (`meta.id`), which makes its broadcast idempotent."""
    message_id = meta.get("id")
    if message_id is None:
        return None
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise ChannelError(
            ErrorCode.INVALID_MESSAGE,
            f"broadcast `meta.id` must be a string of 1 to {MAX_MESSAGE_ID_LENGTH} characters",
        )
    return message_id


def _json_object(raw: bytes) -> dict[str, object]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ChannelError(ErrorCode.INVALID_MESSAGE, "broadcast payload is not JSON") from None
    if not isinstance(value, dict):
        raise ChannelError(ErrorCode.INVALID_MESSAGE, "broadcast `payload` must be an object")
    return value
