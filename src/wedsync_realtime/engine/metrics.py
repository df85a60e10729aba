"""Operations figures of one node, counted as things happen (`GET /api/realtime/metrics`).

SPEC.md "Operations" asks for connection uptime, latency, message rates, user concurrency and
channel subscription counts. The node tells `NodeMetrics` about every local publish (its channel,
when it started, how many local subscribers were handed the frame, how many of those were
dropped at a full send queue), every failed publish, every connection that ends (with the close
code the server gave it, if any) and the number of distinct users connected after each connect.

Every update is O(1) and allocation-free once a channel is known, so that it costs the publish
path well under a microsecond; no lock is needed (one event loop). Memory is bounded:

* messages per minute: 60 per-second buckets in a ring (a sliding window of whole seconds);
* connection endings: 60 per-minute buckets (the last hour);
* per-channel figures: at most `MAX_TRACKED_CHANNELS` channels, least recently active dropped
  first (a dropped channel that publishes again starts from zero).

Times come from the node's monotonic clock, passed in: tests drive it with a fake clock.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from wedsync_realtime.errors import CloseCode

__all__ = [
    "DROPPED_CLOSE_CODES",
    "MAX_TRACKED_CHANNELS",
    "ChannelStats",
    "NodeMetrics",
]

#: Channels whose figures are kept; beyond it the least recently active one is forgotten.
MAX_TRACKED_CHANNELS = 10_000
#: Seconds of the messages-per-minute window (one bucket per second).
RATE_WINDOW_S = 60
#: Minutes of the connection-uptime window (one bucket per minute).
UPTIME_WINDOW_MIN = 60
#: Close codes with which the server drops a connection it judges unhealthy: no frame (not even
#: a heartbeat) for the idle timeout, a send queue that overflowed, an error handling a frame.
DROPPED_CLOSE_CODES = frozenset(
    {CloseCode.IDLE_TIMEOUT, CloseCode.SLOW_CONSUMER, CloseCode.INTERNAL_ERROR}
)

#: A bucket that never held anything (older than any window).
_NEVER = -(1 << 62)


@dataclass(slots=True)
class ChannelStats:
    """One channel's figures since this node started tracking it."""

    #: Publishes that reached the local fan-out (duplicates of an idempotency key excluded).
    messages: int = 0
    #: Local subscribers handed the frame (one per subscriber per message).
    deliveries: int = 0
    #: Of `deliveries`, those refused by a full send queue (the slow consumer is dropped).
    dropped: int = 0
    #: Publishes that raised (history append, channel lock or hand-off to other nodes failed).
    failed: int = 0
    #: Sum over `messages` of the time from publish start to the last local hand-off.
    delivery_s: float = 0.0

    @property
    def average_delivery_ms(self) -> float:
        """Mean time, in ms, from publish start to the frame being in every local subscriber's
        send queue (or on its socket); 0.0 before the first message."""
        return self.delivery_s * 1000 / self.messages if self.messages else 0.0

    @property
    def error_rate(self) -> float:
        """(failed publishes + dropped deliveries) / (messages + failed publishes + deliveries):
        0.0 when nothing was attempted. A publish that reached local subscribers and then
        failed to reach other nodes counts as a message and as a failure."""
        attempts = self.messages + self.failed + self.deliveries
        return (self.failed + self.dropped) / attempts if attempts else 0.0


class NodeMetrics:
    """The counters behind `GET /api/realtime/metrics`; `clock` is monotonic seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_channels: int = MAX_TRACKED_CHANNELS,
        channel_count: Callable[[], int] = lambda: 0,
    ) -> None:
        if max_channels < 1:
            raise ValueError(f"max_channels must be at least 1, not {max_channels}")
        self._clock = clock
        self._channel_count = channel_count
        self._max_channels = max_channels
        #: topic → figures, least recently active first.
        self._channels: OrderedDict[str, ChannelStats] = OrderedDict()
        # Messages of the current second are counted in `_second_count` until `_second_end`,
        # then moved to the ring of the seconds before (one compare per publish, no division).
        self._second = _NEVER
        self._second_end = float("-inf")
        self._second_count = 0
        self._rate_second = [_NEVER] * RATE_WINDOW_S
        self._rate_count = [0] * RATE_WINDOW_S
        self._end_minute = [_NEVER] * UPTIME_WINDOW_MIN
        self._ended = [0] * UPTIME_WINDOW_MIN
        self._dropped = [0] * UPTIME_WINDOW_MIN
        #: Deliveries refused by a full send queue, ever (`Connection` adds them; the fan-out
        #: reads it before and after handing a message out, to charge its channel).
        self.dropped_deliveries = 0
        #: Most distinct users (JWT `sub`) connected at once since start.
        self.peak_users = 0

    @property
    def active_channels(self) -> int:
        """Channels with at least one local subscriber (`channel_count`: the node's hub)."""
        return self._channel_count()

    # -- updates (the node's hot paths) --------------------------------------------------------

    def published(self, topic: str, start: float, delivered: int, dropped: int) -> None:
        """A publish on `topic` that began at `start` has just handed its frame to `delivered`
        local subscribers, `dropped` of them refused by a full queue."""
        now = self._clock()
        channels = self._channels
        stats = channels.get(topic)
        if stats is None:
            stats = self._track(topic)
        else:
            channels.move_to_end(topic)
        stats.messages += 1
        stats.deliveries += delivered
        if dropped:
            stats.dropped += dropped
        stats.delivery_s += now - start
        if now < self._second_end:
            self._second_count += 1
        else:
            self._next_second(now, 1)

    def _next_second(self, now: float, count: int) -> None:
        """Move the current second's count to the ring; `now`'s second starts with `count`."""
        if self._second_count:
            i = self._second % RATE_WINDOW_S
            self._rate_second[i] = self._second
            self._rate_count[i] = self._second_count
        self._second = math.floor(now)
        self._second_end = self._second + 1.0
        self._second_count = count

    def publish_failed(self, topic: str) -> None:
        """A publish on `topic` raised."""
        stats = self._channels.get(topic)
        if stats is None:
            stats = self._track(topic)
        else:
            self._channels.move_to_end(topic)
        stats.failed += 1

    def delivery_dropped(self) -> None:
        """A frame was refused by a subscriber's full send queue."""
        self.dropped_deliveries += 1

    def users_connected(self, users: int) -> None:
        """`users` distinct users are connected now (called on each connect)."""
        if users > self.peak_users:
            self.peak_users = users

    def connection_ended(self, close_code: int | None) -> None:
        """A connection is gone; `close_code` is the one the server gave it (None: the client
        closed or vanished first)."""
        minute = math.floor(self._clock() / 60)
        i = minute % UPTIME_WINDOW_MIN
        if self._end_minute[i] != minute:
            self._end_minute[i] = minute
            self._ended[i] = self._dropped[i] = 0
        self._ended[i] += 1
        if close_code in DROPPED_CLOSE_CODES:
            self._dropped[i] += 1

    def _track(self, topic: str) -> ChannelStats:
        channels = self._channels
        if len(channels) >= self._max_channels:
            channels.popitem(last=False)
        stats = channels[topic] = ChannelStats()
        return stats

    # -- reads (the metrics endpoint) ----------------------------------------------------------

    def messages_per_minute(self) -> int:
        """Messages published in the current second and the 59 whole seconds before it."""
        now = self._clock()
        if now >= self._second_end:
            self._next_second(now, 0)
        second = self._second
        return self._second_count + sum(
            count
            for at, count in zip(self._rate_second, self._rate_count, strict=True)
            if second - at < RATE_WINDOW_S
        )

    def connection_uptime_percent(self, open_connections: int) -> float:
        """Of the connections open at some point in the last hour (`open_connections` open now,
        plus those that ended in the current minute and the 59 before it), the percentage that
        the server did not drop as unhealthy (`DROPPED_CLOSE_CODES`); 100.0 when there were
        none."""
        minute = math.floor(self._clock() / 60)
        ended = dropped = 0
        for at, e, d in zip(self._end_minute, self._ended, self._dropped, strict=True):
            if minute - at < UPTIME_WINDOW_MIN:
                ended += e
                dropped += d
        total = open_connections + ended
        return 100.0 * (total - dropped) / total if total else 100.0

    def top_channels(self, limit: int) -> list[tuple[str, ChannelStats]]:
        """Up to `limit` tracked channels (topics), most messages first, then by name."""
        return heapq.nsmallest(
            limit, self._channels.items(), key=lambda item: (-item[1].messages, item[0])
        )

    def channel(self, topic: str) -> ChannelStats | None:
        return self._channels.get(topic)

    def __len__(self) -> int:
        """Channels tracked."""
        return len(self._channels)
