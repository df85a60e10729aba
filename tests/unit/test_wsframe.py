"""RFC 6455 §5.2 server frames, and that a fan-out frames each message once per version."""

from __future__ import annotations

import struct

import pytest

from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import PayloadEncoding, ProtocolVersion
from wedsync_realtime.protocol.wsframe import websocket_frame


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e" + struct.pack("!H", 126)),
        (65_535, b"\x81\x7e" + struct.pack("!H", 65_535)),
        (65_536, b"\x81\x7f" + struct.pack("!Q", 65_536)),
    ],
)
def test_text_frame_lengths(length: int, header: bytes) -> None:
    frame = websocket_frame("a" * length)
    assert frame == header + b"a" * length


def test_text_is_utf8_and_bytes_are_binary() -> None:
    assert websocket_frame("é") == b"\x81\x02" + "é".encode()
    assert websocket_frame(b"\x04ab") == b"\x82\x03\x04ab"


def test_broadcast_is_framed_once_per_version() -> None:
    message = OutboundBroadcast(
        "realtime:room", "e", None, raw=b"\x00", encoding=PayloadEncoding.BINARY
    )
    v2 = message.wire_for(ProtocolVersion.V2)
    assert v2 is message.wire_for(ProtocolVersion.V2)
    assert v2 is not None and v2[:1] == b"\x82"  # binary kind 4 frame
    assert message.wire_for(ProtocolVersion.V1) is None  # binary payloads never reach 1.0.0
    json_message = OutboundBroadcast("realtime:room", "e", {"n": 1})
    v1 = json_message.wire_for(ProtocolVersion.V1)
    assert v1 == websocket_frame(json_message.frame_for(ProtocolVersion.V1) or "")
