"""Domain events: what the WedSync services return for the router to publish.

The services never publish; they return `DomainEvent` values (issue 5, "One pipeline for domain
events") and the router publishes each event's `payload` under its `event` name on every channel
of `channels`. An `Outcome` pairs the result of a write with the events it produced.

Also here: canonical channel names (built with `ChannelRef`, so they always parse back to the
catalog), the one timestamp format of payloads (ISO 8601, UTC, milliseconds, ``Z``), and
`Reauthorize`, the node's hook that closes joined channels a changed fact no longer allows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeAlias, TypeVar

from wedsync_realtime.timestamps import iso_millis as iso_timestamp
from wedsync_realtime.wedding.channels import ChannelKind, ChannelRef

__all__ = [
    "DEFAULT_EVENT_PRIORITY",
    "Clock",
    "DomainEvent",
    "JsonValue",
    "Outcome",
    "Payload",
    "Reauthorize",
    "channel_name",
    "iso_timestamp",
    "unique",
    "utc_now",
]

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
Payload: TypeAlias = dict[str, JsonValue]

#: What the services read the time from (`utc_now`; tests pass a fixed or stepping clock).
Clock: TypeAlias = Callable[[], dt.datetime]


#: `Node.reauthorize`: re-check the joined channels whose name the predicate accepts, and every
#: channel of the users named.
class Reauthorize(Protocol):
    def __call__(
        self, wanted: Callable[[str], bool], users: frozenset[str] = ..., /
    ) -> Awaitable[int]: ...


#: The priority of ordinary events (1-10, as `realtime_events.priority`; 10 is most urgent).
DEFAULT_EVENT_PRIORITY = 5

T = TypeVar("T")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def channel_name(kind: ChannelKind, *ids: str) -> str:
    """The canonical name of a catalog channel, e.g. ``channel_name(SUPPLIER_CLIENTS, "s1")``."""
    return ChannelRef(kind, ids).name


def unique(names: Iterable[str]) -> tuple[str, ...]:
    """`names` without repeats, first occurrence first (events reach a channel once)."""
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One event to publish: `payload` under the name `event` on each of `channels`.

    `priority` (1-10) lets the router put urgent events (an urgent notification) ahead of others.
    """

    event: str
    channels: tuple[str, ...]
    payload: Payload
    priority: int = DEFAULT_EVENT_PRIORITY


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The result of a domain write and the events it produced, in publishing order."""

    value: T
    events: tuple[DomainEvent, ...] = field(default=())
