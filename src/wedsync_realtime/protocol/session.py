"""The per-connection protocol state machine, sans-I/O: frames in, typed requests and frames out.

A `Session` knows which topics the connection has joined (with their join_ref) and turns every
incoming frame into one `Request`, or a `BadRequest` carrying the reason the client is told. It
never awaits, reads a clock or touches a socket, so it is tested with bytes in and bytes out; the
engine decides what a request does and tells the session when a channel opens or closes.

Phoenix semantics kept here (`phoenixframework/phoenix` `lib/phoenix/socket.ex`):
* a message on a topic that is not joined is answered `{"reason": "unmatched topic"}`;
* a second `phx_join` on a joined topic replaces the old channel (the old one gets `phx_close`);
* the join_ref of a join is its `join_ref`, or its `ref` when the client sent none.
"""

from __future__ import annotations

from typing import Any

from wedsync_realtime.errors import ErrorCode
from wedsync_realtime.protocol.frames import (
    PHOENIX_TOPIC,
    FrameError,
    Message,
    ProtocolVersion,
    UserBroadcastPush,
    decode_binary,
    decode_text,
    encode_message,
)
from wedsync_realtime.protocol.requests import (
    AccessTokenRequest,
    BadRequest,
    BroadcastRequest,
    ConfigError,
    HeartbeatRequest,
    JoinRequest,
    LeaveRequest,
    PresenceAction,
    PresenceRequest,
    Request,
    parse_join_config,
)

__all__ = ["CHANNEL_PREFIX", "OutFrame", "Session"]

CHANNEL_PREFIX = "realtime:"
UNMATCHED_TOPIC = "unmatched topic"

#: An outgoing frame: `str` goes out as a text frame, `bytes` as a binary frame.
OutFrame = str | bytes


class Session:
    """Protocol state of one connection."""

    def __init__(self, version: ProtocolVersion) -> None:
        self.version = version
        self._join_refs: dict[str, str | None] = {}

    # -- state, driven by the engine ----------------------------------------------------------

    def joined(self, topic: str, join_ref: str | None) -> None:
        """Record that `topic` is now joined under `join_ref`."""
        self._join_refs[topic] = join_ref

    def closed(self, topic: str) -> None:
        """Record that the channel on `topic` is gone (left, refused or shut down)."""
        self._join_refs.pop(topic, None)

    def is_joined(self, topic: str) -> bool:
        return topic in self._join_refs

    def join_ref(self, topic: str) -> str | None:
        return self._join_refs.get(topic)

    @property
    def topics(self) -> list[str]:
        return list(self._join_refs)

    # -- input ---------------------------------------------------------------------------------

    def receive_text(self, data: str | bytes) -> Request:
        """Decode a text frame into one request."""
        try:
            message = decode_text(self.version, data)
        except FrameError as exc:
            return BadRequest(PHOENIX_TOPIC, None, None, f"{ErrorCode.MALFORMED_MESSAGE}: {exc}")
        # Payload limits count UTF-8 bytes; `isascii` is O(1) on CPython's compact strings.
        size = len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
        return self._dispatch(message, size)

    def receive_bytes(self, data: bytes) -> Request:
        """Decode a binary frame (2.0.0 kind 3 user broadcast push) into one request."""
        try:
            push = decode_binary(self.version, data)
        except FrameError as exc:
            return BadRequest(PHOENIX_TOPIC, None, None, f"{ErrorCode.MALFORMED_MESSAGE}: {exc}")
        return self._binary_broadcast(push)

    def _dispatch(self, message: Message, size: int) -> Request:
        topic, event, ref, join_ref = message.topic, message.event, message.ref, message.join_ref
        if topic == PHOENIX_TOPIC:
            if event == "heartbeat":
                return HeartbeatRequest(ref)
            return self._bad(message, f"{ErrorCode.UNKNOWN_EVENT}: {event!r} on topic phoenix")
        if event == "phx_join":
            return self._join(message)
        if topic not in self._join_refs:
            # Also covers a broadcast, presence or leave sent before the join.
            return self._bad(message, UNMATCHED_TOPIC)
        payload = message.payload
        if event == "phx_leave":
            return LeaveRequest(topic, ref, join_ref)
        if event == "broadcast":
            return self._json_broadcast(message, size)
        if event == "presence":
            return self._presence(message, size)
        if event == "access_token":
            token = payload.get("access_token") if isinstance(payload, dict) else None
            return AccessTokenRequest(topic, token if isinstance(token, str) else None)
        return self._bad(message, f"{ErrorCode.UNKNOWN_EVENT}: {event!r}")

    def _join(self, message: Message) -> Request:
        topic = message.topic
        if not topic.startswith(CHANNEL_PREFIX):
            return self._bad(message, UNMATCHED_TOPIC)
        if topic == CHANNEL_PREFIX:
            return self._bad(
                message, f"{ErrorCode.TOPIC_NAME_REQUIRED}: You must provide a topic name"
            )
        try:
            config, token = parse_join_config(message.payload)
        except ConfigError as exc:
            return self._bad(message, f"{ErrorCode.INVALID_JOIN_PAYLOAD}: {exc}")
        join_ref = message.join_ref if message.join_ref is not None else message.ref
        return JoinRequest(
            topic=topic,
            ref=message.ref,
            join_ref=join_ref,
            config=config,
            access_token=token,
            replaces_join_ref=self._join_refs.get(topic) if topic in self._join_refs else None,
        )

    def _json_broadcast(self, message: Message, size: int) -> Request:
        payload = message.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
            return self._bad(
                message, f"{ErrorCode.INVALID_MESSAGE}: broadcast needs a string `event`"
            )
        inner = payload.get("payload", {})
        if not isinstance(inner, dict):
            # realtime-py drops broadcasts whose payload is not an object (reference notes §2.6).
            return self._bad(
                message, f"{ErrorCode.INVALID_MESSAGE}: broadcast `payload` must be an object"
            )
        meta = payload.get("meta")
        return BroadcastRequest(
            topic=message.topic,
            ref=message.ref,
            join_ref=message.join_ref,
            event=payload["event"],
            payload=inner,
            meta=meta if isinstance(meta, dict) else {},
            size=size,
        )

    def _binary_broadcast(self, push: UserBroadcastPush) -> Request:
        if push.topic not in self._join_refs:
            return BadRequest(push.topic, push.ref, push.join_ref, UNMATCHED_TOPIC)
        return BroadcastRequest(
            topic=push.topic,
            ref=push.ref,
            join_ref=push.join_ref,
            event=push.event,
            payload=None,
            raw=push.payload,
            encoding=push.encoding,
            meta=push.metadata,
            size=len(push.payload),
        )

    def _presence(self, message: Message, size: int) -> Request:
        payload = message.payload
        action = payload.get("event") if isinstance(payload, dict) else None
        # The server reads only `event` (lower-cased) and `payload` (presence_handler.ex).
        action = action.lower() if isinstance(action, str) else action
        if action == PresenceAction.TRACK:
            meta = payload.get("payload", {})
            if not isinstance(meta, dict):
                return self._bad(
                    message, f"{ErrorCode.INVALID_MESSAGE}: Presence track payload must be a map"
                )
            return PresenceRequest(
                message.topic, message.ref, message.join_ref, PresenceAction.TRACK, meta, size
            )
        if action == PresenceAction.UNTRACK:
            return PresenceRequest(
                message.topic, message.ref, message.join_ref, PresenceAction.UNTRACK, {}, size
            )
        return self._bad(
            message, f"{ErrorCode.INVALID_MESSAGE}: presence event must be track or untrack"
        )

    @staticmethod
    def _bad(message: Message, reason: str) -> BadRequest:
        return BadRequest(message.topic, message.ref, message.join_ref, reason)

    # -- output --------------------------------------------------------------------------------

    def reply(
        self,
        topic: str,
        ref: str | None,
        join_ref: str | None,
        status: str,
        response: dict[str, Any],
    ) -> OutFrame:
        """A `phx_reply` to the request `ref` (ok or error)."""
        payload = {"status": status, "response": response}
        return encode_message(self.version, Message(topic, "phx_reply", payload, ref, join_ref))

    def error_reply(
        self, topic: str, ref: str | None, join_ref: str | None, reason: str
    ) -> OutFrame:
        return self.reply(topic, ref, join_ref, "error", {"reason": reason})

    def push(self, topic: str, event: str, payload: Any, *, ref: str | None = None) -> OutFrame:
        """A server push on a joined channel, carrying the channel's current join_ref (2.0.0).

        realtime-js drops pushes whose join_ref is set but stale (`channel.js` `isMember`), so a
        push must carry the current join_ref or null; after a close it carries null.
        """
        join_ref = self._join_refs.get(topic)
        return encode_message(self.version, Message(topic, event, payload, ref, join_ref))

    def system(self, topic: str, status: str, message: str, extension: str = "system") -> OutFrame:
        """A `system` push (`push_system_message/5` in `realtime_channel.ex`)."""
        payload = {
            "extension": extension,
            "status": status,
            "message": message,
            "channel": topic.removeprefix(CHANNEL_PREFIX),
        }
        return self.push(topic, "system", payload)

    def close_push(self, topic: str, join_ref: str | None) -> OutFrame:
        """`phx_close` for the channel joined under `join_ref` (ref = join_ref, as Phoenix does)."""
        message = Message(topic, "phx_close", {}, join_ref, join_ref)
        return encode_message(self.version, message)
