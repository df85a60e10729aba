"""Outbound broadcasts: the right frame per protocol version, encoded once (reference notes §1.9,
§2.3; `message_dispatcher.ex`, `UserBroadcast.convert_to_json_broadcast/1`)."""

from __future__ import annotations

from typing import Any

import pytest

from wedsync_realtime.protocol import broadcast as broadcast_module
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import PayloadEncoding, ProtocolVersion

V1, V2 = ProtocolVersion.V1, ProtocolVersion.V2
TOPIC = "realtime:room1"

# Verified frames (reference notes §2.3 and §9).
V1_HELLO = (
    '{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"msg",'
    '"payload":{"hello":"world"}},"ref":null}'
)
V2_HELLO = (
    '[null,null,"realtime:room1","broadcast",'
    '{"type":"broadcast","event":"msg","payload":{"hello":"world"}}]'
)
KIND4_HELLO = bytes([4, 14, 3, 0, 1]) + b"realtime:room1msg" + b'{"hello":"world"}'


def json_broadcast(**kwargs: Any) -> OutboundBroadcast:
    return OutboundBroadcast(topic=TOPIC, event="msg", payload={"hello": "world"}, **kwargs)


def kind3_json_broadcast(**kwargs: Any) -> OutboundBroadcast:
    """A broadcast that arrived as a kind 3 frame with a JSON payload (the node parses it)."""
    return OutboundBroadcast(
        topic=TOPIC,
        event="msg",
        payload={"hello": "world"},
        raw=b'{"hello":"world"}',
        encoding=PayloadEncoding.JSON,
        **kwargs,
    )


def test_json_broadcast_to_v1_is_an_object_frame_with_null_ref() -> None:
    assert json_broadcast().frame_for(V1) == V1_HELLO


def test_json_broadcast_to_v2_is_an_array_frame_with_null_refs() -> None:
    assert json_broadcast().frame_for(V2) == V2_HELLO


def test_kind3_json_broadcast_reaches_v2_as_kind4() -> None:
    assert kind3_json_broadcast().frame_for(V2) == KIND4_HELLO


def test_kind3_json_broadcast_reaches_v1_as_json() -> None:
    assert kind3_json_broadcast().frame_for(V1) == V1_HELLO


def test_kind4_keeps_the_bytes_the_client_sent() -> None:
    # The raw payload is forwarded as is, not re-serialised from the parsed object.
    message = OutboundBroadcast(
        topic=TOPIC,
        event="msg",
        payload={"a": 1},
        raw=b'{ "a" : 1 }',
        encoding=PayloadEncoding.JSON,
    )
    frame = message.frame_for(V2)
    assert isinstance(frame, bytes)
    assert frame.endswith(b'{ "a" : 1 }')


def test_binary_payload_reaches_v2_as_kind4_with_binary_encoding() -> None:
    message = OutboundBroadcast(
        topic=TOPIC, event="blob", payload=None, raw=b"\x00\xff", encoding=PayloadEncoding.BINARY
    )
    assert message.frame_for(V2) == bytes([4, 14, 4, 0, 0]) + b"realtime:room1blob\x00\xff"


def test_binary_payload_cannot_reach_v1() -> None:
    # "User payload encoding is not JSON": not delivered to 1.0.0 peers.
    message = OutboundBroadcast(
        topic=TOPIC, event="blob", payload=None, raw=b"\x00\xff", encoding=PayloadEncoding.BINARY
    )
    assert message.frame_for(V1) is None


def test_meta_in_json_frames() -> None:
    meta = {"id": "7b1f", "replayed": True}
    message = json_broadcast(meta=meta)
    assert message.json_payload() == {
        "type": "broadcast",
        "event": "msg",
        "payload": {"hello": "world"},
        "meta": meta,
    }
    assert message.frame_for(V1) == (
        '{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast",'
        '"event":"msg","payload":{"hello":"world"},"meta":{"id":"7b1f","replayed":true}},'
        '"ref":null}'
    )
    assert message.frame_for(V2) == (
        '[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"msg",'
        '"payload":{"hello":"world"},"meta":{"id":"7b1f","replayed":true}}]'
    )


def test_meta_in_kind4_frames() -> None:
    frame = kind3_json_broadcast(meta={"id": "x"}).frame_for(V2)
    assert frame == (
        bytes([4, 14, 3, 10, 1]) + b"realtime:room1msg" + b'{"id":"x"}' + b'{"hello":"world"}'
    )


@pytest.mark.parametrize("meta", [None, {}])
def test_no_meta_key_without_meta(meta: dict[str, Any] | None) -> None:
    assert "meta" not in json_broadcast(meta=meta).json_payload()
    frame = kind3_json_broadcast(meta=meta).frame_for(V2)
    assert isinstance(frame, bytes)
    assert frame[3] == 0  # metadata length


def test_kind3_with_a_topic_too_long_for_kind4_falls_back_to_text() -> None:
    topic = "realtime:" + "é" * 128  # more than 255 UTF-8 bytes
    message = OutboundBroadcast(
        topic=topic, event="msg", payload={"a": 1}, raw=b'{"a":1}', encoding=PayloadEncoding.JSON
    )
    frame = message.frame_for(V2)
    assert isinstance(frame, str)
    assert frame.startswith('[null,null,"realtime:')


@pytest.mark.parametrize("factory", [json_broadcast, kind3_json_broadcast])
def test_each_version_is_encoded_once(factory: Any) -> None:
    message = factory()
    first = {version: message.frame_for(version) for version in ProtocolVersion}
    for _ in range(3):
        for version in ProtocolVersion:
            assert message.frame_for(version) is first[version]


def test_encoders_run_once_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_message, real_binary = (
        broadcast_module.encode_message,
        broadcast_module.encode_user_broadcast,
    )

    def counting_message(*args: Any, **kwargs: Any) -> str:
        calls.append("text")
        return real_message(*args, **kwargs)

    def counting_binary(*args: Any, **kwargs: Any) -> bytes:
        calls.append("binary")
        return real_binary(*args, **kwargs)

    monkeypatch.setattr(broadcast_module, "encode_message", counting_message)
    monkeypatch.setattr(broadcast_module, "encode_user_broadcast", counting_binary)
    message = kind3_json_broadcast()
    for _ in range(5):
        message.frame_for(V1)
        message.frame_for(V2)
    assert sorted(calls) == ["binary", "text"]

    # "Not deliverable" is remembered too.
    calls.clear()
    blob = OutboundBroadcast(
        topic=TOPIC, event="b", payload=None, raw=b"\x01", encoding=PayloadEncoding.BINARY
    )
    for _ in range(5):
        assert blob.frame_for(V1) is None
        blob.frame_for(V2)
    assert calls == ["binary"]
