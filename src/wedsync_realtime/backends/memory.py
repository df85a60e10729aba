"""In-memory backends: the reference implementations, for one process.

Several `MemoryBroker`s sharing one `MemoryBus` behave like nodes sharing a Redis server, which
lets the multi-node paths be tested without one.
"""

from __future__ import annotations

from wedsync_realtime.backends.base import BrokerHandler, BrokerMessage

__all__ = ["MemoryBroker", "MemoryBus"]


class MemoryBus:
    """The shared medium of a set of memory brokers."""

    def __init__(self) -> None:
        self.brokers: list[MemoryBroker] = []


class MemoryBroker:
    """Delivers each message to every other broker on the bus subscribed to its channel.

    Handlers are awaited in publish order, so one publisher's order on a channel is kept.
    """

    def __init__(self, bus: MemoryBus | None = None) -> None:
        self._bus = bus if bus is not None else MemoryBus()
        self._handler: BrokerHandler | None = None
        self._channels: set[str] = set()

    async def start(self, handler: BrokerHandler) -> None:
        if self._handler is not None:
            raise RuntimeError("broker already started")
        self._handler = handler
        self._bus.brokers.append(self)

    async def subscribe(self, *channels: str) -> None:
        self._channels.update(channels)

    async def unsubscribe(self, *channels: str) -> None:
        self._channels.difference_update(channels)

    async def publish(self, message: BrokerMessage) -> None:
        if self._handler is None:
            raise RuntimeError("broker not started")
        for broker in self._bus.brokers:
            if broker is not self and message.channel in broker._channels and broker._handler:
                await broker._handler.handle_message(message)

    async def close(self) -> None:
        if self in self._bus.brokers:
            self._bus.brokers.remove(self)
        self._handler = None
        self._channels.clear()
