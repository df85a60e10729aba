"""SPEC.md "REST API shapes": ``GET /api/realtime/metrics``, this node's live operations figures.

For the service role and admins only (the `operator` dependency: 401 without a valid token, 403
for anyone else). The counting lives in `engine.metrics` (connections, publishes, fan-out timing,
drops); user activity is read from the node's presences (`wedding.presence.live_presences`). Every
figure is this node's: other nodes' connections, channels and presences are not summed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from wedsync_realtime.api.wedsync import ERROR_RESPONSES, NodeDep, operator
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.engine.node import Node
from wedsync_realtime.engine.presence_status import ACTIVE, Status
from wedsync_realtime.protocol.session import CHANNEL_PREFIX
from wedsync_realtime.wedding.presence import LivePresence, best_presence, live_presences

__all__ = ["router"]

router = APIRouter(prefix="/api/realtime", tags=["realtime"], responses=ERROR_RESPONSES)

OperatorDep = Annotated[Principal, Depends(operator)]

#: Channels listed by default, and at most, in `channel_performance`.
DEFAULT_CHANNELS = 50
MAX_CHANNELS = 500

_ONLINE = frozenset(str(s) for s in ACTIVE)
_IDLE = frozenset({str(Status.IDLE), str(Status.AWAY)})


class ConnectionStats(BaseModel):
    active_connections: int = Field(description="Open WebSocket connections on this node")
    total_channels: int = Field(description="Distinct channels with at least one subscriber")
    messages_per_minute: int = Field(
        description="Broadcasts published in the current second and the 59 before it"
    )
    connection_uptime_percent: float = Field(
        description="Connections of the last hour not dropped as unhealthy, in percent"
    )


class ChannelPerformance(BaseModel):
    channel_name: str
    subscriber_count: int = Field(description="Subscribers on this node now")
    messages_sent: int = Field(description="Broadcasts published since tracking began")
    average_delivery_ms: float = Field(
        description="Mean time from publish start to every local subscriber's send queue"
    )
    error_rate: float = Field(
        description="(failed publishes + dropped deliveries) / (messages + failed + deliveries)"
    )


class UserActivity(BaseModel):
    online_users: int = Field(description="Distinct users whose best status is online or busy")
    idle_users: int = Field(description="Distinct users whose best status is idle or away")
    typing_users: int = Field(description="Distinct users with a presence that is typing")
    peak_concurrent_users: int = Field(description="Most distinct users connected at once")


class MetricsOut(BaseModel):
    connection_stats: ConnectionStats
    channel_performance: list[ChannelPerformance]
    user_activity: UserActivity


def _user_activity(node: Node) -> UserActivity:
    by_user: dict[str, list[LivePresence]] = defaultdict(list)
    for presence in live_presences(node):
        if not presence.hidden:  # "appear offline": offline to everyone else
            by_user[presence.user_id].append(presence)
    statuses = [best_presence(presences).status for presences in by_user.values()]
    typing = sum(
        any(p.meta.get("is_typing") is True for p in presences) for presences in by_user.values()
    )
    return UserActivity(
        online_users=sum(s in _ONLINE for s in statuses),
        idle_users=sum(s in _IDLE for s in statuses),
        typing_users=typing,
        peak_concurrent_users=node.metrics.peak_users,
    )


@router.get("/metrics")
async def realtime_metrics(
    _operator: OperatorDep,
    node: NodeDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_CHANNELS, description="Channels in `channel_performance`")
    ] = DEFAULT_CHANNELS,
) -> MetricsOut:
    """This node's connection, channel and user figures (service role or admin only).

    **connection_stats**

    * `active_connections` — WebSocket connections open on this node now (admitted and not yet
      gone, including ones the server is closing).
    * `total_channels` — distinct channels with at least one subscriber on this node.
    * `messages_per_minute` — broadcasts published through this node in a sliding window of
      per-second buckets: the current second and the 59 whole seconds before it. A publish
      counts once, however many subscribers it reaches; duplicates of an idempotency key and
      messages relayed from other nodes do not count.
    * `connection_uptime_percent` — of the connections open at some point in the last hour (those
      open now plus those that ended in the current minute and the 59 before it), the percentage
      the server did not drop as unhealthy: a slow consumer (close 4008), no heartbeat within the
      idle timeout (4000) or an internal error (1011). Clients closing or leaving and server
      shutdowns (1001) are not drops; a client whose network vanishes is one only if its socket
      stays open until the idle timeout. 100.0 when there were no connections.

    **channel_performance** — the `limit` channels (default 50, at most 500) with the most
    messages, most first. Figures count from when this node began tracking the channel (its
    first publish since start); at most 10,000 channels are tracked, the least recently active
    forgotten first (one that publishes again starts from zero).

    * `subscriber_count` — subscribers of the channel on this node now.
    * `messages_sent` — broadcasts published on the channel (reaching local fan-out).
    * `average_delivery_ms` — mean over those messages of the time from the start of the node's
      publish (id, history append, channel lock) to the frame being handed to every local
      subscriber's send queue or socket; delivery over the network is not included.
    * `error_rate` — (failed publishes + dropped deliveries) / (messages + failed publishes +
      local deliveries attempted), 0 when nothing was attempted. A failed publish raised (history
      or the hand-off to other nodes failed); a dropped delivery was refused by a subscriber's
      full send queue (that slow consumer is then disconnected).

    **user_activity** — from the presences tracked on this node by users (a JWT `sub`). A user
    counts once, by their most available visible presence (online, busy, idle, away, offline in
    that order); presences that "appear offline" count nowhere.

    * `online_users` — users whose best status is online or busy (a plain meta without a
      status counts as online).
    * `idle_users` — users whose best status is idle or away.
    * `typing_users` — users with a visible presence whose meta has `is_typing: true`.
    * `peak_concurrent_users` — most distinct users connected at once since the node started
      (counted on each connect, presence or not).
    """
    metrics = node.metrics
    channels = [
        ChannelPerformance(
            channel_name=topic.removeprefix(CHANNEL_PREFIX),
            subscriber_count=node.hub.count(topic),
            messages_sent=stats.messages,
            average_delivery_ms=round(stats.average_delivery_ms, 3),
            error_rate=round(stats.error_rate, 6),
        )
        for topic, stats in metrics.top_channels(limit)
    ]
    return MetricsOut(
        connection_stats=ConnectionStats(
            active_connections=len(node.connections),
            total_channels=metrics.active_channels,
            messages_per_minute=metrics.messages_per_minute(),
            connection_uptime_percent=round(
                metrics.connection_uptime_percent(len(node.connections)), 3
            ),
        ),
        channel_performance=channels,
        user_activity=_user_activity(node),
    )
