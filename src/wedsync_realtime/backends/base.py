"""Backend role interfaces. Every implementation passes the one contract suite in tests/contract.

A `Broker` carries messages between nodes. It is at-most-once and keeps the publish order of one
publisher on one channel; the node fans out locally first and then publishes, tagging each message
with its origin so that no node delivers its own message twice (python-socketio `host_id`,
centrifuge `Node.publish`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Broker", "BrokerHandler", "BrokerMessage"]


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """A message between nodes: `body` is JSON-compatible, except bytes values."""

    channel: str
    origin: str
    body: dict[str, Any]


class BrokerHandler(Protocol):
    """What a broker calls back into (the node)."""

    async def handle_message(self, message: BrokerMessage) -> None: ...


class Broker(Protocol):
    """Cross-node fan-out."""

    async def start(self, handler: BrokerHandler) -> None: ...

    async def subscribe(self, *channels: str) -> None: ...

    async def unsubscribe(self, *channels: str) -> None: ...

    async def publish(self, message: BrokerMessage) -> None: ...

    async def close(self) -> None: ...
