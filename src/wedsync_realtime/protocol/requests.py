"""Typed client requests: what a decoded frame asks the server to do, validated at the edge.

The session turns each frame into exactly one of these values; the engine acts on them. Payloads
follow `supabase/realtime` `lib/realtime_web/channels/payloads/*.ex` (join config) and the frames
captured from both official clients (reference notes §2, §9).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from wedsync_realtime.protocol.frames import PayloadEncoding

__all__ = [
    "AccessTokenRequest",
    "BadRequest",
    "BroadcastConfig",
    "BroadcastRequest",
    "HeartbeatRequest",
    "JoinConfig",
    "JoinRequest",
    "LeaveRequest",
    "PostgresChangeBinding",
    "PresenceAction",
    "PresenceConfig",
    "PresenceRequest",
    "RecoverConfig",
    "ReplayConfig",
    "Request",
    "parse_join_config",
]


class ConfigError(ValueError):
    """A join config that cannot be cast; the message names the field."""


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """`config.broadcast.replay`: messages since `since` (epoch ms), at most `limit`."""

    since: int
    limit: int | None


@dataclass(frozen=True, slots=True)
class RecoverConfig:
    """`config.broadcast.recover` (our extension, Centrifugo's recovery): the position of the
    last message the client received, so the server sends exactly the ones after it."""

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    self_: bool = False
    ack: bool = False
    replay: ReplayConfig | None = None
    recover: RecoverConfig | None = None


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    key: str = ""
    enabled: bool = False


@dataclass(frozen=True, slots=True)
class PostgresChangeBinding:
    """One `postgres_changes` entry as the client sent it (echoed back with an id)."""

    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JoinConfig:
    broadcast: BroadcastConfig = field(default_factory=BroadcastConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    postgres_changes: tuple[PostgresChangeBinding, ...] = ()
    private: bool = False


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    ref: str | None


@dataclass(frozen=True, slots=True)
class JoinRequest:
    topic: str
    ref: str | None
    join_ref: str | None
    config: JoinConfig
    access_token: str | None
    #: The join_ref of a channel on the same topic that this join replaces (Phoenix closes it).
    replaces_join_ref: str | None = None

    @property
    def subtopic(self) -> str:
        return self.topic.removeprefix("realtime:")


@dataclass(frozen=True, slots=True)
class LeaveRequest:
    topic: str
    ref: str | None
    join_ref: str | None


@dataclass(frozen=True, slots=True)
class BroadcastRequest:
    """A client broadcast. JSON ones carry `payload`; binary (kind 3) ones carry `raw` bytes."""

    topic: str
    ref: str | None
    join_ref: str | None
    event: str
    payload: dict[str, Any] | None
    raw: bytes | None = None
    encoding: PayloadEncoding = PayloadEncoding.JSON
    meta: dict[str, Any] = field(default_factory=dict)
    #: Size of the user payload in bytes as received, for the payload limit.
    size: int = 0


class PresenceAction(enum.StrEnum):
    TRACK = "track"
    UNTRACK = "untrack"


@dataclass(frozen=True, slots=True)
class PresenceRequest:
    topic: str
    ref: str | None
    join_ref: str | None
    action: PresenceAction
    payload: dict[str, Any]
    size: int = 0


@dataclass(frozen=True, slots=True)
class AccessTokenRequest:
    topic: str
    token: str | None


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A frame the session refused; the client gets an error reply with `reason`."""

    topic: str
    ref: str | None
    join_ref: str | None
    reason: str


Request = (
    HeartbeatRequest
    | JoinRequest
    | LeaveRequest
    | BroadcastRequest
    | PresenceRequest
    | AccessTokenRequest
    | BadRequest
)


def _flexible_bool(value: Any, name: str, default: bool = False) -> bool:
    """Supabase's FlexibleBoolean: true/false, the strings "true"/"false", or null."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"`{name}` must be a boolean")


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    # realtime-py sends `"broadcast": null` when a config has no broadcast section.
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"`config.{name}` must be an object")
    return value


def _parse_replay(value: Any) -> ReplayConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("`config.broadcast.replay` must be an object")
    since, limit = value.get("since"), value.get("limit")
    if not isinstance(since, int) or isinstance(since, bool):
        raise ConfigError("`config.broadcast.replay.since` must be an integer (epoch ms)")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ConfigError("`config.broadcast.replay.limit` must be a positive integer")
    return ReplayConfig(since=since, limit=limit)


def _parse_recover(value: Any) -> RecoverConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("`config.broadcast.recover` must be an object")
    offset, epoch = value.get("offset"), value.get("epoch")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ConfigError("`config.broadcast.recover.offset` must be a non-negative integer")
    if not isinstance(epoch, str):
        raise ConfigError("`config.broadcast.recover.epoch` must be a string")
    return RecoverConfig(offset=offset, epoch=epoch)


def parse_join_config(payload: Any) -> tuple[JoinConfig, str | None]:
    """Cast a `phx_join` payload into (config, access_token).

    Raises:
        ConfigError: a field of the wrong type, named in the message.
    """
    if not isinstance(payload, dict):
        raise ConfigError("join payload must be an object")
    raw_config = payload.get("config")
    if raw_config is None:
        raw_config = {}
    if not isinstance(raw_config, dict):
        raise ConfigError("`config` must be an object")
    broadcast = _section(raw_config, "broadcast")
    presence = _section(raw_config, "presence")
    key = presence.get("key")
    if key is not None and not isinstance(key, str | int):
        raise ConfigError("`config.presence.key` must be a string")
    changes = raw_config.get("postgres_changes")
    if changes is None:
        changes = []
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise ConfigError("`config.postgres_changes` must be a list of objects")
    # The legacy alias `user_token` is still accepted by Supabase (reference notes §4.1).
    token = payload.get("access_token", payload.get("user_token"))
    if token is not None and not isinstance(token, str):
        raise ConfigError("`access_token` must be a string")
    replay = _parse_replay(broadcast.get("replay"))
    recover = _parse_recover(broadcast.get("recover"))
    if replay is not None and recover is not None:
        raise ConfigError("`config.broadcast`: give `replay` or `recover`, not both")
    config = JoinConfig(
        broadcast=BroadcastConfig(
            self_=_flexible_bool(broadcast.get("self"), "config.broadcast.self"),
            ack=_flexible_bool(broadcast.get("ack"), "config.broadcast.ack"),
            replay=replay,
            recover=recover,
        ),
        presence=PresenceConfig(
            key="" if key is None else str(key),
            enabled=_flexible_bool(presence.get("enabled"), "config.presence.enabled"),
        ),
        postgres_changes=tuple(PostgresChangeBinding(raw=dict(c)) for c in changes),
        private=_flexible_bool(raw_config.get("private"), "config.private"),
    )
    return config, token
