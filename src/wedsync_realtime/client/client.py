"""`RealtimeClient`: the connection supervisor of the SDK.

    async with RealtimeClient("ws://localhost:4000", token) as client:
        client.on_state_change(show_dot)
        async with client.channel("supplier:42:forms") as channel:
            ...

It keeps one socket open: connects, runs the heartbeat (30 s, or 60 s with `profile="mobile"`),
and when the socket is lost — closed by the server, cut, or silent past a heartbeat — it reconnects
with exponential backoff and full jitter (base 1 s, cap 30 s), then rejoins every channel, which
recover what they missed and send what the outbox holds. A refused token (HTTP 401/403) is final:
the state goes to `error` until the application calls `set_auth(new_token)` or `reconnect()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from wedsync_realtime.client.backoff import Backoff
from wedsync_realtime.client.channel import Channel
from wedsync_realtime.client.connection import ConnectionState, Link, Refs, StateMachine
from wedsync_realtime.client.errors import AuthenticationError
from wedsync_realtime.client.model import ChannelOptions, ChannelState
from wedsync_realtime.client.outbox import DEFAULT_MAX_SIZE, DEFAULT_TTL, Outbox
from wedsync_realtime.client.protocol import Message, ProtocolVersion

__all__ = ["HEARTBEAT_INTERVALS", "Profile", "RealtimeClient", "endpoint_url"]

log = logging.getLogger(__name__)

Profile = Literal["default", "mobile"]

#: Heartbeat interval per profile, seconds (SPEC.md: every 30 s; phones wake the radio less).
HEARTBEAT_INTERVALS: dict[str, float] = {"default": 30.0, "mobile": 60.0}

#: A connection that lived this long, or on which the server answered anything (a join reply, a
#: message), resets the backoff; one dropped sooner and silent keeps backing off, so a server
#: that accepts and closes at once is not hammered, while a phone whose signal flaps every few
#: seconds still reconnects after the base delay each time.
STABLE_AFTER_S = 5.0


def endpoint_url(url: str, token: str, vsn: str) -> str:
    """The socket URL: `/socket/websocket` when the URL has no path, `<path>/websocket` when it
    does not end in it (as both official clients append it), `http(s)` → `ws(s)`, with `apikey`
    and `vsn` set (replacing any already there)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    path = parts.path.rstrip("/")
    if not path:
        path = "/socket/websocket"
    elif not path.endswith("/websocket"):
        path += "/websocket"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("apikey", "vsn")]
    query += [("apikey", token), ("vsn", vsn)]
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


class RealtimeClient:
    """An asyncio client of WedSync Realtime (and of Supabase Realtime servers).

    Args:
        url: `ws://host:port`, or a URL with a path (`/socket`, `/realtime/v1`, or the full
            `.../websocket`).
        token: the user's JWT, sent as `apikey` and in every join.
        vsn: "1.0.0" (JSON objects) or "2.0.0" (JSON arrays).
        profile: "default" (heartbeat 30 s) or "mobile" (60 s).
        heartbeat_interval: overrides the profile's interval.
        reconnect_base, reconnect_cap: the backoff (seconds).
        connect_timeout: for one connection attempt (TCP + upgrade).
        push_timeout: for a reply to a join, an acked broadcast or a presence call.
        outbox_path: SQLite file of the offline outbox (survives restarts); None keeps it in
            memory.
        outbox_max_size, outbox_ttl: the outbox bound and entry lifetime (seconds).
        rng: the backoff's random source (tests pass a seeded one).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        vsn: str = "1.0.0",
        profile: Profile = "default",
        heartbeat_interval: float | None = None,
        reconnect_base: float = 1.0,
        reconnect_cap: float = 30.0,
        connect_timeout: float = 10.0,
        push_timeout: float = 10.0,
        outbox_path: str | Path | None = None,
        outbox_max_size: int = DEFAULT_MAX_SIZE,
        outbox_ttl: float = DEFAULT_TTL,
        max_frame_bytes: int = 1_048_576,
        rng: random.Random | None = None,
    ) -> None:
        self.version = ProtocolVersion.from_query(vsn)
        if profile not in HEARTBEAT_INTERVALS:
            raise ValueError(f"unknown profile {profile!r}; use one of {list(HEARTBEAT_INTERVALS)}")
        interval = heartbeat_interval or HEARTBEAT_INTERVALS[profile]
        if interval <= 0 or connect_timeout <= 0 or push_timeout <= 0:
            raise ValueError("heartbeat_interval, connect_timeout and push_timeout must be > 0")
        endpoint_url(url, token, vsn)  # fail now on a bad URL, not in the background
        self.url = url
        self.heartbeat_interval = interval
        self.connect_timeout = connect_timeout
        self._push_timeout = push_timeout
        self._max_frame_bytes = max_frame_bytes
        self._token = token
        self._backoff = Backoff(reconnect_base, reconnect_cap, rng=rng or random.Random())
        self._outbox = Outbox(outbox_path, max_size=outbox_max_size, ttl=outbox_ttl)
        self._states = StateMachine()
        self._channels: dict[str, Channel] = {}
        self._refs = Refs()
        self._link: Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._first_outcome: asyncio.Future[None] | None = None
        self._connected_at = 0.0
        #: Whether the server answered on the last connection (see `Link.served`).
        self._served = False
        #: Connections made so far (1 after the first connect).
        self.connections = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> RealtimeClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the outbox and start connecting; returns after the first attempt, connected or
        not (offline is a normal state: the client keeps trying in the background).

        Raises:
            AuthenticationError: the server refused the token.
        """
        if self._supervisor is not None:
            return
        await self._outbox.open()
        self._closing = False
        loop = asyncio.get_running_loop()
        self._first_outcome = first = loop.create_future()
        self._supervisor = asyncio.create_task(self._run(), name="wedsync-client")
        await first
        if self.state is ConnectionState.ERROR:
            reason = self._states.reason
            await self.close()
            raise AuthenticationError(reason)

    async def close(self) -> None:
        """Leave every channel, close the socket, stop reconnecting, close the outbox (a file
        outbox keeps its messages for the next start)."""
        if self._closing:
            return
        self._closing = True
        for channel in list(self._channels.values()):
            await channel.leave()
        link = self._link
        if link is not None:
            await link.close()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        if self.state is not ConnectionState.DISCONNECTED:
            self._states.set(ConnectionState.DISCONNECTED, "closed by the application")
        await self._outbox.close()

    async def reconnect(self) -> None:
        """Reconnect now: from `error` (after a new token), while waiting out a backoff delay,
        or drop the current connection and make a new one (the "retry" of the status dot)."""
        link = self._link
        if link is not None and not link.closed:
            link.abort("reconnect asked by the application")
        self._wake.set()

    # -- observing -----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._states.state

    @property
    def state_reason(self) -> str:
        """Why the last state change happened (close reason, connect error)."""
        return self._states.reason

    def on_state_change(self, callback: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call `callback(state)` on every state change; returns a function that removes it."""
        return self._states.listen(callback)

    async def wait_for_state(
        self, *states: ConnectionState, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until the state is one of `states`."""
        async with asyncio.timeout(timeout):
            return await self._states.wait_for(*states)

    @property
    def outbox_size(self) -> int:
        """Messages waiting in the outbox (the "3 changes waiting" banner)."""
        return self._outbox.size

    @property
    def outbox_expired(self) -> int:
        """Outbox messages dropped because they were older than the TTL."""
        return self._outbox.expired

    def on_outbox_change(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(size)` whenever the outbox size changes."""
        return self._outbox.on_change(callback)

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    # -- channels and auth ---------------------------------------------------------------------

    def channel(
        self,
        name: str,
        *,
        self_: bool = False,
        ack: bool = True,
        presence_key: str = "",
        presence: bool = False,
        private: bool = False,
        delivery_buffer: int = 10_000,
        presence_interval: float = 2.0,
        typing_event: str = "user:typing",
        typing_timeout: float = 0.5,
    ) -> Channel:
        """A channel named `name` (no `realtime:` prefix), joined by `async with` or `join()`."""
        options = ChannelOptions(
            self_=self_,
            ack=ack,
            presence_key=presence_key,
            presence=presence,
            private=private,
            delivery_buffer=delivery_buffer,
            presence_interval=presence_interval,
            typing_event=typing_event,
            typing_timeout=typing_timeout,
        )
        return Channel(self, name, options)

    async def set_auth(self, token: str) -> None:
        """Use `token` from now on: sent as `access_token` on every joined channel (the server
        re-checks it without a rejoin), in later joins and in the URL of later connections. From
        the `error` state (token refused), reconnects."""
        self._token = token
        link = self._link
        if link is not None:
            for channel in list(self._channels.values()):
                if channel.state is ChannelState.JOINED:
                    await channel._refresh_token(link, token)
        if self.state is ConnectionState.ERROR:
            self._wake.set()

    # -- ChannelHost ---------------------------------------------------------------------------

    @property
    def link(self) -> Link | None:
        return self._link

    @property
    def token(self) -> str:
        return self._token

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    @property
    def push_timeout(self) -> float:
        return self._push_timeout

    def rejoin_delay(self, attempt: int) -> float:
        return self._backoff.delay(attempt)

    def register(self, channel: Channel) -> None:
        if self._closing or self._supervisor is None:
            raise RuntimeError("the client is not connected: use `async with RealtimeClient(...)`")
        existing = self._channels.get(channel.topic)
        if existing is not None and existing is not channel:
            raise ValueError(f"channel {channel.name!r} is already open on this client")
        self._channels[channel.topic] = channel

    def unregister(self, channel: Channel) -> None:
        if self._channels.get(channel.topic) is channel:
            del self._channels[channel.topic]

    # -- the connection loop -------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        next_state = ConnectionState.CONNECTING
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._states.set(next_state)
            try:
                reason = await self._connect_once()
            except Exception as exc:  # a bug: log it, keep the client alive and retrying
                log.exception("connection attempt failed unexpectedly")
                reason = f"{type(exc).__name__}: {exc}"
                if self.state is ConnectionState.CONNECTED:
                    self._states.set(ConnectionState.DISCONNECTED, reason)
            if self._closing:
                return
            if reason is None:  # connected, then lost
                reason = self._states.reason
                if self._served or loop.time() - self._connected_at >= STABLE_AFTER_S:
                    attempt = 0
            self._settle_first()
            if self.state is ConnectionState.ERROR:
                await self._wake.wait()
                self._wake.clear()
                attempt, next_state = 0, ConnectionState.CONNECTING
                continue
            delay = self._backoff.delay(attempt)
            attempt += 1
            self._states.set(ConnectionState.RECONNECTING, reason)
            log.info("reconnecting in %.2f s (%s)", delay, reason)
            # Not cleared first: a `reconnect()` made during the attempt skips this delay.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            next_state = ConnectionState.RECONNECTING

    async def _connect_once(self) -> str | None:
        """One attempt: None after a session that connected and ended, else why it failed."""
        url = endpoint_url(self.url, self._token, self.version.value)
        try:
            ws = await connect(
                url,
                open_timeout=self.connect_timeout,
                ping_interval=None,  # our heartbeat is the liveness check (see connection.py)
                close_timeout=2.0,
                max_size=self._max_frame_bytes,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode(errors="replace") if exc.response.body else ""
            reason = f"HTTP {status} {body}".strip()
            if status in (401, 403):
                self._states.set(ConnectionState.ERROR, f"token refused: {reason}")
            return reason
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            return f"{type(exc).__name__}: {exc}"
        link = Link(
            ws,
            self.version,
            on_message=self._route,
            heartbeat_interval=self.heartbeat_interval,
            refs=self._refs,
        )
        self._link = link
        self.connections += 1
        self._connected_at = asyncio.get_running_loop().time()
        try:
            self._states.set(ConnectionState.CONNECTED)
            self._settle_first()
            for channel in list(self._channels.values()):
                channel._attach(link)
            reason = await link.run()
        finally:
            self._link = None
            self._served = link.served
            for channel in list(self._channels.values()):
                channel._detach(link)
            if not link.closed:
                link.abort("client closing")
        if not self._closing:
            self._states.set(ConnectionState.DISCONNECTED, reason)
        return None

    def _settle_first(self) -> None:
        first = self._first_outcome
        if first is not None and not first.done():
            first.set_result(None)

    async def _route(self, message: Message) -> None:
        channel = self._channels.get(message.topic)
        if channel is not None:
            await channel._handle(message)
