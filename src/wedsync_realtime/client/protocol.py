"""The client's side of the wire: Phoenix frames of both serializer versions, and the messages
inside them. Pure functions, no I/O.

* vsn 1.0.0: JSON objects `{"topic","event","payload","ref","join_ref"}` (clients send
  `join_ref`; server frames omit it).
* vsn 2.0.0: JSON arrays `[join_ref, ref, topic, event, payload]`, plus binary kind 4 frames for
  broadcasts that a peer sent as binary (reference notes §1.2, §1.9). This client always sends
  text frames; it reads kind 4 frames because other peers may send binary broadcasts.

Text frames are decoded with the server's own codec (`protocol.frames.decode_text`), so both sides
agree on what a well-formed frame is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from wedsync_realtime.client.stream import Position
from wedsync_realtime.protocol.frames import (
    FrameError,
    Message,
    PayloadEncoding,
    ProtocolVersion,
    decode_text,
)

__all__ = [
    "CHANNEL_PREFIX",
    "PHOENIX_TOPIC",
    "Broadcast",
    "FrameError",
    "Message",
    "ProtocolVersion",
    "Reply",
    "decode",
    "encode",
    "parse_broadcast",
    "parse_reply",
]

CHANNEL_PREFIX = "realtime:"
PHOENIX_TOPIC = "phoenix"

_KIND_USER_BROADCAST = 4
_BROADCAST_HEADER = struct.Struct("!BBBBB")  # kind, topic, event, metadata lengths, encoding


@dataclass(frozen=True, slots=True)
class Reply:
    """A `phx_reply`: `status` is "ok" or "error"; `response` is whatever the server sent."""

    status: str
    response: Any

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reason(self) -> str:
        """The error reason (`{"reason": ...}`), or the response as text."""
        if isinstance(self.response, dict) and isinstance(self.response.get("reason"), str):
            return str(self.response["reason"])
        return str(self.response)


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A broadcast as the application receives it.

    `payload` is the JSON object, or `bytes` for a binary payload (vsn 2.0.0 only). `id`,
    `position` and `replayed` come from `meta` and are None/False on servers that send none.
    """

    channel: str
    event: str
    payload: Any
    id: str | None = None
    position: Position | None = None
    replayed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def encode(
    version: ProtocolVersion,
    topic: str,
    event: str,
    payload: Any,
    ref: str | None,
    join_ref: str | None,
) -> str:
    """A client→server text frame."""
    if version is ProtocolVersion.V1:
        frame: Any = {
            "topic": topic,
            "event": event,
            "payload": payload,
            "ref": ref,
            "join_ref": join_ref,
        }
    else:
        frame = [join_ref, ref, topic, event, payload]
    return orjson.dumps(frame).decode()


def decode(version: ProtocolVersion, data: str | bytes) -> Message:
    """A server→client frame: text frames of either version, or a 2.0.0 kind 4 binary frame
    (returned as a `broadcast` message shaped like its JSON twin).

    Raises:
        FrameError: a frame that does not decode.
    """
    if isinstance(data, str):
        return decode_text(version, data)
    return _decode_user_broadcast(data)


def _decode_user_broadcast(data: bytes) -> Message:
    if len(data) < _BROADCAST_HEADER.size:
        raise FrameError("binary frame shorter than its header")
    kind, topic_len, event_len, meta_len, encoding = _BROADCAST_HEADER.unpack_from(data)
    if kind != _KIND_USER_BROADCAST:
        raise FrameError(f"unsupported binary frame kind {kind}")
    offset = _BROADCAST_HEADER.size
    end = offset + topic_len + event_len + meta_len
    if end > len(data):
        raise FrameError("binary frame lengths overrun the frame")
    try:
        topic = data[offset : offset + topic_len].decode()
        offset += topic_len
        event = data[offset : offset + event_len].decode()
        offset += event_len
        meta = orjson.loads(data[offset:end]) if meta_len else {}
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        raise FrameError("binary frame header is not UTF-8 / JSON") from None
    body = bytes(data[end:])
    inner: Any = body
    if encoding == PayloadEncoding.JSON:
        try:
            inner = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FrameError("binary frame JSON payload does not parse") from None
    payload: dict[str, Any] = {"type": "broadcast", "event": event, "payload": inner}
    if isinstance(meta, dict) and meta:
        payload["meta"] = meta
    return Message(topic, "broadcast", payload, None, None)


def parse_reply(payload: Any) -> Reply:
    """The `{"status", "response"}` of a `phx_reply` (a malformed one counts as an error)."""
    if isinstance(payload, dict) and isinstance(payload.get("status"), str):
        return Reply(payload["status"], payload.get("response"))
    return Reply("error", {"reason": "malformed reply"})


def parse_broadcast(topic: str, payload: Any) -> Broadcast | None:
    """The application's view of a `broadcast` push, or None when it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        return None
    meta = payload.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    message_id = meta.get("id")
    return Broadcast(
        channel=topic.removeprefix(CHANNEL_PREFIX),
        event=payload["event"],
        payload=payload.get("payload"),
        id=message_id if isinstance(message_id, str) else None,
        position=Position.from_json(meta),
        replayed=meta.get("replayed") is True,
        meta=meta,
    )
