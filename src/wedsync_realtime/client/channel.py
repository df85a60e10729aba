"""One channel of the client: join and rejoin with recovery, exactly-once delivery, sends through
the outbox, presence and typing.

    async with client.channel("form:42", presence_key="user-1") as channel:
        channel.on_broadcast("form:updated", handle)
        channel.on_reload(reload_from_database)
        result = await channel.send("form:updated", {"field_id": "f1"})

Delivery: every message the application sees goes through one bounded queue per channel and one
task that calls the handlers in order, so handlers run one at a time, in stream order, and may be
coroutines. When the application is slower than the stream the queue fills, the socket is no
longer read, the server drops us as a slow consumer and we catch up by recovery: memory stays
bounded and nothing is lost.

Rejoins (after a reconnect, or when a gap shows on a live connection) ask the server to `recover`
from the last position handed to the application. `recovered: true` means the missed messages
follow the join reply; otherwise the application is told to reload its state (`on_reload`), and
delivery continues from the server's current position. A rejoin never leaves a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from wedsync_realtime.client.connection import Link
from wedsync_realtime.client.errors import (
    ClientClosed,
    ConnectionLost,
    JoinError,
    PushError,
    PushTimeout,
)
from wedsync_realtime.client.model import (
    ChannelHost,
    ChannelOptions,
    ChannelState,
    Closed,
    Handler,
    Item,
    MessageStream,
    Reload,
    SendResult,
    add_handler,
    call_handler,
)
from wedsync_realtime.client.outbox import OutboxEntry
from wedsync_realtime.client.presence import PresenceChange, PresenceState, sync_diff, sync_state
from wedsync_realtime.client.protocol import (
    CHANNEL_PREFIX,
    Broadcast,
    Message,
    Reply,
    parse_broadcast,
)
from wedsync_realtime.client.stream import Position, StreamTracker, Verdict

__all__ = ["Channel"]

log = logging.getLogger(__name__)


class Channel:
    """A channel of a `RealtimeClient`; create it with `client.channel(...)`."""

    def __init__(self, host: ChannelHost, name: str, options: ChannelOptions) -> None:
        if not name:
            raise ValueError("a channel needs a name")
        self._host = host
        self.name = name
        self.topic = CHANNEL_PREFIX + name
        self.options = options
        self._state = ChannelState.CLOSED
        self._joined_event = asyncio.Event()
        #: Whether the last rejoin recovered every missed message.
        self.recovered: bool | None = None
        #: The last `system` error or join refusal the server sent.
        self.last_error: str | None = None
        #: Messages handed to the application's handlers.
        self.delivered = 0
        self.presence_state: PresenceState = {}
        self._tracker = StreamTracker()
        self._link: Link | None = None
        self._join_ref: str | None = None
        self._join_task: asyncio.Task[str | None] | None = None
        self._joined_once = False
        self._entered = False
        self._closing = False
        #: The link on which the server closed the channel (no rejoin on that one).
        self._closed_on: Link | None = None
        self._rejoin_attempt = 0
        self._rejoin_timer: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[Item] = asyncio.Queue(options.delivery_buffer)
        self._dispatcher: asyncio.Task[None] | None = None
        self._broadcast_handlers: list[tuple[str, Handler[Broadcast]]] = []
        self._reload_handlers: list[Handler[Reload]] = []
        self._presence_handlers: list[Handler[PresenceChange]] = []
        self._close_handlers: list[Handler[str]] = []
        self._error_handlers: list[Handler[Exception]] = []
        self._streams: set[MessageStream] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flushing = False
        self._presence_meta: dict[str, Any] | None = None
        self._presence_timer: asyncio.TimerHandle | None = None
        self._last_presence_at = float("-inf")
        self._typing: dict[str, asyncio.TimerHandle] = {}

    def __repr__(self) -> str:
        return f"<Channel {self.name!r} {self.state}>"

    @property
    def state(self) -> ChannelState:
        return self._state

    @state.setter
    def state(self, state: ChannelState) -> None:
        self._state = state
        if state is ChannelState.JOINED:
            self._joined_event.set()
        else:
            self._joined_event.clear()

    async def wait_joined(self, timeout: float | None = None) -> None:
        """Wait until the channel is joined (again, after a reconnect)."""
        async with asyncio.timeout(timeout):
            await self._joined_event.wait()

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Channel:
        await self.join()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.leave()

    async def join(self) -> None:
        """Join now if connected (raising `JoinError` if the server refuses), or as soon as the
        client is connected. Sends made before the join are kept in the outbox.

        Add handlers before joining, or right after it returns, before awaiting anything else:
        then they see every message from the join on."""
        if self._entered:
            raise RuntimeError(f"channel {self.name!r} was already joined once")
        self._entered = True
        self._host.register(self)
        link = self._host.link
        if link is None or link.closed:
            self.state = ChannelState.ERRORED
        else:
            task = self._attach(link, retry=False)
            error = await asyncio.shield(task) if task is not None else None
            if error is not None:
                await self._teardown(f"join refused: {error}")
                raise JoinError(self.name, error)
        # Started last: what arrived with the join waits in the queue, and a task runs only once
        # the caller awaits something, so handlers added right after `async with` (before any
        # await) see everything from the join on.
        self._dispatcher = asyncio.create_task(
            self._dispatch_loop(), name=f"wedsync-channel-{self.name}"
        )

    async def leave(self) -> None:
        """Leave the channel (messages still queued for the handlers are dropped). What the
        outbox holds for it stays there until the channel is joined again."""
        if self._closing:
            return
        link, joined = self._link, self.state in (ChannelState.JOINED, ChannelState.JOINING)
        self._closing = True
        self._cancel_timers()
        if joined and link is not None and not link.closed:
            self.state = ChannelState.LEAVING
            with contextlib.suppress(ConnectionLost, PushTimeout):
                await link.request(
                    self.topic,
                    "phx_leave",
                    {},
                    timeout=min(self._host.push_timeout, 5.0),
                    join_ref=self._join_ref,
                )
        await self._teardown("left")

    async def _teardown(self, reason: str) -> None:
        self._closing = True
        self._cancel_timers()
        self.state = ChannelState.CLOSED
        self._link = None
        self._host.unregister(self)
        for stream in list(self._streams):
            stream.end()
        self._streams.clear()
        tasks = [t for t in (self._join_task, self._dispatcher, *self._tasks) if t is not None]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        self._tasks.clear()
        log.info("channel %s closed: %s", self.name, reason)

    def _cancel_timers(self) -> None:
        for timer in (self._rejoin_timer, self._presence_timer, *self._typing.values()):
            if timer is not None:
                timer.cancel()
        self._rejoin_timer = self._presence_timer = None
        self._typing.clear()

    # -- observing -----------------------------------------------------------------------------

    def on_broadcast(self, event: str, handler: Handler[Broadcast]) -> Callable[[], None]:
        """Call `handler(message)` for each broadcast of `event` ("*" for all), exactly once
        and in stream order. Returns a function that removes the handler."""
        entry = (event, handler)
        self._broadcast_handlers.append(entry)
        return lambda: self._broadcast_handlers.remove(entry)

    def on_reload(self, handler: Handler[Reload]) -> Callable[[], None]:
        """Call `handler(reload)` when messages may have been missed and could not be recovered:
        the application must reload its state."""
        return add_handler(self._reload_handlers, handler)

    def on_presence(self, handler: Handler[PresenceChange]) -> Callable[[], None]:
        """Call `handler(change)` on every presence snapshot and diff, with the new state."""
        return add_handler(self._presence_handlers, handler)

    def on_close(self, handler: Handler[str]) -> Callable[[], None]:
        """Call `handler(reason)` when the server closes the channel: the token expired, the
        permission was revoked, or the server is shutting down. The channel is joined again on
        the next connection (after a shutdown that is the restarted server); if the reason
        lasts, that join is refused and `on_error` gets the `JoinError`."""
        return add_handler(self._close_handlers, handler)

    def on_error(self, handler: Handler[Exception]) -> Callable[[], None]:
        """Call `handler(error)` for what goes wrong in the background: a rejoin refused
        (`JoinError`), a queued message refused when the outbox was flushed (`PushError`)."""
        return add_handler(self._error_handlers, handler)

    def messages(self, event: str = "*", maxsize: int = 1000) -> MessageStream:
        """An async iterator over broadcasts of `event` ("*" for all) from now on."""
        stream = MessageStream(event, maxsize, self._streams.discard)
        self._streams.add(stream)
        return stream

    @property
    def position(self) -> Position | None:
        """The stream position of the last message handed to the application."""
        return self._tracker.position

    @property
    def duplicates_dropped(self) -> int:
        return self._tracker.duplicates

    # -- joining -------------------------------------------------------------------------------

    def _attach(self, link: Link, *, retry: bool = True) -> asyncio.Task[str | None] | None:
        """Join on `link` unless already joining or joined there."""
        if self._closing or self._closed_on is link or not self._entered:
            return None
        task = self._join_task
        if self._link is link and task is not None and not task.done():
            return task
        if self._link is not link:
            # A new socket: the server forgot our presence and its presence rate limit.
            self._last_presence_at = float("-inf")
        self._link = link
        self.state = ChannelState.JOINING
        self._join_task = asyncio.create_task(
            self._join(link, retry), name=f"wedsync-join-{self.name}"
        )
        return self._join_task

    def _detach(self, link: Link) -> None:
        """`link` is gone; rejoin on the next one."""
        if self._link is not link:
            return
        self._link = None
        if self.state in (ChannelState.JOINING, ChannelState.JOINED):
            self.state = ChannelState.ERRORED
        for timer in (self._rejoin_timer, self._presence_timer, *self._typing.values()):
            if timer is not None:
                timer.cancel()
        self._rejoin_timer = self._presence_timer = None
        self._typing.clear()

    def _join_payload(self, recover: Position | None) -> dict[str, Any]:
        options = self.options
        broadcast: dict[str, Any] = {"self": options.self_, "ack": options.ack}
        if recover is not None:
            broadcast["recover"] = recover.to_json()
        return {
            "config": {
                "broadcast": broadcast,
                "presence": {
                    "key": options.presence_key,
                    "enabled": options.presence or bool(options.presence_key),
                },
                "postgres_changes": [],
                "private": options.private,
            },
            "access_token": self._host.token,
        }

    async def _join(self, link: Link, retry: bool) -> str | None:
        """Send `phx_join`; returns the refusal reason, or None (joined, or the link died)."""
        ref = link.next_ref()
        self._join_ref = ref
        # Only a rejoin recovers: a first join starts at the stream's current top.
        recover = self._tracker.position if self._joined_once else None
        payload = self._join_payload(recover)

        async def on_reply(reply: Reply) -> None:
            await self._on_join_reply(link, ref, recover is not None, reply)

        try:
            reply = await link.request(
                self.topic,
                "phx_join",
                payload,
                timeout=self._host.push_timeout,
                ref=ref,
                join_ref=ref,
                on_reply=on_reply,
            )
        except ConnectionLost:
            return None
        except PushTimeout as exc:
            reason = str(exc)
        else:
            if reply.ok:
                return None
            reason = reply.reason
        if self._link is link and self._join_ref == ref:
            self.state = ChannelState.ERRORED
            self.last_error = reason
            log.warning("join of %s refused: %s", self.name, reason)
            if retry:
                self._schedule_rejoin(link)
                await self._queue_error(JoinError(self.name, reason))
        return reason

    async def _on_join_reply(self, link: Link, ref: str, asked: bool, reply: Reply) -> None:
        """Runs in the read loop, before the frames that follow the reply are looked at."""
        if self._link is not link or self._join_ref != ref or not reply.ok:
            return
        response = reply.response if isinstance(reply.response, dict) else {}
        position = Position.from_json(response.get("position"))
        self.recovered = asked and response.get("recovered") is True
        if not self.recovered:
            if self._joined_once:
                reason = (
                    "the server could not recover the missed messages"
                    if asked
                    else "no stream position to recover from"
                )
                await self._queue.put(Reload(self.name, reason, position))
            self._tracker.reset(position)
        # With recovered true the missed messages follow this reply: the tracker stays at the
        # last one the application has, and each replayed message moves it on.
        self._joined_once = True
        self._rejoin_attempt = 0
        self.state = ChannelState.JOINED
        self.last_error = None
        log.info("joined %s (recovered=%s, position=%s)", self.name, self.recovered, position)
        if self._host.outbox.count(self.name):
            self._spawn(self._flush())
        self._schedule_presence()

    def _schedule_rejoin(self, link: Link) -> None:
        delay = self._host.rejoin_delay(self._rejoin_attempt)
        self._rejoin_attempt += 1

        def rejoin() -> None:
            self._rejoin_timer = None
            if self._link is link and not link.closed and self.state is ChannelState.ERRORED:
                self._attach(link)

        self._rejoin_timer = asyncio.get_running_loop().call_later(delay, rejoin)

    def _resync(self, why: str) -> None:
        """Rejoin on the same link, recovering from the last delivered position."""
        link = self._link
        if link is None or link.closed or self._closing:
            return
        log.warning("channel %s out of step (%s): rejoining to recover", self.name, why)
        self.state = ChannelState.JOINING
        self._join_task = asyncio.create_task(
            self._join(link, True), name=f"wedsync-join-{self.name}"
        )

    async def _refresh_token(self, link: Link, token: str) -> None:
        """Send a new token to the server (it never replies; reference notes §1.7)."""
        if self._link is not link or self.state is not ChannelState.JOINED:
            return
        with contextlib.suppress(ConnectionLost):
            await link.push(
                self.topic, "access_token", {"access_token": token}, join_ref=self._join_ref
            )

    # -- incoming ------------------------------------------------------------------------------

    async def _handle(self, message: Message) -> None:
        """A server push on this channel's topic (called from the read loop, in order)."""
        event = message.event
        if event == "broadcast":
            await self._on_broadcast(message)
        elif event in ("presence_state", "presence_diff"):
            if self.state is not ChannelState.JOINED:
                return
            if event == "presence_state":
                change = sync_state(self.presence_state, message.payload)
            else:
                change = sync_diff(self.presence_state, message.payload)
            self.presence_state = change.state
            await self._queue.put(change)
        elif event in ("phx_close", "phx_error"):
            if self._join_ref is None or self._join_ref not in (message.ref, message.join_ref):
                return  # about a join we already replaced
            if self.state is ChannelState.LEAVING:
                return
            if event == "phx_close":
                # Not final: a draining server closes every channel before the socket, and the
                # channel is joined again on the next connection. A reason that lasts (an
                # expired token) makes that rejoin fail, which `on_error` reports.
                self._closed_on = self._link
                self.state = ChannelState.CLOSED
                self._cancel_timers()
                reason = self.last_error or "closed by the server"
                log.warning("server closed channel %s: %s", self.name, reason)
                await self._queue.put(Closed(reason))
            elif self._link is not None:
                self.state = ChannelState.ERRORED
                self._schedule_rejoin(self._link)
        elif event == "system":
            payload = message.payload if isinstance(message.payload, dict) else {}
            if payload.get("status") == "error":
                self.last_error = str(payload.get("message"))
                log.warning("system error on %s: %s", self.name, self.last_error)

    async def _on_broadcast(self, message: Message) -> None:
        if self.state is not ChannelState.JOINED:
            return  # for a join being replaced: a rejoin recovers what matters
        broadcast = parse_broadcast(message.topic, message.payload)
        if broadcast is None:
            return
        verdict = self._tracker.classify(broadcast.position)
        if verdict is Verdict.DELIVER:
            await self._queue.put(broadcast)
        elif verdict is Verdict.GAP:
            self._resync(f"got {broadcast.position} after {self._tracker.position}")

    async def _dispatch_loop(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            if isinstance(item, Broadcast):
                self.delivered += 1
                for event, handler in list(self._broadcast_handlers):
                    if event in ("*", item.event):
                        await call_handler(handler, item)
                for stream in list(self._streams):
                    await stream.put(item)
            elif isinstance(item, PresenceChange):
                for presence_handler in list(self._presence_handlers):
                    await call_handler(presence_handler, item)
            elif isinstance(item, Reload):
                log.warning("channel %s: reload needed (%s)", self.name, item.reason)
                for reload_handler in list(self._reload_handlers):
                    await call_handler(reload_handler, item)
            else:
                for close_handler in list(self._close_handlers):
                    await call_handler(close_handler, item.reason)

    async def _queue_error(self, error: Exception) -> None:
        for handler in list(self._error_handlers):
            await call_handler(handler, error)

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self, event: str, payload: dict[str, Any], *, message_id: str | None = None
    ) -> SendResult:
        """Broadcast `payload` as `event`, with `message_id` (a new uuid if None) as `meta.id`.

        Connected: published now (with acks, waits for the ack). Offline, or while older queued
        messages of this channel are still being sent: queued in the outbox, published in order
        once the channel is joined again. A message whose ack was lost with the connection is
        queued too and sent again under the same id; the server de-duplicates it.

        Raises:
            OutboxFull: offline and the outbox is full.
            PushError: the server refused the message (rate limit, size, permission).
            ClientClosed: the channel was left.
        """
        if self._closing or not self._entered:
            raise ClientClosed(f"channel {self.name!r} is not open")
        if not isinstance(payload, dict):
            raise TypeError("a broadcast payload must be a dict (a JSON object)")
        message_id = message_id or uuid.uuid4().hex
        outbox = self._host.outbox
        seq = outbox.reserve_seq()
        link = self._link
        if (
            self.state is ChannelState.JOINED
            and link is not None
            # Queued messages go first. (A flush still running with nothing left in the outbox
            # has had its last message acked already, so a live send cannot overtake it.)
            and outbox.count(self.name) == 0
        ):
            try:
                return await self._publish(link, message_id, event, payload)
            except (ConnectionLost, PushTimeout) as exc:
                log.info("send on %s not acknowledged (%s): queued", self.name, exc)
        await outbox.put(seq, self.name, message_id, event, payload)
        if self.state is ChannelState.JOINED:
            self._spawn(self._flush())
        return SendResult(message_id, queued=True)

    async def _publish(
        self, link: Link, message_id: str, event: str, payload: dict[str, Any]
    ) -> SendResult:
        body = {"type": "broadcast", "event": event, "payload": payload, "meta": {"id": message_id}}
        if not self.options.ack:
            await link.push(self.topic, "broadcast", body, join_ref=self._join_ref)
            return SendResult(message_id)
        reply = await link.request(
            self.topic, "broadcast", body, timeout=self._host.push_timeout, join_ref=self._join_ref
        )
        if not reply.ok:
            raise PushError(event, reply.reason)
        response = reply.response if isinstance(reply.response, dict) else {}
        ack_id, offset, epoch = response.get("id"), response.get("offset"), response.get("epoch")
        return SendResult(
            id=ack_id if isinstance(ack_id, str) else message_id,
            offset=offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
            epoch=epoch if isinstance(epoch, str) else None,
            duplicate=response.get("duplicate") is True,
        )

    async def _flush(self) -> None:
        """Publish what the outbox holds for this channel, oldest first, one ack at a time."""
        if self._flushing:
            return
        self._flushing = True
        outbox = self._host.outbox
        try:
            while True:
                link = self._link
                if self.state is not ChannelState.JOINED or link is None:
                    return
                entries = await outbox.peek(self.name, 50)
                if not entries:
                    return
                for entry in entries:
                    if self.state is not ChannelState.JOINED or self._link is not link:
                        return
                    if not await self._flush_one(link, entry):
                        break
        finally:
            self._flushing = False

    async def _flush_one(self, link: Link, entry: OutboxEntry) -> bool:
        """Send one queued message; False to look at the outbox again before going on."""
        try:
            await self._publish(link, entry.message_id, entry.event, entry.payload)
        except ConnectionLost:
            return False
        except PushTimeout:
            log.warning("no ack for queued message %s on %s: retrying", entry.message_id, self.name)
            return False
        except PushError as exc:
            # Refused for good: keeping it would block everything queued behind it.
            log.warning("queued message %s refused: %s", entry.message_id, exc.reason)
            await self._host.outbox.remove(entry)
            await self._queue_error(exc)
            return True
        await self._host.outbox.remove(entry)
        return True

    # -- presence ------------------------------------------------------------------------------

    def track(self, meta: dict[str, Any]) -> None:
        """Publish our presence `meta` on this channel. At most one track goes out per
        `presence_interval` (2 s); calls in between replace the meta and the last one is sent
        when the interval is over. Tracked again automatically after every rejoin."""
        if self._closing:
            raise ClientClosed(f"channel {self.name!r} is not open")
        self._presence_meta = dict(meta)
        self._schedule_presence()

    def untrack(self) -> None:
        """Stop publishing our presence (a pending track is dropped)."""
        self._presence_meta = None
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        if self.state is ChannelState.JOINED:
            self._spawn(self._push_presence(None))

    def _schedule_presence(self) -> None:
        if (
            self._presence_meta is None
            or self.state is not ChannelState.JOINED
            or self._presence_timer is not None
        ):
            return
        loop = asyncio.get_running_loop()
        wait = self._last_presence_at + self.options.presence_interval - loop.time()
        if wait <= 0:
            self._send_presence()
        else:
            self._presence_timer = loop.call_later(wait, self._send_presence)

    def _send_presence(self) -> None:
        self._presence_timer = None
        meta = self._presence_meta
        if meta is None or self.state is not ChannelState.JOINED:
            return
        self._last_presence_at = asyncio.get_running_loop().time()
        self._spawn(self._push_presence(meta))

    async def _push_presence(self, meta: dict[str, Any] | None) -> None:
        link = self._link
        if link is None:
            return
        body: dict[str, Any] = (
            {"type": "presence", "event": "untrack"}
            if meta is None
            else {"type": "presence", "event": "track", "payload": meta}
        )
        try:
            reply = await link.request(
                self.topic,
                "presence",
                body,
                timeout=self._host.push_timeout,
                join_ref=self._join_ref,
            )
        except (ConnectionLost, PushTimeout):
            return  # tracked again after the rejoin
        if not reply.ok:
            log.warning("presence on %s refused: %s", self.name, reply.reason)
            await self._queue_error(PushError("presence", reply.reason))

    # -- typing --------------------------------------------------------------------------------

    def typing(self, field_id: str, **extra: Any) -> None:
        """Call on every keystroke in `field_id`: the first call broadcasts a typing start, and
        a stop goes out once no call came for `typing_timeout` (500 ms). Ephemeral: nothing is
        sent or queued while not joined."""
        loop = asyncio.get_running_loop()
        timer = self._typing.pop(field_id, None)
        if timer is None:
            self._spawn(self._push_typing(field_id, True, extra))
        else:
            timer.cancel()
        self._typing[field_id] = loop.call_later(
            self.options.typing_timeout, self._typing_stopped, field_id, extra
        )

    @property
    def typing_fields(self) -> frozenset[str]:
        """Fields we are currently telling others we type in."""
        return frozenset(self._typing)

    def _typing_stopped(self, field_id: str, extra: dict[str, Any]) -> None:
        self._typing.pop(field_id, None)
        self._spawn(self._push_typing(field_id, False, extra))

    async def _push_typing(self, field_id: str, typing: bool, extra: dict[str, Any]) -> None:
        link = self._link
        if link is None or self.state is not ChannelState.JOINED:
            return
        body = {
            "type": "broadcast",
            "event": self.options.typing_event,
            "payload": {**extra, "field_id": field_id, "is_typing": typing},
        }
        # No ref: even on an acked channel, nobody waits for this reply.
        with contextlib.suppress(ConnectionLost):
            await link.push(self.topic, "broadcast", body, join_ref=self._join_ref)

    # -- helpers -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("channel %s task failed", self.name, exc_info=task.exception())
