"""Local subscribers of each channel on this node, and the fan-out to them.

Fan-out writes one pre-encoded frame per protocol version into each subscriber's bounded queue;
nothing is serialised per subscriber (DESIGN.md, "What flows through the server").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame

if TYPE_CHECKING:
    from wedsync_realtime.engine.connection import Connection

__all__ = ["Hub", "Subscriber"]


@dataclass(slots=True)
class Subscriber:
    connection: Connection
    #: Whether this subscriber gets presence diffs (presence enabled in its join config).
    presence: bool
    #: Broadcasts held back while the subscriber's join reads history (None: deliver at once).
    #: The join then sends history first and these after it, skipping any it already sent.
    pending: list[OutboundBroadcast] | None = None


class Hub:
    """topic → connection id → subscriber."""

    def __init__(self) -> None:
        self._topics: dict[str, dict[str, Subscriber]] = {}

    def add(self, topic: str, subscriber: Subscriber) -> bool:
        """Add a subscriber; True when it is the topic's first one on this node."""
        subs = self._topics.setdefault(topic, {})
        first = not subs
        subs[subscriber.connection.id] = subscriber
        return first

    def remove(self, topic: str, conn_id: str) -> bool:
        """Remove a subscriber; True when the topic has none left on this node."""
        subs = self._topics.get(topic)
        if subs is None or subs.pop(conn_id, None) is None:
            return False
        if not subs:
            del self._topics[topic]
            return True
        return False

    def count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def __len__(self) -> int:
        """Topics with at least one subscriber on this node."""
        return len(self._topics)

    def broadcast(self, message: OutboundBroadcast, exclude: str | None = None) -> int:
        """Queue `message` for every subscriber of its topic but `exclude`; returns how many."""
        subs = self._topics.get(message.topic)
        if not subs:
            return 0
        delivered = 0
        # No copy of `subs`: `send` never changes subscriptions synchronously (a dropped slow
        # consumer is removed later, when its socket reports the loss).
        for conn_id, sub in subs.items():
            if conn_id == exclude:
                continue
            if sub.pending is not None:
                sub.pending.append(message)
                continue
            conn = sub.connection
            # Both are cached in the message: encoded and framed at most once per version.
            frame = message.frame_for(conn.version)
            if frame is not None:
                conn.send(frame, message.wire_for(conn.version))
                delivered += 1
        return delivered

    def push_presence(
        self,
        topic: str,
        frames: Mapping[ProtocolVersion, tuple[OutFrame, bytes]] | None,
        private: tuple[
            Callable[[Connection], bool], Mapping[ProtocolVersion, tuple[OutFrame, bytes]]
        ]
        | None = None,
    ) -> None:
        """Queue a presence diff, as (frame, framed bytes) per version, for the topic's
        presence-enabled subscribers. With `private` (a test and its frames), the connections
        the test picks get those frames instead (a hidden presence's owner); `frames` None
        sends the others nothing."""
        for sub in self._topics.get(topic, {}).values():
            if not sub.presence:
                continue
            conn = sub.connection
            if private is not None and private[0](conn):
                conn.send(*private[1][conn.version])
            elif frames is not None:
                conn.send(*frames[conn.version])
