"""The client's frame codec, message parsing, socket URL and presence folding."""

from __future__ import annotations

import orjson
import pytest

from wedsync_realtime.client import endpoint_url
from wedsync_realtime.client.presence import sync_diff, sync_state
from wedsync_realtime.client.protocol import (
    FrameError,
    ProtocolVersion,
    decode,
    encode,
    parse_broadcast,
    parse_reply,
)
from wedsync_realtime.client.stream import Position
from wedsync_realtime.protocol.frames import PayloadEncoding, encode_user_broadcast

V1, V2 = ProtocolVersion.V1, ProtocolVersion.V2


def test_encode_both_versions() -> None:
    assert orjson.loads(encode(V1, "realtime:r", "phx_join", {"a": 1}, "1", "1")) == {
        "topic": "realtime:r",
        "event": "phx_join",
        "payload": {"a": 1},
        "ref": "1",
        "join_ref": "1",
    }
    assert orjson.loads(encode(V2, "phoenix", "heartbeat", {}, "7", None)) == [
        None,
        "7",
        "phoenix",
        "heartbeat",
        {},
    ]


def test_decode_text_frames_of_both_versions() -> None:
    v1 = decode(
        V1, '{"topic":"realtime:r","event":"phx_reply","payload":{"status":"ok"},"ref":"3"}'
    )
    assert (v1.topic, v1.event, v1.ref, v1.join_ref) == ("realtime:r", "phx_reply", "3", None)
    v2 = decode(V2, '["1","3","realtime:r","phx_reply",{"status":"ok","response":{}}]')
    assert (v2.join_ref, v2.ref) == ("1", "3")
    with pytest.raises(FrameError):
        decode(V2, '{"topic":"x"}')


def test_decode_binary_user_broadcasts() -> None:
    meta = {"id": "m1", "offset": 4, "epoch": "e"}
    json_frame = encode_user_broadcast("realtime:r", "ev", b'{"x":1}', PayloadEncoding.JSON, meta)
    message = decode(V2, json_frame)
    assert (message.topic, message.event) == ("realtime:r", "broadcast")
    assert message.payload == {
        "type": "broadcast",
        "event": "ev",
        "payload": {"x": 1},
        "meta": meta,
    }
    raw = decode(V2, encode_user_broadcast("realtime:r", "ev", b"\x00\x01", PayloadEncoding.BINARY))
    assert raw.payload["payload"] == b"\x00\x01" and "meta" not in raw.payload
    with pytest.raises(FrameError):
        decode(V2, bytes([3, 0, 0, 0, 0, 0, 1]))
    with pytest.raises(FrameError):
        decode(V2, json_frame[:8])


def test_parse_broadcast_reads_meta() -> None:
    broadcast = parse_broadcast(
        "realtime:room",
        {
            "type": "broadcast",
            "event": "msg",
            "payload": {"n": 1},
            "meta": {"id": "abc", "offset": 7, "epoch": "e1", "replayed": True},
        },
    )
    assert broadcast is not None
    assert (broadcast.channel, broadcast.event, broadcast.payload) == ("room", "msg", {"n": 1})
    assert (broadcast.id, broadcast.position, broadcast.replayed) == (
        "abc",
        Position(7, "e1"),
        True,
    )
    plain = parse_broadcast("realtime:room", {"type": "broadcast", "event": "msg", "payload": {}})
    assert plain is not None and (plain.id, plain.position, plain.replayed) == (None, None, False)
    assert parse_broadcast("realtime:room", {"payload": {}}) is None


def test_parse_reply() -> None:
    ok = parse_reply({"status": "ok", "response": {"id": "x"}})
    assert ok.ok and ok.response == {"id": "x"}
    error = parse_reply({"status": "error", "response": {"reason": "Unauthorized: no"}})
    assert not error.ok and error.reason == "Unauthorized: no"
    assert not parse_reply("nonsense").ok


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://h:4000", "ws://h:4000/socket/websocket?apikey=T&vsn=1.0.0"),
        ("ws://h:4000/", "ws://h:4000/socket/websocket?apikey=T&vsn=1.0.0"),
        ("http://h/socket", "ws://h/socket/websocket?apikey=T&vsn=1.0.0"),
        ("https://h/realtime/v1", "wss://h/realtime/v1/websocket?apikey=T&vsn=1.0.0"),
        (
            "ws://h/socket/websocket?apikey=OLD&log_level=info&vsn=2.0.0",
            "ws://h/socket/websocket?log_level=info&apikey=T&vsn=1.0.0",
        ),
    ],
)
def test_endpoint_url(url: str, expected: str) -> None:
    assert endpoint_url(url, "T", "1.0.0") == expected


def test_endpoint_url_refuses_other_schemes() -> None:
    with pytest.raises(ValueError):
        endpoint_url("ftp://h", "T", "1.0.0")


def test_presence_state_then_diffs() -> None:
    snapshot = {"alice": {"metas": [{"phx_ref": "1", "page": "a"}]}}
    first = sync_state({}, snapshot)
    assert first.joins == {"alice": [{"phx_ref": "1", "page": "a"}]} and first.leaves == {}
    # An update: the new meta joins (with phx_ref_prev), the old one leaves.
    update = sync_diff(
        first.state,
        {
            "joins": {"alice": {"metas": [{"phx_ref": "2", "phx_ref_prev": "1", "page": "b"}]}},
            "leaves": {"alice": {"metas": [{"phx_ref": "1", "page": "a"}]}},
        },
    )
    assert update.state == {"alice": [{"phx_ref": "2", "phx_ref_prev": "1", "page": "b"}]}
    bob = sync_diff(update.state, {"joins": {"bob": {"metas": [{"phx_ref": "3"}]}}, "leaves": {}})
    assert set(bob.state) == {"alice", "bob"}
    gone = sync_diff(bob.state, {"joins": {}, "leaves": {"alice": {"metas": [{"phx_ref": "2"}]}}})
    assert set(gone.state) == {"bob"}
    # A fresh snapshot (after a rejoin) reports who vanished and who appeared meanwhile.
    resync = sync_state(gone.state, {"carol": {"metas": [{"phx_ref": "4"}]}})
    assert resync.leaves == {"bob": [{"phx_ref": "3"}]}
    assert resync.joins == {"carol": [{"phx_ref": "4"}]}
    assert resync.state == {"carol": [{"phx_ref": "4"}]}
