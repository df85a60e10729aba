"""Close codes, error codes and the exceptions that carry them: the client contract in one place.

Exception hierarchy::

    RealtimeError                 an error with a Supabase-style "<Code>: <message>" reason
     ├── AuthError                a token that is missing, malformed, wrongly signed or expired;
     │                            at connect time it becomes an HTTP 401 before the upgrade
     ├── ChannelError             a join, broadcast or presence request refused on one channel;
     │                            it becomes a `phx_reply` error and the socket stays open
     └── ConnectionRefused        a connection refused at connect time with another HTTP status

Error reasons use the codes of `supabase/realtime` (`ERROR_CODES.md`, `realtime_channel.ex`),
because realtime-py parses some of them: it waits 30 s before rejoining when a reason starts with
`ChannelRateLimitReached`, `ConnectionRateLimitReached` or `ClientJoinRateLimitReached`.
"""

from __future__ import annotations

import enum

__all__ = [
    "AuthError",
    "ChannelError",
    "CloseCode",
    "ConnectionRefused",
    "ErrorCode",
    "RealtimeError",
]


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends, and what a client should do about them.

    Codes below 4000 are RFC 6455 codes; 4000-4099 are ours. Every one of them means "reconnect"
    (with backoff) except where noted: the official clients reconnect on any close they did not
    initiate, and so does our SDK.
    """

    NORMAL = 1000
    #: Server shutting down (SIGTERM): reconnect, another node or the restarted server answers.
    GOING_AWAY = 1001
    #: A frame larger than the configured maximum (`WEDSYNC_MAX_FRAME_BYTES`).
    MESSAGE_TOO_BIG = 1009
    #: Unexpected server error on this connection.
    INTERNAL_ERROR = 1011
    #: No frame (not even a heartbeat) for `WEDSYNC_IDLE_TIMEOUT_S`: reconnect.
    IDLE_TIMEOUT = 4000
    #: The connection's send queue overflowed: the client reads too slowly. Reconnect.
    SLOW_CONSUMER = 4008
    #: More joins per second than allowed on one connection (Supabase closes such sockets too).
    JOIN_RATE_LIMITED = 4029


class ErrorCode(enum.StrEnum):
    """The `<Code>` part of error reasons."""

    UNAUTHORIZED = "Unauthorized"
    INVALID_JWT = "InvalidJWTToken"
    MALFORMED_JWT = "MalformedJWT"
    JWT_SIGNATURE = "JwtSignatureError"
    TOKEN_EXPIRED = "TokenExpired"
    TOPIC_NAME_REQUIRED = "TopicNameRequired"
    INVALID_JOIN_PAYLOAD = "InvalidJoinPayload"
    CHANNEL_RATE_LIMIT = "ChannelRateLimitReached"
    CONNECTION_RATE_LIMIT = "ConnectionRateLimitReached"
    CLIENT_JOIN_RATE_LIMIT = "ClientJoinRateLimitReached"
    MESSAGE_RATE_LIMIT = "MessageRateLimitReached"
    CLIENT_PRESENCE_RATE_LIMIT = "ClientPresenceRateLimitReached"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    MALFORMED_MESSAGE = "MalformedWebSocketMessage"
    UNKNOWN_EVENT = "UnknownEvent"
    INVALID_MESSAGE = "InvalidMessage"
    POSTGRES_CHANGES_UNAVAILABLE = "PostgresChangesUnavailable"
    #: A `postgres_changes` binding that cannot be subscribed (bad filter, unknown table or
    #: column, no SELECT privilege, non-key filter without REPLICA IDENTITY FULL).
    POSTGRES_CHANGES_BINDING = "InvalidPostgresChangesBinding"
    #: Supabase's code for a replay that cannot be served (reference notes §4.3).
    UNABLE_TO_REPLAY = "UnableToReplayMessages"
    #: The history store failed while a join read it (e.g. its server is unreachable).
    HISTORY_UNAVAILABLE = "HistoryUnavailable"
    UNKNOWN = "UnknownErrorOnChannel"


class RealtimeError(Exception):
    """An error whose reason goes to the client as `"<Code>: <message>"`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


class AuthError(RealtimeError):
    """A token that cannot be accepted. `message` is Supabase's connect-time error text."""


class ChannelError(RealtimeError):
    """A channel request refused; answered with a `phx_reply` error on that channel."""


class ConnectionRefused(RealtimeError):
    """A connection refused before the upgrade with `status` (e.g. 429 for too many connections)."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(code, message)
        self.status = status
