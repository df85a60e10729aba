"""A broadcast on its way out, encoded once per protocol version and shared by every subscriber.

Cross-version rules (`supabase/realtime` `message_dispatcher.ex`,
`UserBroadcast.convert_to_json_broadcast/1`; reference notes §1.9):
* a broadcast that arrived as a binary kind 3 frame reaches 2.0.0 peers as a kind 4 frame;
* its JSON-encoded payload reaches 1.0.0 peers as an ordinary JSON broadcast;
* a binary-encoded payload cannot be expressed in 1.0.0 and is not delivered to those peers;
* a JSON broadcast reaches 2.0.0 peers as `[null, null, topic, "broadcast", {...}]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wedsync_realtime.protocol.frames import (
    Message,
    PayloadEncoding,
    ProtocolVersion,
    encode_message,
    encode_user_broadcast,
)
from wedsync_realtime.protocol.session import OutFrame
from wedsync_realtime.protocol.wsframe import websocket_frame

__all__ = ["OutboundBroadcast"]


@dataclass(slots=True)
class OutboundBroadcast:
    """One broadcast message. `payload` is the JSON object, when the payload is JSON; `raw` the
    bytes as a kind 3 frame carried them, when it came that way."""

    topic: str
    event: str
    payload: dict[str, Any] | None
    raw: bytes | None = None
    encoding: PayloadEncoding = PayloadEncoding.JSON
    meta: dict[str, Any] | None = None
    _frames: dict[ProtocolVersion, OutFrame | None] = field(default_factory=dict, repr=False)
    _wire: dict[ProtocolVersion, bytes] = field(default_factory=dict, repr=False)

    def json_payload(self) -> dict[str, Any]:
        """The Supabase broadcast payload `{"type","event","payload"[,"meta"]}`."""
        body: dict[str, Any] = {"type": "broadcast", "event": self.event, "payload": self.payload}
        if self.meta:
            body["meta"] = self.meta
        return body

    def frame_for(self, version: ProtocolVersion) -> OutFrame | None:
        """The frame for peers speaking `version`, or None when it cannot reach them."""
        try:
            return self._frames[version]
        except KeyError:
            frame = self._encode(version)
            self._frames[version] = frame
            return frame

    def wire_for(self, version: ProtocolVersion) -> bytes | None:
        """`frame_for(version)` as a complete WebSocket frame, framed once for all sockets."""
        try:
            return self._wire[version]
        except KeyError:
            frame = self.frame_for(version)
            if frame is None:
                return None
            wire = self._wire[version] = websocket_frame(frame)
            return wire

    def _encode(self, version: ProtocolVersion) -> OutFrame | None:
        if version is ProtocolVersion.V2 and self.raw is not None:
            try:
                return encode_user_broadcast(
                    self.topic, self.event, self.raw, self.encoding, self.meta
                )
            except ValueError:
                pass  # a field too long for a length byte: fall back to a text frame
        if self.payload is None:
            return None
        return encode_message(version, Message(self.topic, "broadcast", self.json_payload()))
