"""One open WebSocket ("link"): frames out with refs, replies matched to their pushes, heartbeats.

A link lives exactly as long as its socket; the client makes a new one on every reconnect, so no
reply, heartbeat or ref of an old socket can be mistaken for one of the new socket.

Heartbeats follow realtime-js (reference notes §1.4): a `heartbeat` on topic `phoenix` every
interval; if the reply to the previous one has not come when the next is due, the connection is
dead even if TCP has not noticed (a phone that changed networks, a proxy that black-holes
traffic), and the link is aborted so that the client reconnects. The `websockets` library's own
pings are off: one liveness check is enough, and the mobile profile's longer interval is there to
save radio wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from wedsync_realtime.client.errors import ConnectionLost, PushTimeout
from wedsync_realtime.client.protocol import (
    PHOENIX_TOPIC,
    FrameError,
    Message,
    ProtocolVersion,
    Reply,
    decode,
    encode,
    parse_reply,
)

__all__ = ["ConnectionState", "Link", "Refs", "StateMachine"]

log = logging.getLogger(__name__)


class ConnectionState(enum.StrEnum):
    """What the dashboard's dot shows (SPEC.md "Sync behaviour")."""

    #: The first connection attempt is under way.
    CONNECTING = "connecting"
    CONNECTED = "connected"
    #: Not connected: just lost (a reconnect follows at once), or closed by the application.
    DISCONNECTED = "disconnected"
    #: Waiting out a backoff delay or trying again after a drop or a failed attempt.
    RECONNECTING = "reconnecting"
    #: The server refused us for good (bad token): nothing happens until `reconnect()`.
    ERROR = "error"


_TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.DISCONNECTED: frozenset(
        {ConnectionState.CONNECTING, ConnectionState.RECONNECTING}
    ),
    ConnectionState.CONNECTING: frozenset(
        {
            ConnectionState.CONNECTED,
            ConnectionState.RECONNECTING,
            ConnectionState.ERROR,
            ConnectionState.DISCONNECTED,
        }
    ),
    ConnectionState.CONNECTED: frozenset({ConnectionState.DISCONNECTED, ConnectionState.ERROR}),
    ConnectionState.RECONNECTING: frozenset(
        {ConnectionState.CONNECTED, ConnectionState.ERROR, ConnectionState.DISCONNECTED}
    ),
    ConnectionState.ERROR: frozenset({ConnectionState.CONNECTING, ConnectionState.DISCONNECTED}),
}

StateListener = Callable[[ConnectionState], None]


class StateMachine:
    """The connection state, with the legal transitions; an illegal one raises (a bug)."""

    def __init__(self) -> None:
        self.state = ConnectionState.DISCONNECTED
        self.reason = ""
        self._listeners: list[StateListener] = []
        self._waiters: list[tuple[frozenset[ConnectionState], asyncio.Future[ConnectionState]]] = []

    def listen(self, listener: StateListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set(self, state: ConnectionState, reason: str = "") -> None:
        if state is self.state:
            return
        if state not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal connection state change {self.state} -> {state}")
        log.info("connection %s -> %s%s", self.state, state, f" ({reason})" if reason else "")
        self.state, self.reason = state, reason
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                log.exception("connection state listener failed")
        waiting = []
        for wanted, future in self._waiters:
            if state in wanted:
                if not future.done():
                    future.set_result(state)
            else:
                waiting.append((wanted, future))
        self._waiters = waiting

    async def wait_for(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the state is one of `states` (at once if it is already)."""
        if self.state in states:
            return self.state
        future: asyncio.Future[ConnectionState] = asyncio.get_running_loop().create_future()
        entry = (frozenset(states), future)
        self._waiters.append(entry)
        try:
            return await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Reply]
    #: Called from the read loop, before any later frame is looked at (joins need that: the
    #: frames right after a join reply already belong to the joined channel).
    on_reply: Callable[[Reply], Awaitable[None]] | None = None
    event: str = ""


@dataclass(slots=True)
class Refs:
    """Message refs, unique for the client's lifetime (not per socket), so that nothing of an
    old socket can match something of a new one."""

    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next(self) -> str:
        return str(next(self.counter))


class Link:
    """A connected socket speaking one protocol version."""

    def __init__(
        self,
        ws: ClientConnection,
        version: ProtocolVersion,
        *,
        on_message: Callable[[Message], Awaitable[None]],
        heartbeat_interval: float,
        refs: Refs | None = None,
    ) -> None:
        self.ws = ws
        self.version = version
        self._on_message = on_message
        self._heartbeat_interval = heartbeat_interval
        self._refs = refs or Refs()
        self._pending: dict[str, _Pending] = {}
        self._heartbeat_ref: str | None = None
        self._drop_reason: str | None = None
        self.closed = False
        #: Whether the server has sent a frame that decodes (a reply or a push): it serves us.
        self.served = False

    def next_ref(self) -> str:
        return self._refs.next()

    # -- output --------------------------------------------------------------------------------

    async def push(
        self,
        topic: str,
        event: str,
        payload: Any,
        *,
        ref: str | None = None,
        join_ref: str | None = None,
    ) -> None:
        """Write one frame, expecting no reply.

        Raises:
            ConnectionLost: the socket is closed.
        """
        if self.closed:
            raise ConnectionLost("not connected")
        frame = encode(self.version, topic, event, payload, ref, join_ref)
        try:
            await self.ws.send(frame)
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from None

    async def request(
        self,
        topic: str,
        event: str,
        payload: Any,
        *,
        timeout: float,
        join_ref: str | None = None,
        ref: str | None = None,
        on_reply: Callable[[Reply], Awaitable[None]] | None = None,
    ) -> Reply:
        """Write one frame and wait for its `phx_reply`.

        Raises:
            ConnectionLost: the socket closed before the reply.
            PushTimeout: no reply within `timeout` seconds.
        """
        ref = ref or self.next_ref()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[ref] = _Pending(future, on_reply, event)
        try:
            await self.push(topic, event, payload, ref=ref, join_ref=join_ref)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise PushTimeout(f"no reply to {event} on {topic} within {timeout:.1f} s") from None
        finally:
            self._pending.pop(ref, None)

    def abort(self, reason: str) -> None:
        """Drop the connection now, without a close handshake (it is presumed dead)."""
        if self._drop_reason is None:
            self._drop_reason = reason
        log.warning("dropping the connection: %s", reason)
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def close(self, timeout: float = 2.0) -> None:
        """Close cleanly (the application is done)."""
        self.ws.close_timeout = timeout
        with contextlib.suppress(Exception):
            await self.ws.close()

    # -- input ---------------------------------------------------------------------------------

    async def run(self) -> str:
        """Read frames until the socket closes; returns why it closed."""
        heartbeat = asyncio.create_task(self._heartbeats(), name="wedsync-client-heartbeat")
        reason = "closed"
        try:
            async for data in self.ws:
                await self._dispatch(data)
            reason = _close_reason(self.ws)
        except ConnectionClosed:
            reason = _close_reason(self.ws)
        finally:
            self.closed = True
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            lost = ConnectionLost(self._drop_reason or reason)
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(lost)
                    # Retrieved or not, a lost connection is not an error worth a warning.
                    pending.future.exception()
            self._pending.clear()
        return self._drop_reason or reason

    async def _dispatch(self, data: str | bytes) -> None:
        try:
            message = decode(self.version, data)
        except FrameError as exc:
            log.warning("ignoring a frame that does not decode: %s", exc.reason)
            return
        self.served = True
        if message.event == "phx_reply":
            if message.topic == PHOENIX_TOPIC and message.ref == self._heartbeat_ref:
                self._heartbeat_ref = None
                return
            pending = self._pending.pop(message.ref, None) if message.ref is not None else None
            if pending is None:
                return  # a reply nobody waits for (a push that did not ask, or timed out)
            reply = parse_reply(message.payload)
            if pending.on_reply is not None:
                try:
                    await pending.on_reply(reply)
                except Exception:
                    log.exception("reply handler for %s failed", pending.event)
            if not pending.future.done():
                pending.future.set_result(reply)
            return
        try:
            await self._on_message(message)
        except Exception:
            # A bug in handling one frame must not take the connection (and every channel on
            # it) down with it.
            log.exception("failed to handle %s on %s", message.event, message.topic)

    async def _heartbeats(self) -> None:
        interval = self._heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            if self._heartbeat_ref is not None:
                self.abort(f"no heartbeat reply within {interval:g} s")
                return
            self._heartbeat_ref = self.next_ref()
            try:
                await self.push(PHOENIX_TOPIC, "heartbeat", {}, ref=self._heartbeat_ref)
            except ConnectionLost:
                return


def _close_reason(ws: ClientConnection) -> str:
    rcvd = ws.protocol.close_rcvd
    if rcvd is not None:
        return f"closed by the server ({rcvd.code}{' ' + rcvd.reason if rcvd.reason else ''})"
    return "connection lost"
