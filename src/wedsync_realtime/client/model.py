"""The values a channel hands to the application, its options, and the small pieces of the
delivery path (handlers, the message iterator) that do not need the channel itself."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from wedsync_realtime.client.presence import PresenceChange
from wedsync_realtime.client.protocol import Broadcast
from wedsync_realtime.client.stream import Position

if TYPE_CHECKING:
    from wedsync_realtime.client.channel import Channel
    from wedsync_realtime.client.connection import Link
    from wedsync_realtime.client.outbox import Outbox

__all__ = [
    "ChannelHost",
    "ChannelOptions",
    "ChannelState",
    "Handler",
    "MessageStream",
    "Reload",
    "SendResult",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A handler may be a plain function or a coroutine function.
Handler = Callable[[T], Awaitable[None] | None]


class ChannelState(enum.StrEnum):
    CLOSED = "closed"
    JOINING = "joining"
    JOINED = "joined"
    #: Not joined, waiting for the connection or for a rejoin attempt.
    ERRORED = "errored"
    LEAVING = "leaving"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of a `send`.

    `queued`: it went to the outbox (offline, or the connection dropped before the ack) and will
    be published on reconnect under the same `id`. Otherwise it was published: with acks on,
    `offset`/`epoch` say where (on servers that tell), and `duplicate` that the server had
    already published this id (nothing was delivered again).
    """

    id: str
    queued: bool = False
    offset: int | None = None
    epoch: str | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Reload:
    """The channel could not be recovered: reload the state from its source of truth.

    `position` is the stream position the channel continues from (None on servers without
    positions); messages after it will be delivered.
    """

    channel: str
    reason: str
    position: Position | None


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """Join options (`config` of `phx_join`) and client-side timings."""

    #: Receive our own broadcasts.
    self_: bool = False
    #: Ask the server to acknowledge each broadcast. On by default in this SDK: the ack is what
    #: lets the outbox forget a message knowing the server has it.
    ack: bool = True
    presence_key: str = ""
    presence: bool = False
    private: bool = False
    #: Messages waiting for the application's handlers before the socket stops being read.
    delivery_buffer: int = 10_000
    #: At most one presence `track` per this many seconds; the last meta wins (SPEC.md: 2 s).
    presence_interval: float = 2.0
    #: Event name and quiet time of the typing helper (SPEC.md: text input debounce 500 ms).
    typing_event: str = "user:typing"
    typing_timeout: float = 0.5


class Closed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Item = Broadcast | PresenceChange | Reload | Closed


class ChannelHost(Protocol):
    """What a channel needs from its client."""

    @property
    def link(self) -> Link | None: ...

    @property
    def token(self) -> str: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def push_timeout(self) -> float: ...

    def rejoin_delay(self, attempt: int) -> float: ...

    def register(self, channel: Channel) -> None: ...

    def unregister(self, channel: Channel) -> None: ...


class MessageStream:
    """`async for message in channel.messages():` — an iterator over broadcasts, from the moment
    it was made until the application leaves the channel or calls `close()`."""

    def __init__(self, event: str, maxsize: int, on_close: Callable[[MessageStream], None]) -> None:
        self._on_close = on_close
        self.event = event
        self._queue: asyncio.Queue[Broadcast | None] = asyncio.Queue(maxsize)
        self._ended = False

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Broadcast:
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._ended = True
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self._on_close(self)
        self.end()

    def end(self) -> None:
        """No more messages (the channel was left)."""
        if not self._ended:
            self._ended = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    async def put(self, message: Broadcast) -> None:
        if not self._ended and self.event in ("*", message.event):
            await self._queue.put(message)


def add_handler(handlers: list[Handler[T]], handler: Handler[T]) -> Callable[[], None]:
    handlers.append(handler)
    return lambda: handlers.remove(handler)


async def call_handler(handler: Handler[T], value: T) -> None:
    """Run one application handler; its failure is logged, never allowed to stop delivery."""
    try:
        result = handler(value)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("handler %r failed", handler)
