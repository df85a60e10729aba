"""Exceptions of the client SDK.

Network trouble is not an exception here: the client reconnects and the outbox holds what the
application sends meanwhile. What raises is what the application must act on: a join or a push the
server refused, a full outbox, a token the server will not accept.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ClientClosed",
    "ConnectionLost",
    "JoinError",
    "OutboxFull",
    "PushError",
    "PushTimeout",
    "RealtimeClientError",
]


class RealtimeClientError(Exception):
    """Base class of every error this SDK raises."""


class AuthenticationError(RealtimeClientError):
    """The server refused the connection's token (HTTP 401/403 at connect): log in again, then
    `set_auth` and `reconnect`. The client stays in the `error` state until then."""


class JoinError(RealtimeClientError):
    """The server refused a channel join; `reason` is its `"<Code>: <message>"` text."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"join of {channel!r} refused: {reason}")
        self.channel = channel
        self.reason = reason


class PushError(RealtimeClientError):
    """The server answered a push with an error (rate limit, payload too large, unauthorized)."""

    def __init__(self, event: str, reason: str) -> None:
        super().__init__(f"{event} refused: {reason}")
        self.event = event
        self.reason = reason


class PushTimeout(RealtimeClientError):
    """No reply to a push within the push timeout (the connection may be half dead)."""


class ConnectionLost(RealtimeClientError):
    """The socket went away before the reply to a push arrived."""


class ClientClosed(RealtimeClientError):
    """The client or channel was closed by the application."""


class OutboxFull(RealtimeClientError):
    """The offline outbox holds its maximum number of messages; nothing more can be queued until
    the connection is back (or older messages expire)."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"offline outbox is full ({size} messages waiting); "
            "wait for the connection to come back before sending more"
        )
        self.size = size
