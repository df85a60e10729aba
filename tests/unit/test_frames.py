"""Wire codecs of both serializers, on hand-built bytes and captured frames (reference notes §1.2,
§1.9, §9), plus property-based round trips.

The kind 3 encoder and kind 4 decoder below follow realtime-js `src/lib/serializer.ts`
(`_encodeUserBroadcastPush`, `_decodeUserBroadcast`), so the round trips check our codecs
against the client's layout rather than against themselves.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wedsync_realtime.protocol.frames import (
    FrameError,
    Message,
    PayloadEncoding,
    ProtocolVersion,
    UserBroadcastPush,
    decode_binary,
    decode_text,
    encode_message,
    encode_user_broadcast,
)

V1, V2 = ProtocolVersion.V1, ProtocolVersion.V2

# The captured realtime-js 2.119.0 pair for send({type:'broadcast', event:'msg',
# payload:{hello:'world'}}) (reference notes §1.9 and §9).
CAPTURED_KIND3 = (
    bytes([0x03, 0x01, 0x01, 0x0E, 0x03, 0x00, 0x01])
    + b"6"
    + b"7"
    + b"realtime:room1"
    + b"msg"
    + b'{"hello":"world"}'
)
CAPTURED_KIND4 = (
    bytes([0x04, 0x0E, 0x03, 0x00, 0x01]) + b"realtime:room1" + b"msg" + b'{"hello":"world"}'
)


# -- helpers that mirror realtime-js serializer.ts ---------------------------------------------


def js_encode_user_broadcast_push(
    *,
    join_ref: str | None,
    ref: str | None,
    topic: str,
    event: str,
    metadata: dict[str, Any],
    encoding: PayloadEncoding,
    payload: bytes,
) -> bytes:
    """`Serializer._encodeUserBroadcastPush`: lengths are UTF-8 byte counts, null refs are ''."""
    join_ref_b = (join_ref or "").encode()
    ref_b = (ref or "").encode()
    topic_b = topic.encode()
    event_b = event.encode()
    meta_b = orjson.dumps(metadata) if metadata else b""
    for field_b in (join_ref_b, ref_b, topic_b, event_b, meta_b):
        assert len(field_b) <= 255
    header = struct.pack(
        "!BBBBBBB",
        3,
        len(join_ref_b),
        len(ref_b),
        len(topic_b),
        len(event_b),
        len(meta_b),
        int(encoding),
    )
    return header + join_ref_b + ref_b + topic_b + event_b + meta_b + payload


def js_decode_user_broadcast(data: bytes) -> dict[str, Any]:
    """`Serializer._decodeUserBroadcast`, returning the raw payload bytes next to the message."""
    assert data[0] == 4
    topic_size, event_size, meta_size, encoding = data[1], data[2], data[3], data[4]
    offset = 5
    topic = data[offset : offset + topic_size].decode()
    offset += topic_size
    event = data[offset : offset + event_size].decode()
    offset += event_size
    metadata = data[offset : offset + meta_size].decode()
    offset += meta_size
    raw = data[offset:]
    inner: Any = orjson.loads(raw) if encoding == PayloadEncoding.JSON else raw
    body: dict[str, Any] = {"type": "broadcast", "event": event, "payload": inner}
    if meta_size > 0:
        body["meta"] = orjson.loads(metadata)
    return {
        "join_ref": None,
        "ref": None,
        "topic": topic,
        "event": "broadcast",
        "payload": body,
        "encoding": encoding,
        "raw": raw,
    }


# -- ProtocolVersion.from_query ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, V1),  # Phoenix: `params["vsn"] || "1.0.0"`
        ("", V1),
        ("1.0.0", V1),  # realtime-py
        ("2.0.0", V2),  # realtime-js >= 2.91
        ("1.0.7", V1),  # `~> 1.0.0` accepts any patch level
        ("2.0.12", V2),
    ],
)
def test_from_query_accepts_supported_versions(
    value: str | None, expected: ProtocolVersion
) -> None:
    assert ProtocolVersion.from_query(value) is expected


@pytest.mark.parametrize(
    "value", ["3.0.0", "2.1.0", "1.1.0", "0.0.1", "2.0", "2", "2.0.0.0", "2.0.x", "v2.0.0", "abc"]
)
def test_from_query_rejects_other_versions(value: str) -> None:
    with pytest.raises(ValueError, match="unsupported serializer version"):
        ProtocolVersion.from_query(value)


# -- decode_text -------------------------------------------------------------------------------


def test_decode_v1_captured_python_join() -> None:
    frame = (
        '{"event":"phx_join","payload":{"config":{"private":false},"access_token":"TEST_JWT"},'
        '"topic":"realtime:room1","ref":"1","join_ref":"1"}'
    )
    assert decode_text(V1, frame) == Message(
        topic="realtime:room1",
        event="phx_join",
        payload={"config": {"private": False}, "access_token": "TEST_JWT"},
        ref="1",
        join_ref="1",
    )


def test_decode_v1_captured_python_heartbeat_with_null_refs() -> None:
    frame = b'{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null,"join_ref":null}'
    assert decode_text(V1, frame) == Message("phoenix", "heartbeat", {}, None, None)


def test_decode_v1_join_ref_is_optional() -> None:
    frame = '{"topic":"realtime:a","event":"phx_leave","payload":{},"ref":"5"}'
    assert decode_text(V1, frame) == Message("realtime:a", "phx_leave", {}, "5", None)


def test_decode_v2_captured_js_frames() -> None:
    join = '["6","6","realtime:room1","phx_join",{"config":{"broadcast":{"self":true,"ack":true}}}]'
    assert decode_text(V2, join) == Message(
        "realtime:room1",
        "phx_join",
        {"config": {"broadcast": {"self": True, "ack": True}}},
        ref="6",
        join_ref="6",
    )
    heartbeat = b'[null,"7","phoenix","heartbeat",{}]'
    assert decode_text(V2, heartbeat) == Message("phoenix", "heartbeat", {}, "7", None)


@pytest.mark.parametrize("version", list(ProtocolVersion))
def test_decode_integer_refs_become_text(version: ProtocolVersion) -> None:
    frame: Any = (
        {"topic": "t", "event": "e", "payload": {}, "ref": 3, "join_ref": 2}
        if version is V1
        else [2, 3, "t", "e", {}]
    )
    message = decode_text(version, orjson.dumps(frame))
    assert (message.ref, message.join_ref) == ("3", "2")


@pytest.mark.parametrize("version", list(ProtocolVersion))
@pytest.mark.parametrize("data", ["", "{", "[null,", "nope", b"\xff\xfe", '{"topic":}'])
def test_decode_malformed_json(version: ProtocolVersion, data: str | bytes) -> None:
    with pytest.raises(FrameError, match="malformed JSON") as info:
        decode_text(version, data)
    assert info.value.reason.startswith("malformed JSON")


@pytest.mark.parametrize("data", ['[null,null,"t","e",{}]', '"text"', "42", "null"])
def test_decode_v1_needs_an_object(data: str) -> None:
    with pytest.raises(FrameError, match="must be a JSON object"):
        decode_text(V1, data)


@pytest.mark.parametrize("missing", ["topic", "event", "payload", "ref"])
def test_decode_v1_missing_key(missing: str) -> None:
    frame = {"topic": "t", "event": "e", "payload": {}, "ref": "1"}
    del frame[missing]
    with pytest.raises(FrameError, match=f"missing keys: {missing}$"):
        decode_text(V1, orjson.dumps(frame))


def test_decode_v1_names_every_missing_key() -> None:
    with pytest.raises(FrameError, match="missing keys: topic, event, payload, ref"):
        decode_text(V1, "{}")


@pytest.mark.parametrize(
    "data",
    [
        '{"topic":"t","event":"e","payload":{},"ref":null}',  # a 1.0.0 frame on 2.0.0
        '[null,"1","t","e"]',
        '[null,"1","t","e",{},"extra"]',
        "[]",
        '"t"',
        "null",
    ],
)
def test_decode_v2_needs_a_five_element_array(data: str) -> None:
    with pytest.raises(FrameError, match="5-element JSON array"):
        decode_text(V2, data)


@pytest.mark.parametrize(
    ("topic", "event"), [(1, "e"), (None, "e"), ("t", 2), ("t", None), (["t"], "e")]
)
@pytest.mark.parametrize("version", list(ProtocolVersion))
def test_decode_topic_and_event_must_be_strings(
    version: ProtocolVersion, topic: Any, event: Any
) -> None:
    frame: Any = (
        {"topic": topic, "event": event, "payload": {}, "ref": None}
        if version is V1
        else [None, None, topic, event, {}]
    )
    with pytest.raises(FrameError, match="`topic` and `event` must be strings"):
        decode_text(version, orjson.dumps(frame))


@pytest.mark.parametrize("bad", [True, 1.5, {}, ["1"]])
@pytest.mark.parametrize("name", ["ref", "join_ref"])
@pytest.mark.parametrize("version", list(ProtocolVersion))
def test_decode_refs_must_be_strings_or_null(version: ProtocolVersion, name: str, bad: Any) -> None:
    fields: dict[str, Any] = {"ref": "1", "join_ref": "1", name: bad}
    frame: Any = (
        {"topic": "t", "event": "e", "payload": {}, **fields}
        if version is V1
        else [fields["join_ref"], fields["ref"], "t", "e", {}]
    )
    with pytest.raises(FrameError, match=f"`{name}` must be a string or null"):
        decode_text(version, orjson.dumps(frame))


# -- decode_binary -----------------------------------------------------------------------------


def test_decode_captured_kind3() -> None:
    assert decode_binary(V2, CAPTURED_KIND3) == UserBroadcastPush(
        join_ref="6",
        ref="7",
        topic="realtime:room1",
        event="msg",
        metadata={},
        encoding=PayloadEncoding.JSON,
        payload=b'{"hello":"world"}',
    )


def test_decode_kind3_binary_payload_metadata_and_empty_refs() -> None:
    data = (
        bytes([3, 0, 0, 10, 4, 16, 0])
        + b"realtime:x"
        + b"ping"
        + b'{"persist":true}'
        + b"\x00\xff\x10"
    )
    assert decode_binary(V2, data) == UserBroadcastPush(
        join_ref=None,  # realtime-js writes '' for a null ref
        ref=None,
        topic="realtime:x",
        event="ping",
        metadata={"persist": True},
        encoding=PayloadEncoding.BINARY,
        payload=b"\x00\xff\x10",
    )


def test_decode_kind3_lengths_are_utf8_byte_counts() -> None:
    topic, event = "realtime:café-💍", "brindis🥂"
    data = js_encode_user_broadcast_push(
        join_ref="1",
        ref="2",
        topic=topic,
        event=event,
        metadata={},
        encoding=PayloadEncoding.JSON,
        payload=b"{}",
    )
    # 'é' is 2 bytes and each emoji 4: character counts would misplace every later field.
    assert data[3] == len(topic.encode()) == len(topic) + 1 + 3
    push = decode_binary(V2, data)
    assert (push.topic, push.event, push.payload) == (topic, event, b"{}")


def test_decode_kind3_with_empty_payload() -> None:
    data = bytes([3, 1, 1, 3, 1, 0, 0]) + b"12r:xe"
    assert decode_binary(V2, data).payload == b""


def test_decode_binary_accepts_a_bytearray() -> None:
    assert decode_binary(V2, bytearray(CAPTURED_KIND3)).payload == b'{"hello":"world"}'


def test_decode_binary_refused_on_v1() -> None:
    with pytest.raises(FrameError, match=r"binary frames need vsn=2\.0\.0"):
        decode_binary(V1, CAPTURED_KIND3)


def test_decode_binary_empty_frame() -> None:
    with pytest.raises(FrameError, match="empty binary frame"):
        decode_binary(V2, b"")


@pytest.mark.parametrize("kind", [0, 1, 2, 4, 5, 255])
def test_decode_binary_unknown_kind(kind: int) -> None:
    # Kinds 0-2 are Phoenix's, 4 is server→client only: a client may only send kind 3.
    with pytest.raises(FrameError, match=f"unsupported binary frame kind {kind}"):
        decode_binary(V2, bytes([kind]) + CAPTURED_KIND3[1:])


@pytest.mark.parametrize("length", range(1, 7))
def test_decode_binary_shorter_than_header(length: int) -> None:
    with pytest.raises(FrameError, match="shorter than its header"):
        decode_binary(V2, CAPTURED_KIND3[:length])


@pytest.mark.parametrize("encoding", [2, 3, 255])
def test_decode_binary_unknown_encoding(encoding: int) -> None:
    data = bytearray(CAPTURED_KIND3)
    data[6] = encoding
    with pytest.raises(FrameError, match=f"unknown payload encoding {encoding}"):
        decode_binary(V2, bytes(data))


@pytest.mark.parametrize("index", [1, 2, 3, 4, 5])
def test_decode_binary_lengths_overrun(index: int) -> None:
    # Header fields end at byte 7 + 1 + 1 + 14 + 3 = 26; the frame is 26 + 17 bytes long, so one
    # length bumped by 200 runs past the end.
    data = bytearray(CAPTURED_KIND3)
    data[index] += 200
    with pytest.raises(FrameError, match="lengths overrun the frame"):
        decode_binary(V2, bytes(data))


def test_decode_binary_header_fields_exactly_filling_the_frame() -> None:
    # No payload bytes at all is not an overrun.
    data = bytes([3, 1, 1, 3, 1, 0, 1]) + b"12r:xe"
    assert decode_binary(V2, data).topic == "r:x"
    with pytest.raises(FrameError, match="overrun"):
        decode_binary(V2, data[:-1])


@pytest.mark.parametrize("field_index", [0, 1, 2, 3])
def test_decode_binary_non_utf8_header(field_index: int) -> None:
    fields = [b"1", b"2", b"realtime:x", b"ev"]
    fields[field_index] = b"\xc3\x28"  # an invalid two-byte sequence
    header = bytes([3, *(len(f) for f in fields), 0, 1])
    with pytest.raises(FrameError, match="not UTF-8"):
        decode_binary(V2, header + b"".join(fields) + b"{}")


def test_decode_binary_payload_may_be_any_bytes() -> None:
    # Only header fields are text; a binary payload is not decoded.
    data = bytes([3, 0, 0, 3, 1, 0, 0]) + b"r:xe" + b"\xc3\x28\xff"
    assert decode_binary(V2, data).payload == b"\xc3\x28\xff"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (b"{", "metadata is not JSON"),
        (b"\xff", "not UTF-8"),
        (b"[1]", "metadata must be a JSON object"),
        (b'"persist"', "metadata must be a JSON object"),
    ],
)
def test_decode_binary_bad_metadata(metadata: bytes, reason: str) -> None:
    data = bytes([3, 0, 0, 3, 1, len(metadata), 1]) + b"r:xe" + metadata + b"{}"
    with pytest.raises(FrameError, match=reason):
        decode_binary(V2, data)


# -- encode_message ----------------------------------------------------------------------------


def test_encode_v1_reply_matches_captured_frame() -> None:
    message = Message(
        "phoenix", "phx_reply", {"status": "ok", "response": {}}, ref=None, join_ref=None
    )
    assert encode_message(V1, message) == (
        '{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":null}'
    )


def test_encode_v1_never_carries_join_ref() -> None:
    message = Message("realtime:room1", "phx_reply", {}, ref="1", join_ref="1")
    frame = orjson.loads(encode_message(V1, message))
    assert set(frame) == {"topic", "event", "payload", "ref"}


def test_encode_v2_reply_matches_captured_frame() -> None:
    message = Message("phoenix", "phx_reply", {"status": "ok", "response": {}}, ref="7")
    assert encode_message(V2, message) == (
        '[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]'
    )


def test_encode_v2_fastlane_broadcast_has_null_refs() -> None:
    message = Message("realtime:r", "broadcast", {"type": "broadcast", "event": "e", "payload": {}})
    assert encode_message(V2, message).startswith('[null,null,"realtime:r","broadcast",')


# -- encode_user_broadcast ---------------------------------------------------------------------


def test_encode_kind4_matches_captured_frame() -> None:
    frame = encode_user_broadcast(
        "realtime:room1", "msg", b'{"hello":"world"}', PayloadEncoding.JSON
    )
    assert frame == CAPTURED_KIND4


def test_encode_kind4_with_metadata_and_binary_payload() -> None:
    frame = encode_user_broadcast(
        "realtime:r", "e", b"\x00\x01", PayloadEncoding.BINARY, {"id": "abc"}
    )
    assert frame == bytes([4, 10, 1, 12, 0]) + b"realtime:r" + b"e" + b'{"id":"abc"}' + b"\x00\x01"


@pytest.mark.parametrize("metadata", [None, {}])
def test_encode_kind4_without_metadata_has_zero_meta_length(
    metadata: dict[str, Any] | None,
) -> None:
    # realtime-js adds `meta` to the message whenever metadata_len > 0.
    frame = encode_user_broadcast("realtime:r", "e", b"{}", PayloadEncoding.JSON, metadata)
    assert frame[3] == 0
    assert "meta" not in js_decode_user_broadcast(frame)["payload"]


@pytest.mark.parametrize(
    ("topic", "event", "metadata"),
    [
        ("é" * 128, "e", None),  # 128 characters, 256 bytes
        ("realtime:r", "x" * 256, None),
        ("realtime:r", "e", {"k": "v" * 250}),
    ],
)
def test_encode_kind4_refuses_fields_over_255_bytes(
    topic: str, event: str, metadata: dict[str, Any] | None
) -> None:
    with pytest.raises(ValueError, match="at most 255 bytes"):
        encode_user_broadcast(topic, event, b"{}", PayloadEncoding.JSON, metadata)


def test_encode_kind4_accepts_exactly_255_bytes() -> None:
    topic = "realtime:" + "a" * 246
    frame = encode_user_broadcast(topic, "e", b"{}", PayloadEncoding.JSON)
    assert frame[1] == 255
    assert js_decode_user_broadcast(frame)["topic"] == topic


# -- properties --------------------------------------------------------------------------------

# JSON values orjson round-trips exactly: 64-bit integers, finite floats, text without surrogates.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
refs = st.none() | st.text(max_size=12)
messages = st.builds(
    Message,
    topic=st.text(),
    event=st.text(),
    payload=json_values,
    ref=refs,
    join_ref=refs,
)


@given(messages)
def test_v2_text_round_trip(message: Message) -> None:
    assert decode_text(V2, encode_message(V2, message)) == message


@given(messages)
def test_v1_text_round_trip_drops_join_ref(message: Message) -> None:
    frame = encode_message(V1, message)
    raw = orjson.loads(frame)
    assert list(raw) == ["topic", "event", "payload", "ref"]
    assert raw["ref"] == message.ref  # present, and null when there is none
    assert decode_text(V1, frame) == dataclasses.replace(message, join_ref=None)


# Header text: at most 60 characters is at most 240 UTF-8 bytes, inside the 255-byte limit.
header_text = st.text(max_size=60)
binary_refs = st.none() | st.text(min_size=1, max_size=60)  # '' and null are the same on the wire
metadata_values = st.dictionaries(
    st.text(max_size=5),
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    max_size=3,
)


@st.composite
def payload_and_encoding(draw: st.DrawFn) -> tuple[bytes, PayloadEncoding]:
    if draw(st.booleans()):
        return orjson.dumps(draw(json_values)), PayloadEncoding.JSON
    return draw(st.binary()), PayloadEncoding.BINARY


@given(
    join_ref=binary_refs,
    ref=binary_refs,
    topic=header_text,
    event=header_text,
    metadata=metadata_values,
    body=payload_and_encoding(),
)
def test_decode_binary_inverts_the_js_kind3_encoder(
    join_ref: str | None,
    ref: str | None,
    topic: str,
    event: str,
    metadata: dict[str, Any],
    body: tuple[bytes, PayloadEncoding],
) -> None:
    payload, encoding = body
    data = js_encode_user_broadcast_push(
        join_ref=join_ref,
        ref=ref,
        topic=topic,
        event=event,
        metadata=metadata,
        encoding=encoding,
        payload=payload,
    )
    assert decode_binary(V2, data) == UserBroadcastPush(
        join_ref=join_ref,
        ref=ref,
        topic=topic,
        event=event,
        metadata=metadata,
        encoding=encoding,
        payload=payload,
    )


@given(topic=header_text, event=header_text, metadata=metadata_values, body=payload_and_encoding())
def test_js_kind4_decoder_inverts_encode_user_broadcast(
    topic: str, event: str, metadata: dict[str, Any], body: tuple[bytes, PayloadEncoding]
) -> None:
    payload, encoding = body
    decoded = js_decode_user_broadcast(
        encode_user_broadcast(topic, event, payload, encoding, metadata)
    )
    assert decoded["topic"] == topic
    assert decoded["event"] == "broadcast"
    assert decoded["payload"]["event"] == event
    assert decoded["payload"].get("meta", {}) == metadata
    assert ("meta" in decoded["payload"]) == bool(metadata)
    assert decoded["encoding"] == encoding
    assert decoded["raw"] == payload
    if encoding is PayloadEncoding.JSON:
        assert decoded["payload"]["payload"] == orjson.loads(payload)
