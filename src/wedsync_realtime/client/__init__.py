"""The Python client SDK of WedSync Realtime (asyncio).

    from wedsync_realtime.client import RealtimeClient

    async with RealtimeClient("ws://localhost:4000", token) as client:
        async with client.channel("form:42") as channel:
            channel.on_broadcast("form:updated", on_update)
            channel.on_reload(reload_form)
            await channel.send("form:updated", {"field_id": "f1"})

Speaks the Supabase Realtime protocol (Phoenix channels, vsn 1.0.0 and 2.0.0) and our
extensions: stream positions in `meta`, `recover` on rejoin, idempotent publishing by `meta.id`.
What it adds over the official clients: reconnect with jittered backoff, recovery of missed
messages with exactly-once, in-order delivery (or an explicit "reload"), and an offline outbox
persisted in SQLite. Of the server package it imports only the frame codec (`protocol/`).
"""

from wedsync_realtime.client.backoff import Backoff
from wedsync_realtime.client.channel import Channel
from wedsync_realtime.client.client import HEARTBEAT_INTERVALS, RealtimeClient, endpoint_url
from wedsync_realtime.client.connection import ConnectionState
from wedsync_realtime.client.errors import (
    AuthenticationError,
    ClientClosed,
    ConnectionLost,
    JoinError,
    OutboxFull,
    PushError,
    PushTimeout,
    RealtimeClientError,
)
from wedsync_realtime.client.model import (
    ChannelOptions,
    ChannelState,
    MessageStream,
    Reload,
    SendResult,
)
from wedsync_realtime.client.outbox import Outbox, OutboxEntry
from wedsync_realtime.client.presence import PresenceChange
from wedsync_realtime.client.protocol import Broadcast
from wedsync_realtime.client.stream import Position

__all__ = [
    "HEARTBEAT_INTERVALS",
    "AuthenticationError",
    "Backoff",
    "Broadcast",
    "Channel",
    "ChannelOptions",
    "ChannelState",
    "ClientClosed",
    "ConnectionLost",
    "ConnectionState",
    "JoinError",
    "MessageStream",
    "Outbox",
    "OutboxEntry",
    "OutboxFull",
    "Position",
    "PresenceChange",
    "PushError",
    "PushTimeout",
    "RealtimeClient",
    "RealtimeClientError",
    "Reload",
    "SendResult",
    "endpoint_url",
]
