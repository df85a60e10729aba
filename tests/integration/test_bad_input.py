"""Bad input gets a clear error and a log line, and no other connection notices.

Each test keeps a bystander joined to another channel and checks, after the bad input, that the
next thing the bystander receives is an ordinary broadcast.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import RunningServer
from tests.support.phoenix import PhoenixClient

pytestmark = pytest.mark.integration


class Bystander:
    def __init__(
        self, client: PhoenixClient, join_ref: str, sender: PhoenixClient, sender_ref: str
    ) -> None:
        self.client, self.join_ref = client, join_ref
        self.sender, self.sender_ref = sender, sender_ref

    async def assert_unaffected(self) -> None:
        await self.sender.broadcast("lobby", self.sender_ref, "still-here", {"ok": True})
        frame = await self.client.recv()
        assert (frame.event, frame.payload["event"]) == ("broadcast", "still-here")


@pytest.fixture
async def bystander(server: RunningServer) -> AsyncIterator[Bystander]:
    watcher = await server.client("watcher")
    sender = await server.client("sender", vsn="2.0.0")
    join_ref, _ = await watcher.join("lobby")
    sender_ref, _ = await sender.join("lobby")
    yield Bystander(watcher, join_ref, sender, sender_ref)
    await watcher.close()
    await sender.close()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


@pytest.mark.parametrize(
    ("vsn", "data", "reason"),
    [
        ("1.0.0", "not json", "MalformedWebSocketMessage: malformed JSON"),
        ("1.0.0", '["a","b","c","d",{}]', "MalformedWebSocketMessage: a 1.0.0 frame must be"),
        ("1.0.0", '{"topic":"realtime:x","event":"phx_join"}', "missing keys: payload, ref"),
        ("2.0.0", '{"topic":"realtime:x"}', "MalformedWebSocketMessage: a 2.0.0 text frame"),
        ("2.0.0", "[1,2,3]", "5-element JSON array"),
        ("2.0.0", '[null,"1",7,"phx_join",{}]', "`topic` and `event` must be strings"),
    ],
)
async def test_malformed_frames_get_an_error_reply_and_the_socket_stays_open(
    server: RunningServer,
    bystander: Bystander,
    caplog: pytest.LogCaptureFixture,
    vsn: str,
    data: str,
    reason: str,
) -> None:
    client = await server.client("u1", vsn=vsn)
    await client.send_raw(data)
    reply = await client.recv()
    assert (reply.topic, reply.event, reply.payload["status"]) == ("phoenix", "phx_reply", "error")
    assert reason in reply.payload["response"]["reason"]
    assert logged(caplog, reason)
    # The socket still works.
    await client.send("phoenix", "heartbeat", {}, "hb")
    assert (await client.reply_to("hb")).payload["status"] == "ok"
    await bystander.assert_unaffected()
    await client.close()


async def test_unknown_event_on_a_joined_channel(
    server: RunningServer, bystander: Bystander, caplog: pytest.LogCaptureFixture
) -> None:
    client = await server.client("u1")
    join_ref, _ = await client.join("room")
    await client.send("realtime:room", "dance", {}, "9", join_ref)
    reply = await client.reply_to("9")
    assert reply.payload == {"status": "error", "response": {"reason": "UnknownEvent: 'dance'"}}
    assert logged(caplog, "UnknownEvent")
    await bystander.assert_unaffected()


async def test_unknown_topic_and_broadcast_before_join_are_unmatched(
    server: RunningServer, bystander: Bystander
) -> None:
    client = await server.client("u1")
    await client.send("rooms:lobby", "phx_join", {}, "1", "1")
    assert (await client.reply_to("1")).payload["response"] == {"reason": "unmatched topic"}
    await client.send(
        "realtime:never-joined",
        "broadcast",
        {"type": "broadcast", "event": "e", "payload": {}},
        "2",
        None,
    )
    assert (await client.reply_to("2")).payload["response"] == {"reason": "unmatched topic"}
    await client.send("realtime:", "phx_join", {}, "3", "3")
    reason = (await client.reply_to("3")).payload["response"]["reason"]
    assert reason == "TopicNameRequired: You must provide a topic name"
    await bystander.assert_unaffected()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"broadcast": {"self": "maybe"}}, "config.broadcast.self"),
        ({"presence": []}, "config.presence"),
        ({"postgres_changes": "all"}, "config.postgres_changes"),
        ({"private": 3}, "config.private"),
    ],
)
async def test_join_with_a_bad_config_is_refused_naming_the_field(
    server: RunningServer, bystander: Bystander, config: dict[str, object], field: str
) -> None:
    client = await server.client("u1")
    _, reply = await client.join("room", config)
    assert reply.payload["status"] == "error"
    reason = reply.payload["response"]["reason"]
    assert reason.startswith("InvalidJoinPayload: ") and field in reason
    await bystander.assert_unaffected()


async def test_oversized_frame_closes_with_1009(
    server_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    server: RunningServer = await server_factory(max_frame_bytes=100_000)  # type: ignore[operator]
    other = await server.client("other")
    other_ref, _ = await other.join("room")
    client = await server.client("u1")
    join_ref, _ = await client.join("room")
    await client.broadcast("room", join_ref, "big", {"blob": "x" * 200_000})
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # The other connection keeps working.
    await other.send(
        "realtime:room",
        "broadcast",
        {"type": "broadcast", "event": "e", "payload": {}},
        "5",
        other_ref,
    )
    await other.send("phoenix", "heartbeat", {}, "hb")
    assert (await other.reply_to("hb")).payload["status"] == "ok"


async def test_oversized_payload_is_refused_and_not_delivered(
    server: RunningServer, bystander: Bystander, caplog: pytest.LogCaptureFixture
) -> None:
    listener = await server.client("listener")
    await listener.join("room")
    client = await server.client("u1")
    join_ref, _ = await client.join("room")
    ref = await client.broadcast("room", join_ref, "big", {"blob": "x" * 70_000})
    reply = await client.reply_to(ref)
    assert reply.payload["status"] == "error"
    assert reply.payload["response"]["reason"].startswith("PayloadTooLarge: Payload of ")
    assert logged(caplog, "PayloadTooLarge")
    await client.broadcast("room", join_ref, "small", {"n": 1})
    frame = await listener.recv()
    assert frame.payload["event"] == "small"  # the big one never arrived
    await bystander.assert_unaffected()


@pytest.mark.parametrize(
    ("vsn", "data", "reason"),
    [
        ("2.0.0", b"\x07\x00\x00", "unsupported binary frame kind 7"),
        ("2.0.0", b"\x03\x01", "shorter than its header"),
        ("2.0.0", b"\x03\x01\x01\xff\x03\x00\x01ab", "overrun"),
        ("1.0.0", b"\x03\x00\x00\x00\x00\x00\x01", "binary frames need vsn=2.0.0"),
    ],
)
async def test_bad_binary_frames(
    server: RunningServer, bystander: Bystander, vsn: str, data: bytes, reason: str
) -> None:
    client = await server.client("u1", vsn=vsn)
    await client.send_raw(data)
    reply = await client.recv()
    assert reply.payload["status"] == "error"
    assert reason in reply.payload["response"]["reason"]
    await bystander.assert_unaffected()


async def _refused(server: RunningServer, query: str) -> tuple[int, dict[str, str]]:
    with pytest.raises(InvalidStatus) as refused:
        await PhoenixClient.connect(server.ws_url, None, path=f"/socket/websocket?{query}&x=")
    response = refused.value.response
    return response.status_code, orjson.loads(response.body or b"{}")


async def test_bad_tokens_are_refused_before_the_upgrade(
    server: RunningServer, bystander: Bystander, caplog: pytest.LogCaptureFixture
) -> None:
    expired = server.token("u1", ttl=-30)
    wrong_key = server.token("u1").rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    cases = {
        "": "API key is missing",
        "apikey=garbage": "The token provided is not a valid JWT",
        f"apikey={wrong_key}": "Failed to validate JWT signature",
        f"apikey={expired}": "Token has expired",
    }
    for query, error in cases.items():
        status, body = await _refused(server, query)
        assert status == 401
        assert body["error"].startswith(error)
    status, body = await _refused(server, f"apikey={server.token()}&vsn=3.0.0")
    assert status == 400 and "unsupported serializer version" in body["error"]
    assert any("refused connection" in r.getMessage() for r in caplog.records)
    # Tokens never reach the log.
    assert not any(expired in r.getMessage() for r in caplog.records)
    await bystander.assert_unaffected()


async def test_token_without_role_is_refused(server: RunningServer) -> None:
    from wedsync_realtime.auth.jwt import TokenVerifier

    token = TokenVerifier(server.settings.jwt_secret).sign({"sub": "u1", "exp": 2**40})
    status, body = await _refused(server, f"apikey={token}")
    assert (status, body["error"]) == (401, "Fields `role` and `exp` are required in JWT")


async def test_token_in_x_api_key_header(server: RunningServer) -> None:
    client = await server.connect(None, additional_headers={"x-api-key": server.token("u1")})
    _, reply = await client.join("room")
    assert reply.payload["status"] == "ok"
    await client.close()


async def test_forbidden_channels(
    server: RunningServer, bystander: Bystander, caplog: pytest.LogCaptureFixture
) -> None:
    client = await server.client("u1")
    _, reply = await client.join("user:u2")
    assert reply.payload["response"]["reason"] == (
        "Unauthorized: You do not have permissions to read from this Channel topic: user:u2"
    )
    assert any(r.name == "wedsync_realtime.audit" for r in caplog.records)
    _, reply = await client.join("user:u1")
    assert reply.payload["status"] == "ok"
    _, reply = await client.join("some-private-room", {"private": True})
    assert reply.payload["response"]["reason"].startswith("Unauthorized: ")
    # broadcast:<scope> is readable, not writable, by ordinary users.
    join_ref, reply = await client.join("broadcast:announcements", {"broadcast": {"ack": True}})
    assert reply.payload["status"] == "ok"
    ref = await client.broadcast("broadcast:announcements", join_ref, "hi", {})
    reason = (await client.reply_to(ref)).payload["response"]["reason"]
    assert reason == (
        "Unauthorized: You do not have permissions to write to this Channel topic: "
        "broadcast:announcements"
    )
    await bystander.assert_unaffected()


async def test_rest_broadcast_refuses_bad_callers_and_bodies(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        body = {"messages": [{"topic": "room", "event": "e", "payload": {}}]}
        response = await http.post("/api/broadcast", json=body)
        assert response.status_code == 401
        assert response.json() == {"message": "API key is missing"}
        user = {"Authorization": f"Bearer {server.token('u1')}"}
        assert (await http.post("/api/broadcast", json=body, headers=user)).status_code == 403
        service = {"apikey": server.token("svc", role="service_role")}
        bad = {"messages": [{"topic": "room", "event": "e", "payload": [1]}]}
        response = await http.post("/api/broadcast", json=bad, headers=service)
        assert response.status_code == 422
        assert "payload" in response.text
        big = {"messages": [{"topic": "room", "event": "e", "payload": {"b": "x" * 70_000}}]}
        response = await http.post("/api/broadcast", json=big, headers=service)
        assert response.status_code == 422
        assert "messages[0].payload" in response.json()["message"]


@pytest.mark.parametrize(
    "channel", ["supplier:s1", "couple:c1:timeline", "wedding:w1", "supplier:s1:secret"]
)
async def test_wedsync_channels_are_closed_whatever_the_private_flag(
    server: RunningServer, bystander: Bystander, channel: str
) -> None:
    # The catalog governs these names; the server's directory knows no such supplier/couple.
    client = await server.client("u1")
    _, reply = await client.join(channel, {"private": False})
    assert reply.payload["response"]["reason"] == (
        f"Unauthorized: You do not have permissions to read from this Channel topic: {channel}"
    )
    service = await server.client("svc", role="service_role")
    assert (await service.join(channel))[1].payload["status"] == "ok"
    await bystander.assert_unaffected()
