"""The sans-I/O session: bytes in, typed requests out; typed calls in, exact frames out.

Incoming frames are the ones captured from realtime-js 2.119.0 (vsn 2.0.0) and realtime-py 2.34.1
(vsn 1.0.0) in the reference notes §2.1 and §9; outgoing frames are compared byte for byte with
what those clients were seen to accept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from wedsync_realtime.protocol.frames import PayloadEncoding, ProtocolVersion
from wedsync_realtime.protocol.requests import (
    AccessTokenRequest,
    BadRequest,
    BroadcastConfig,
    BroadcastRequest,
    HeartbeatRequest,
    JoinConfig,
    JoinRequest,
    LeaveRequest,
    PostgresChangeBinding,
    PresenceAction,
    PresenceConfig,
    PresenceRequest,
    ReplayConfig,
)
from wedsync_realtime.protocol.session import Session

V1, V2 = ProtocolVersion.V1, ProtocolVersion.V2
TOPIC = "realtime:room1"

JS_JOIN = (
    '["6","6","realtime:room1","phx_join",{"config":{"broadcast":{"self":true,"ack":true},'
    '"presence":{"key":"user-js","enabled":true},"postgres_changes":[{"event":"INSERT",'
    '"schema":"public","table":"todos","filter":"id=eq.1"}],"private":false}}]'
)
PY_JOIN = (
    '{"event":"phx_join","payload":{"config":{"broadcast":{"self":true,"ack":true},'
    '"presence":{"key":"user-1","enabled":true},"private":false,"postgres_changes":[{"event":'
    '"INSERT","schema":"public","table":"todos","filter":"id=eq.1"}]},"access_token":"TEST_JWT"},'
    '"topic":"realtime:room1","ref":"1","join_ref":"1"}'
)
TODOS_BINDING = {"event": "INSERT", "schema": "public", "table": "todos", "filter": "id=eq.1"}


def frame(
    version: ProtocolVersion,
    topic: str,
    event: str,
    payload: Any,
    ref: str | None = None,
    join_ref: str | None = None,
) -> bytes:
    """A client frame as the official client of `version` writes it."""
    if version is V1:
        return orjson.dumps(
            {"event": event, "payload": payload, "topic": topic, "ref": ref, "join_ref": join_ref}
        )
    return orjson.dumps([join_ref, ref, topic, event, payload])


def joined_session(version: ProtocolVersion, topic: str = TOPIC, join_ref: str = "1") -> Session:
    session = Session(version)
    session.joined(topic, join_ref)
    return session


def join(session: Session, payload: Any, topic: str = TOPIC, ref: str = "1") -> Any:
    return session.receive_text(frame(session.version, topic, "phx_join", payload, ref, ref))


versions = pytest.mark.parametrize("version", list(ProtocolVersion))


# -- malformed frames --------------------------------------------------------------------------


@versions
@pytest.mark.parametrize("data", ["{", "[]", '"hello"', '{"topic":"t"}'])
def test_malformed_text_frame_is_a_bad_request(version: ProtocolVersion, data: str) -> None:
    request = Session(version).receive_text(data)
    assert isinstance(request, BadRequest)
    assert request.topic == "phoenix"
    assert request.reason.startswith("MalformedWebSocketMessage: ")


def test_binary_frame_on_v1_is_a_bad_request() -> None:
    request = Session(V1).receive_bytes(bytes([3, 0, 0, 3, 1, 0, 1]) + b"r:xe{}")
    assert isinstance(request, BadRequest)
    assert request.reason == "MalformedWebSocketMessage: binary frames need vsn=2.0.0"


def test_malformed_binary_frame_is_a_bad_request() -> None:
    request = joined_session(V2).receive_bytes(b"\x04")
    assert isinstance(request, BadRequest)
    assert request.reason == "MalformedWebSocketMessage: unsupported binary frame kind 4"


# -- heartbeat ---------------------------------------------------------------------------------


def test_python_heartbeat_with_null_ref() -> None:
    data = '{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null,"join_ref":null}'
    assert Session(V1).receive_text(data) == HeartbeatRequest(None)


def test_js_heartbeat() -> None:
    assert Session(V2).receive_text('[null,"7","phoenix","heartbeat",{}]') == HeartbeatRequest("7")


@versions
def test_other_event_on_phoenix_topic_is_unknown(version: ProtocolVersion) -> None:
    request = Session(version).receive_text(frame(version, "phoenix", "phx_join", {}, "3"))
    assert request == BadRequest("phoenix", "3", None, "UnknownEvent: 'phx_join' on topic phoenix")


# -- join parsing ------------------------------------------------------------------------------


def test_join_captured_from_realtime_js() -> None:
    request = Session(V2).receive_text(JS_JOIN)
    assert request == JoinRequest(
        topic=TOPIC,
        ref="6",
        join_ref="6",
        config=JoinConfig(
            broadcast=BroadcastConfig(self_=True, ack=True),
            presence=PresenceConfig(key="user-js", enabled=True),
            postgres_changes=(PostgresChangeBinding(TODOS_BINDING),),
            private=False,
        ),
        access_token=None,  # realtime-js sends none until setAuth; the connect token applies
    )
    assert request.subtopic == "room1"


def test_join_captured_from_realtime_py() -> None:
    request = Session(V1).receive_text(PY_JOIN)
    assert request == JoinRequest(
        topic=TOPIC,
        ref="1",
        join_ref="1",
        config=JoinConfig(
            broadcast=BroadcastConfig(self_=True, ack=True),
            presence=PresenceConfig(key="user-1", enabled=True),
            postgres_changes=(PostgresChangeBinding(TODOS_BINDING),),
            private=False,
        ),
        access_token="TEST_JWT",
    )


@versions
@pytest.mark.parametrize("payload", [{}, {"config": None}, {"config": {}}])
def test_join_without_config_gets_supabase_defaults(
    version: ProtocolVersion, payload: dict[str, Any]
) -> None:
    request = join(Session(version), payload)
    assert isinstance(request, JoinRequest)
    assert request.config == JoinConfig()
    assert request.config.broadcast == BroadcastConfig(self_=False, ack=False, replay=None)
    assert request.config.presence == PresenceConfig(key="", enabled=False)
    assert request.config.postgres_changes == ()
    assert request.config.private is False
    assert request.access_token is None


def test_join_with_python_null_sections() -> None:
    # realtime-py sends `"broadcast": null` when the config has no broadcast section.
    payload = {
        "config": {"broadcast": None, "presence": None, "postgres_changes": None, "private": None},
        "access_token": "TEST_JWT",
    }
    request = join(Session(V1), payload)
    assert isinstance(request, JoinRequest)
    assert request.config == JoinConfig()


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("false", False), ("TRUE", True), (True, True)]
)
def test_join_flexible_booleans(raw: Any, expected: bool) -> None:
    payload = {
        "config": {
            "broadcast": {"self": raw, "ack": raw},
            "presence": {"enabled": raw},
            "private": raw,
        }
    }
    request = join(Session(V2), payload)
    assert isinstance(request, JoinRequest)
    config = request.config
    assert (config.broadcast.self_, config.broadcast.ack) == (expected, expected)
    assert config.presence.enabled is expected
    assert config.private is expected


def test_join_user_token_alias() -> None:
    request = join(Session(V1), {"config": {}, "user_token": "LEGACY"})
    assert isinstance(request, JoinRequest)
    assert request.access_token == "LEGACY"


def test_join_access_token_wins_over_user_token() -> None:
    request = join(Session(V1), {"access_token": "NEW", "user_token": "LEGACY"})
    assert isinstance(request, JoinRequest)
    assert request.access_token == "NEW"


def test_join_keeps_extra_binding_keys_and_order() -> None:
    # Postgres-change params are taken from the raw map, so `select` passes through (§2.1), and
    # the reply echoes bindings in request order.
    bindings = [
        {"event": "*", "schema": "public", "table": "b", "select": ["id"]},
        {"event": "DELETE", "schema": "public", "table": "a"},
    ]
    request = join(Session(V2), {"config": {"postgres_changes": bindings}})
    assert isinstance(request, JoinRequest)
    assert [b.raw for b in request.config.postgres_changes] == bindings


def test_join_replay_config() -> None:
    payload = {"config": {"broadcast": {"replay": {"since": 1700000000000, "limit": 10}}}}
    request = join(Session(V2), payload)
    assert isinstance(request, JoinRequest)
    assert request.config.broadcast.replay == ReplayConfig(since=1700000000000, limit=10)


def test_join_numeric_presence_key_becomes_text() -> None:
    request = join(Session(V2), {"config": {"presence": {"key": 42}}})
    assert isinstance(request, JoinRequest)
    assert request.config.presence.key == "42"


def test_v1_join_without_join_ref_uses_ref() -> None:
    data = '{"topic":"realtime:room1","event":"phx_join","payload":{},"ref":"4"}'
    request = Session(V1).receive_text(data)
    assert isinstance(request, JoinRequest)
    assert request.join_ref == "4"


# -- join errors -------------------------------------------------------------------------------


@versions
@pytest.mark.parametrize("topic", ["room1", "realtime", "private:room1", "Realtime:room1", ""])
def test_join_outside_realtime_prefix_is_unmatched(version: ProtocolVersion, topic: str) -> None:
    request = join(Session(version), {}, topic=topic, ref="2")
    assert request == BadRequest(topic, "2", "2", "unmatched topic")


@versions
def test_join_with_empty_subtopic(version: ProtocolVersion) -> None:
    request = join(Session(version), {}, topic="realtime:", ref="2")
    assert request == BadRequest(
        "realtime:", "2", "2", "TopicNameRequired: You must provide a topic name"
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "join payload"),
        ("config", "join payload"),
        ({"config": []}, "`config`"),
        ({"config": "x"}, "`config`"),
        ({"config": {"broadcast": True}}, "`config.broadcast`"),
        ({"config": {"presence": []}}, "`config.presence`"),
        ({"config": {"broadcast": {"self": "yes"}}}, "`config.broadcast.self`"),
        ({"config": {"broadcast": {"ack": 1}}}, "`config.broadcast.ack`"),
        ({"config": {"presence": {"enabled": "on"}}}, "`config.presence.enabled`"),
        ({"config": {"presence": {"key": ["k"]}}}, "`config.presence.key`"),
        ({"config": {"private": "maybe"}}, "`config.private`"),
        ({"config": {"postgres_changes": {"event": "*"}}}, "`config.postgres_changes`"),
        ({"config": {"postgres_changes": ["*"]}}, "`config.postgres_changes`"),
        ({"config": {"broadcast": {"replay": 5}}}, "`config.broadcast.replay`"),
        ({"config": {"broadcast": {"replay": {}}}}, "`config.broadcast.replay.since`"),
        (
            {"config": {"broadcast": {"replay": {"since": "yesterday"}}}},
            "`config.broadcast.replay.since`",
        ),
        (
            {"config": {"broadcast": {"replay": {"since": 1, "limit": 0}}}},
            "`config.broadcast.replay.limit`",
        ),
        (
            {"config": {"broadcast": {"replay": {"since": 1, "limit": True}}}},
            "`config.broadcast.replay.limit`",
        ),
        ({"access_token": 123}, "`access_token`"),
        ({"user_token": ["t"]}, "`access_token`"),
    ],
)
def test_join_with_bad_config_names_the_field(payload: Any, field: str) -> None:
    request = join(Session(V2), payload, ref="9")
    assert isinstance(request, BadRequest)
    assert (request.topic, request.ref, request.join_ref) == (TOPIC, "9", "9")
    assert request.reason.startswith("InvalidJoinPayload: ")
    assert field in request.reason


# -- requests before a join --------------------------------------------------------------------


@versions
@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("broadcast", {"type": "broadcast", "event": "msg", "payload": {}}),
        ("presence", {"event": "track", "payload": {}}),
        ("phx_leave", {}),
        ("access_token", {"access_token": "T"}),
        ("made_up", {}),
    ],
)
def test_channel_requests_before_join_are_unmatched(
    version: ProtocolVersion, event: str, payload: Any
) -> None:
    request = Session(version).receive_text(frame(version, TOPIC, event, payload, "2", "1"))
    assert request == BadRequest(TOPIC, "2", "1", "unmatched topic")


def test_binary_broadcast_before_join_is_unmatched() -> None:
    data = bytes([3, 1, 1, 14, 3, 0, 1]) + b"67realtime:room1msg{}"
    assert Session(V2).receive_bytes(data) == BadRequest(TOPIC, "7", "6", "unmatched topic")


@versions
def test_requests_after_closed_are_unmatched(version: ProtocolVersion) -> None:
    session = joined_session(version)
    session.closed(TOPIC)
    request = session.receive_text(frame(version, TOPIC, "phx_leave", {}, "2", "1"))
    assert request == BadRequest(TOPIC, "2", "1", "unmatched topic")


def test_join_on_one_topic_does_not_open_another() -> None:
    session = joined_session(V2, "realtime:a")
    request = session.receive_text(frame(V2, "realtime:b", "phx_leave", {}, "2", "1"))
    assert request == BadRequest("realtime:b", "2", "1", "unmatched topic")


# -- requests on a joined channel --------------------------------------------------------------


@versions
def test_leave(version: ProtocolVersion) -> None:
    request = joined_session(version).receive_text(frame(version, TOPIC, "phx_leave", {}, "5", "1"))
    assert request == LeaveRequest(TOPIC, "5", "1")


@versions
def test_unknown_event_on_joined_channel(version: ProtocolVersion) -> None:
    request = joined_session(version).receive_text(frame(version, TOPIC, "shout", {}, "5", "1"))
    assert request == BadRequest(TOPIC, "5", "1", "UnknownEvent: 'shout'")


def test_access_token_captured_frames() -> None:
    js = '["6","9","realtime:room1","access_token",{"access_token":"NEW_TOKEN"}]'
    py = (
        '{"event":"access_token","payload":{"access_token":"NEW_TOKEN"},'
        '"topic":"realtime:room1","ref":"4","join_ref":"1"}'
    )
    expected = AccessTokenRequest(TOPIC, "NEW_TOKEN")
    assert joined_session(V2, join_ref="6").receive_text(js) == expected
    assert joined_session(V1).receive_text(py) == expected


@pytest.mark.parametrize("payload", [{}, {"access_token": None}, {"access_token": 5}, []])
def test_access_token_without_a_string_token(payload: Any) -> None:
    data = frame(V2, TOPIC, "access_token", payload, "3", "1")
    assert joined_session(V2).receive_text(data) == AccessTokenRequest(TOPIC, None)


def test_json_broadcast_captured_from_realtime_py() -> None:
    data = (
        '{"event":"broadcast","payload":{"type":"broadcast","event":"msg","payload":'
        '{"hello":"world"}},"topic":"realtime:room1","ref":"2","join_ref":"1"}'
    )
    request = joined_session(V1).receive_text(data)
    assert isinstance(request, BroadcastRequest)
    # `size` feeds the payload limit: it must count at least the payload's bytes.
    assert request.size >= len(b'{"hello":"world"}')
    assert dataclasses.replace(request, size=0) == BroadcastRequest(
        topic=TOPIC, ref="2", join_ref="1", event="msg", payload={"hello": "world"}
    )
    assert request.raw is None
    assert request.encoding is PayloadEncoding.JSON


def test_json_broadcast_keeps_meta_and_defaults_payload() -> None:
    data = frame(V2, TOPIC, "broadcast", {"event": "e", "meta": {"id": "x"}}, "2", "1")
    request = joined_session(V2).receive_text(data)
    assert isinstance(request, BroadcastRequest)
    assert (request.payload, request.meta) == ({}, {"id": "x"})


@versions
@pytest.mark.parametrize("inner", [[1, 2], "text", 3, True])
def test_broadcast_inner_payload_must_be_an_object(version: ProtocolVersion, inner: Any) -> None:
    # realtime-py cannot parse a broadcast whose payload is not an object (reference notes §2.6).
    body = {"type": "broadcast", "event": "msg", "payload": inner}
    request = joined_session(version).receive_text(frame(version, TOPIC, "broadcast", body, "2"))
    assert request == BadRequest(
        TOPIC, "2", None, "InvalidMessage: broadcast `payload` must be an object"
    )


@pytest.mark.parametrize("body", [{"type": "broadcast", "payload": {}}, {"event": 5}, [], None])
def test_broadcast_needs_a_string_event(body: Any) -> None:
    request = joined_session(V2).receive_text(frame(V2, TOPIC, "broadcast", body, "2", "1"))
    assert request == BadRequest(
        TOPIC, "2", "1", "InvalidMessage: broadcast needs a string `event`"
    )


def test_binary_broadcast_captured_from_realtime_js() -> None:
    data = bytes([3, 1, 1, 14, 3, 0, 1]) + b"67realtime:room1msg" + b'{"hello":"world"}'
    request = joined_session(V2, join_ref="6").receive_bytes(data)
    assert request == BroadcastRequest(
        topic=TOPIC,
        ref="7",
        join_ref="6",
        event="msg",
        payload=None,
        raw=b'{"hello":"world"}',
        encoding=PayloadEncoding.JSON,
        meta={},
        size=17,
    )


def test_binary_broadcast_with_binary_payload_and_metadata() -> None:
    data = (
        bytes([3, 1, 1, 14, 2, 16, 0]) + b"67realtime:room1ev" + b'{"persist":true}' + b"\x00\x01"
    )
    request = joined_session(V2, join_ref="6").receive_bytes(data)
    assert isinstance(request, BroadcastRequest)
    assert (request.raw, request.encoding, request.meta, request.size) == (
        b"\x00\x01",
        PayloadEncoding.BINARY,
        {"persist": True},
        2,
    )


@pytest.mark.parametrize(
    ("payload", "action", "meta"),
    [
        # realtime-js
        ({"type": "presence", "event": "track", "payload": {"online_at": "now"}}, "track", None),
        ({"type": "presence", "event": "untrack"}, "untrack", {}),
        # realtime-py (no `type`)
        ({"event": "track", "payload": {"online_at": "now"}}, "track", None),
        # the server lower-cases the event (presence_handler.ex)
        ({"event": "TRACK", "payload": {"online_at": "now"}}, "track", None),
        ({"event": "track"}, "track", {}),
    ],
)
def test_presence_requests(payload: Any, action: str, meta: dict[str, Any] | None) -> None:
    data = frame(V2, TOPIC, "presence", payload, "8", "6")
    request = joined_session(V2, join_ref="6").receive_text(data)
    expected_meta = payload.get("payload", {}) if meta is None else meta
    assert isinstance(request, PresenceRequest)
    assert request.size >= len(orjson.dumps(expected_meta))
    assert dataclasses.replace(request, size=0) == PresenceRequest(
        TOPIC, "8", "6", PresenceAction(action), expected_meta
    )


@versions
@pytest.mark.parametrize("meta", [[1], "online", 3, None])
def test_presence_track_payload_must_be_a_map(version: ProtocolVersion, meta: Any) -> None:
    body = {"event": "track", "payload": meta}
    request = joined_session(version).receive_text(frame(version, TOPIC, "presence", body, "3"))
    assert request == BadRequest(
        TOPIC, "3", None, "InvalidMessage: Presence track payload must be a map"
    )


@pytest.mark.parametrize("payload", [{"event": "wave"}, {"payload": {}}, {"event": 1}, [], None])
def test_presence_event_must_be_track_or_untrack(payload: Any) -> None:
    request = joined_session(V2).receive_text(frame(V2, TOPIC, "presence", payload, "3", "1"))
    assert request == BadRequest(
        TOPIC, "3", "1", "InvalidMessage: presence event must be track or untrack"
    )


# -- state -------------------------------------------------------------------------------------


def test_first_join_replaces_nothing() -> None:
    request = join(Session(V2), {}, ref="1")
    assert isinstance(request, JoinRequest)
    assert request.replaces_join_ref is None


def test_rejoin_of_a_joined_topic_names_the_old_join_ref() -> None:
    session = Session(V2)
    first = join(session, {}, ref="1")
    assert isinstance(first, JoinRequest)
    session.joined(TOPIC, first.join_ref)
    second = join(session, {}, ref="3")
    assert isinstance(second, JoinRequest)
    assert (second.join_ref, second.replaces_join_ref) == ("3", "1")
    # A join on another topic replaces nothing.
    other = join(session, {}, topic="realtime:other", ref="4")
    assert isinstance(other, JoinRequest)
    assert other.replaces_join_ref is None


def test_rejoin_after_close_replaces_nothing() -> None:
    session = joined_session(V2, join_ref="1")
    session.closed(TOPIC)
    request = join(session, {}, ref="3")
    assert isinstance(request, JoinRequest)
    assert request.replaces_join_ref is None


def test_session_tracks_topics() -> None:
    session = Session(V2)
    session.joined("realtime:a", "1")
    session.joined("realtime:b", "2")
    assert session.topics == ["realtime:a", "realtime:b"]
    assert (session.is_joined("realtime:a"), session.join_ref("realtime:b")) == (True, "2")
    session.closed("realtime:a")
    session.closed("realtime:a")  # closing twice is harmless
    assert session.topics == ["realtime:b"]
    assert not session.is_joined("realtime:a")
    assert session.join_ref("realtime:a") is None


# -- output frames -----------------------------------------------------------------------------


def test_reply_frames() -> None:
    response = {"postgres_changes": []}
    assert Session(V1).reply(TOPIC, "1", "1", "ok", response) == (
        '{"topic":"realtime:room1","event":"phx_reply",'
        '"payload":{"status":"ok","response":{"postgres_changes":[]}},"ref":"1"}'
    )
    assert Session(V2).reply(TOPIC, "6", "6", "ok", response) == (
        '["6","6","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]'
    )


def test_heartbeat_reply_frames_match_captured() -> None:
    ok: dict[str, Any] = {}
    assert Session(V1).reply("phoenix", None, None, "ok", ok) == (
        '{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":null}'
    )
    assert Session(V2).reply("phoenix", "7", None, "ok", ok) == (
        '[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]'
    )


def test_error_reply_frames() -> None:
    assert Session(V1).error_reply(TOPIC, "3", "1", "unmatched topic") == (
        '{"topic":"realtime:room1","event":"phx_reply",'
        '"payload":{"status":"error","response":{"reason":"unmatched topic"}},"ref":"3"}'
    )
    assert Session(V2).error_reply(TOPIC, "3", "1", "unmatched topic") == (
        '["1","3","realtime:room1","phx_reply",'
        '{"status":"error","response":{"reason":"unmatched topic"}}]'
    )


def test_push_frames_carry_the_current_join_ref_in_v2() -> None:
    session = joined_session(V2, join_ref="6")
    assert (
        session.push(TOPIC, "presence_state", {})
        == '["6",null,"realtime:room1","presence_state",{}]'
    )
    # A rejoin moves the join_ref: pushes follow it (realtime-js drops stale join_refs).
    session.joined(TOPIC, "9")
    assert (
        session.push(TOPIC, "presence_state", {})
        == '["9",null,"realtime:room1","presence_state",{}]'
    )
    session.closed(TOPIC)
    assert session.push(TOPIC, "presence_state", {}) == (
        '[null,null,"realtime:room1","presence_state",{}]'
    )


def test_push_frames_in_v1_have_a_null_ref_and_no_join_ref() -> None:
    session = joined_session(V1, join_ref="1")
    assert session.push(TOPIC, "presence_state", {}) == (
        '{"topic":"realtime:room1","event":"presence_state","payload":{},"ref":null}'
    )


def test_push_with_a_ref() -> None:
    session = joined_session(V2, join_ref="6")
    assert session.push(TOPIC, "x", {}, ref="4") == '["6","4","realtime:room1","x",{}]'


def test_system_frames_match_captured() -> None:
    expected_v1 = (
        '{"topic":"realtime:room1","event":"system","payload":{"extension":"postgres_changes",'
        '"status":"ok","message":"Subscribed to PostgreSQL","channel":"room1"},"ref":null}'
    )
    session = joined_session(V1)
    assert (
        session.system(TOPIC, "ok", "Subscribed to PostgreSQL", extension="postgres_changes")
        == expected_v1
    )
    v2 = joined_session(V2, join_ref="6")
    assert v2.system(TOPIC, "error", "Token has expired 3 seconds ago") == (
        '["6",null,"realtime:room1","system",{"extension":"system","status":"error",'
        '"message":"Token has expired 3 seconds ago","channel":"room1"}]'
    )


def test_close_push_frames() -> None:
    # Phoenix: phx_close with ref = join_ref, for the join_ref of the channel being closed.
    assert joined_session(V1).close_push(TOPIC, "1") == (
        '{"topic":"realtime:room1","event":"phx_close","payload":{},"ref":"1"}'
    )
    session = joined_session(V2, join_ref="9")
    assert session.close_push(TOPIC, "6") == '["6","6","realtime:room1","phx_close",{}]'
