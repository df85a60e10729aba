"""Stream positions and exactly-once, in-order delivery on one channel.

Every broadcast of a recovery-capable server carries its position in the channel's stream
(`meta.offset`, `meta.epoch`; reference notes on Centrifugo §1.2). The client remembers the last
position it handed to the application; on a rejoin it asks the server to `recover` from there.
Recovered messages arrive first, then live ones, and the server de-duplicates between them, but
the client checks again, because "never delivered twice" is the application's promise, not the
server's: any message at or before the remembered position of the same epoch is dropped.

A message further ahead than the next offset means something was lost on a live connection (a
bug, or a multi-node hand-off): the client does not deliver it and resynchronises the channel
(rejoin with `recover`), as Centrifugo's "insufficient state" does. Messages without a position
(an older server) are delivered as they come.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Position", "StreamTracker", "Verdict"]


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a channel's stream: the offset of a message and the stream's epoch. Offsets of
    different epochs are never compared."""

    offset: int
    epoch: str

    @classmethod
    def from_json(cls, value: Any) -> Position | None:
        """`{"offset": int, "epoch": str}` (also a message `meta`), or None if it is not one."""
        if not isinstance(value, dict):
            return None
        offset, epoch = value.get("offset"), value.get("epoch")
        if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(epoch, str):
            return None
        return cls(offset, epoch)

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "epoch": self.epoch}


class Verdict(enum.Enum):
    """What to do with an incoming message."""

    DELIVER = "deliver"
    #: Already delivered (a replayed copy, or a live copy of a replayed one): drop it.
    DUPLICATE = "duplicate"
    #: Messages are missing before this one: drop it and resynchronise the channel.
    GAP = "gap"


class StreamTracker:
    """The last position delivered to the application on one channel."""

    __slots__ = ("_position", "duplicates")

    def __init__(self, position: Position | None = None) -> None:
        self._position = position
        #: Messages dropped as already delivered, for diagnostics and tests.
        self.duplicates = 0

    @property
    def position(self) -> Position | None:
        """Where to recover from after a reconnect; None when the server never said."""
        return self._position

    def reset(self, position: Position | None) -> None:
        """Start over at `position`: a fresh join (the reply's stream top), or a failed recovery
        (the application reloads its state as of now). None forgets the position."""
        self._position = position

    def classify(self, position: Position | None) -> Verdict:
        """Decide on a message at `position`, and remember it when it is to be delivered."""
        if position is None:
            return Verdict.DELIVER
        last = self._position
        if last is None:
            self._position = position
            return Verdict.DELIVER
        if position.epoch == last.epoch:
            if position.offset <= last.offset:
                self.duplicates += 1
                return Verdict.DUPLICATE
            if position.offset > last.offset + 1:
                return Verdict.GAP
            self._position = position
            return Verdict.DELIVER
        # A new epoch: the old stream ended (expired while idle, or the server lost it). Its first
        # message is offset 1; anything later means its beginning passed us by.
        if position.offset == 1:
            self._position = position
            return Verdict.DELIVER
        return Verdict.GAP
