"""Phoenix channel frames as Supabase Realtime puts them on the wire: pure codecs, no I/O.

Two serializers share one endpoint and are chosen per connection by the `vsn` query parameter
(Phoenix `lib/phoenix/socket.ex`: `vsn = params["vsn"] || "1.0.0"`):

* 1.0.0 — JSON objects `{"topic","event","payload","ref"[,"join_ref"]}`. Outgoing frames carry
  `topic, event, payload, ref` only (`Phoenix.Socket.V1.JSONSerializer` encodes
  `Map.take([:topic, :event, :payload, :ref])`), with `"ref": null` when there is none: the
  Python client's pydantic models require the key (reference notes §2.6).
* 2.0.0 — JSON arrays `[join_ref, ref, topic, event, payload]` plus binary frames with a 1-byte
  kind (`supabase/realtime` `lib/realtime_web/socket/v2_serializer.ex`). Clients send kind 3
  (user broadcast push) and read kind 4 (user broadcast); we never send kinds 0-2 because
  realtime-js cannot decode them (`realtime-js/src/lib/serializer.ts`).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "PHOENIX_TOPIC",
    "FrameError",
    "Message",
    "PayloadEncoding",
    "ProtocolVersion",
    "UserBroadcastPush",
    "decode_binary",
    "decode_text",
    "encode_message",
    "encode_user_broadcast",
]

PHOENIX_TOPIC = "phoenix"

# Binary frame kinds of the 2.0.0 serializer (v2_serializer.ex: @user_broadcast_push 3,
# @user_broadcast 4).
_KIND_USER_BROADCAST_PUSH = 3
_KIND_USER_BROADCAST = 4
_PUSH_HEADER = struct.Struct("!BBBBBBB")  # kind, join_ref, ref, topic, event, metadata lengths, enc
_BROADCAST_HEADER = struct.Struct("!BBBBB")  # kind, topic, event, metadata lengths, encoding


class ProtocolVersion(enum.StrEnum):
    """Serializer version negotiated by the `vsn` query parameter."""

    V1 = "1.0.0"
    V2 = "2.0.0"

    @classmethod
    def from_query(cls, value: str | None) -> ProtocolVersion:
        """Parse `vsn`; Phoenix matches `~> 1.0.0` and `~> 2.0.0`, so any 1.0.x / 2.0.x is fine."""
        if value is None or value == "":
            return cls.V1
        parts = value.split(".")
        if len(parts) == 3 and parts[0] in ("1", "2") and parts[1] == "0" and parts[2].isdigit():
            return cls.V1 if parts[0] == "1" else cls.V2
        raise ValueError(f"unsupported serializer version {value!r}")


class PayloadEncoding(enum.IntEnum):
    """Encoding byte of binary broadcast frames."""

    BINARY = 0
    JSON = 1


class FrameError(ValueError):
    """A frame that cannot be decoded. `reason` is safe to log and to send back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    """One Phoenix message, as decoded from or encoded to a text frame."""

    topic: str
    event: str
    payload: Any = field(default_factory=dict)
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True, slots=True)
class UserBroadcastPush:
    """A binary kind 3 frame: a broadcast whose payload travels as raw bytes."""

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    metadata: dict[str, Any]
    encoding: PayloadEncoding
    payload: bytes


def _ref(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # Phoenix clients send string refs; an integer is harmless, keep it as text.
        return str(value)
    raise FrameError(f"`{name}` must be a string or null")


def decode_text(version: ProtocolVersion, data: str | bytes) -> Message:
    """Decode one text frame of the given serializer version.

    Raises:
        FrameError: invalid JSON, or a frame of the wrong shape (not an object with
            topic/event/payload/ref for 1.0.0, not a 5-element array for 2.0.0).
    """
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
    if version is ProtocolVersion.V1:
        if not isinstance(raw, dict):
            raise FrameError("a 1.0.0 frame must be a JSON object")
        # Phoenix.Socket.Message.from_map! requires these keys; join_ref is optional.
        missing = [k for k in ("topic", "event", "payload", "ref") if k not in raw]
        if missing:
            raise FrameError(f"missing keys: {', '.join(missing)}")
        join_ref, ref = raw.get("join_ref"), raw["ref"]
        topic, event, payload = raw["topic"], raw["event"], raw["payload"]
    else:
        if not isinstance(raw, list) or len(raw) != 5:
            raise FrameError("a 2.0.0 text frame must be a 5-element JSON array")
        join_ref, ref, topic, event, payload = raw
    if not isinstance(topic, str) or not isinstance(event, str):
        raise FrameError("`topic` and `event` must be strings")
    return Message(
        topic=topic,
        event=event,
        payload=payload,
        ref=_ref(ref, "ref"),
        join_ref=_ref(join_ref, "join_ref"),
    )


def decode_binary(version: ProtocolVersion, data: bytes) -> UserBroadcastPush:
    """Decode one binary frame. Only 2.0.0 has binary frames, and only kind 3 goes client→server.

    Raises:
        FrameError: a 1.0.0 connection, an unknown kind, or lengths that overrun the frame.
    """
    if version is not ProtocolVersion.V2:
        raise FrameError("binary frames need vsn=2.0.0")
    if not data:
        raise FrameError("empty binary frame")
    if data[0] != _KIND_USER_BROADCAST_PUSH:
        raise FrameError(f"unsupported binary frame kind {data[0]}")
    if len(data) < _PUSH_HEADER.size:
        raise FrameError("binary frame shorter than its header")
    _, jr_len, ref_len, topic_len, event_len, meta_len, enc = _PUSH_HEADER.unpack_from(data)
    try:
        encoding = PayloadEncoding(enc)
    except ValueError:
        raise FrameError(f"unknown payload encoding {enc}") from None
    offset = _PUSH_HEADER.size
    end = offset + jr_len + ref_len + topic_len + event_len + meta_len
    if end > len(data):
        raise FrameError("binary frame lengths overrun the frame")
    # Lengths are UTF-8 byte counts, so slice the bytes before decoding each field.
    fields: list[str] = []
    try:
        for length in (jr_len, ref_len, topic_len, event_len, meta_len):
            fields.append(data[offset : offset + length].decode())
            offset += length
    except UnicodeDecodeError:
        raise FrameError("binary frame header fields are not UTF-8") from None
    join_ref, ref, topic, event, meta_text = fields
    metadata: dict[str, Any] = {}
    if meta_text:
        try:
            parsed = orjson.loads(meta_text)
        except orjson.JSONDecodeError:
            raise FrameError("binary frame metadata is not JSON") from None
        if not isinstance(parsed, dict):
            raise FrameError("binary frame metadata must be a JSON object")
        metadata = parsed
    return UserBroadcastPush(
        join_ref=join_ref or None,
        ref=ref or None,
        topic=topic,
        event=event,
        metadata=metadata,
        encoding=encoding,
        payload=bytes(data[end:]),
    )


def encode_message(version: ProtocolVersion, message: Message) -> str:
    """Encode a server→client text frame."""
    if version is ProtocolVersion.V1:
        data = orjson.dumps(
            {
                "topic": message.topic,
                "event": message.event,
                "payload": message.payload,
                "ref": message.ref,
            }
        )
    else:
        data = orjson.dumps(
            [message.join_ref, message.ref, message.topic, message.event, message.payload]
        )
    return data.decode()


def encode_user_broadcast(
    topic: str,
    event: str,
    payload: bytes,
    encoding: PayloadEncoding,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """Encode a kind 4 binary frame (server→client user broadcast).

    Raises:
        ValueError: a field longer than the 255 bytes its length byte can say.
    """
    topic_b, event_b = topic.encode(), event.encode()
    meta_b = orjson.dumps(metadata) if metadata else b""
    if max(len(topic_b), len(event_b), len(meta_b)) > 255:
        raise ValueError("topic, event and metadata must each be at most 255 bytes")
    header = _BROADCAST_HEADER.pack(
        _KIND_USER_BROADCAST, len(topic_b), len(event_b), len(meta_b), encoding
    )
    return b"".join((header, topic_b, event_b, meta_b, payload))
