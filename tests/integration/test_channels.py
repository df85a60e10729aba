"""Channel lifecycle, presence, tokens, cross-version broadcast and the REST broadcast, over real
sockets with the raw protocol client (exact frames)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningServer

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.mark.parametrize("path", ["/socket/websocket", "/realtime/v1/websocket"])
async def test_both_socket_paths_and_heartbeats(server: RunningServer, path: str) -> None:
    from tests.support.phoenix import PhoenixClient

    client = await PhoenixClient.connect(server.ws_url, server.token(), "2.0.0", path=path)
    server.clients.append(client)
    await client.send("phoenix", "heartbeat", {}, None)
    frame = await client.recv()
    assert frame.raw == [None, None, "phoenix", "phx_reply", {"status": "ok", "response": {}}]
    await client.send("phoenix", "heartbeat", {}, "7")
    assert (await client.recv()).raw == [
        None,
        "7",
        "phoenix",
        "phx_reply",
        {"status": "ok", "response": {}},
    ]


async def test_websocket_pings_are_answered(server: RunningServer) -> None:
    client = await server.client("u1")
    pong = await client.ws.ping()
    assert await asyncio.wait_for(pong, 5) >= 0  # latency in seconds


async def test_healthz(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_leave_replies_then_closes_and_stops_delivery(server: RunningServer) -> None:
    client = await server.client("u1", vsn="2.0.0")
    join_ref, _ = await client.join("room")
    await client.join("other")
    await client.send("realtime:room", "phx_leave", {}, "9", join_ref)
    reply, close = await client.recv(), await client.recv()
    assert reply.raw == [
        join_ref,
        "9",
        "realtime:room",
        "phx_reply",
        {"status": "ok", "response": {}},
    ]
    assert close.raw == [join_ref, join_ref, "realtime:room", "phx_close", {}]
    publisher = await server.client("svc", role="service_role")
    for channel in ("room", "other"):
        ref, _ = await publisher.join(channel)
        await publisher.broadcast(channel, ref, "after-leave", {"channel": channel})
    frame = await client.recv()
    assert frame.topic == "realtime:other"  # nothing for the channel it left came first


async def test_rejoining_a_topic_closes_the_old_channel(server: RunningServer) -> None:
    client = await server.client("u1", vsn="2.0.0")
    old_ref, _ = await client.join("room")
    await client.send("realtime:room", "phx_join", {"config": {}}, "5", "5")
    close, reply = await client.recv(), await client.recv()
    assert close.raw == [old_ref, old_ref, "realtime:room", "phx_close", {}]
    assert reply.raw[:4] == ["5", "5", "realtime:room", "phx_reply"]
    assert server.node.hub.count("realtime:room") == 1


async def test_presence_state_diff_update_and_leave_on_disconnect(server: RunningServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob", vsn="2.0.0")
    config = {"presence": {"key": "alice", "enabled": True}}
    a_ref, _ = await alice.join("room", config)
    assert (await alice.recv()).event == "presence_state"
    await alice.send(
        "realtime:room",
        "presence",
        {"event": "track", "payload": {"status": "online"}},
        "t1",
        a_ref,
    )
    diff = await alice.recv_until(lambda f: f.event == "presence_diff")
    alice_meta = diff.payload["joins"]["alice"]["metas"][0]
    assert alice_meta["status"] == "online" and alice_meta["phx_ref"]
    b_ref, _ = await bob.join("room", {"presence": {"key": "bob", "enabled": True}})
    state = await bob.recv()
    assert state.event == "presence_state"
    assert state.join_ref == b_ref  # pushes carry the current join_ref on 2.0.0
    assert state.payload == {"alice": {"metas": [alice_meta]}}
    # Re-tracking the same payload changes nothing; a new payload is an update.
    await alice.send(
        "realtime:room",
        "presence",
        {"event": "track", "payload": {"status": "online"}},
        "t2",
        a_ref,
    )
    await alice.reply_to("t2")
    await alice.send(
        "realtime:room",
        "presence",
        {"type": "presence", "event": "TRACK", "payload": {"status": "busy"}},
        "t3",
        a_ref,
    )
    update = await bob.recv()
    assert update.event == "presence_diff"
    assert update.payload["leaves"] == {"alice": {"metas": [alice_meta]}}
    joined = update.payload["joins"]["alice"]["metas"][0]
    assert joined["status"] == "busy" and joined["phx_ref_prev"] == alice_meta["phx_ref"]
    await alice.close()
    gone = await bob.recv()
    assert gone.event == "presence_diff"
    assert list(gone.payload["leaves"]) == ["alice"] and gone.payload["joins"] == {}


async def test_presence_key_is_generated_when_absent(server: RunningServer) -> None:
    client = await server.client("u1")
    ref, _ = await client.join("room", {"presence": {"enabled": True}})
    await client.recv()  # presence_state
    await client.send("realtime:room", "presence", {"event": "track", "payload": {}}, "t", ref)
    diff = await client.recv_until(lambda f: f.event == "presence_diff")
    (key,) = diff.payload["joins"]
    assert len(key) == 36  # a UUID, as Supabase generates


async def test_cross_version_broadcasts(server: RunningServer) -> None:
    v1 = await server.client("v1")
    v2 = await server.client("v2", vsn="2.0.0")
    await v1.join("room")
    await v2.join("room")
    # A kind 3 JSON broadcast from 2.0.0: kind 4 to 2.0.0 peers, JSON to 1.0.0 peers.
    sender = await server.client("sender", vsn="2.0.0")
    sref, _ = await sender.join("room")
    topic, event, body = b"realtime:room", b"msg", b'{"hello":"world"}'
    header = bytes([3, len(sref), 1, len(topic), len(event), 0, 1])
    await sender.send_raw(header + sref.encode() + b"9" + topic + event + body)
    got_v2, got_v1 = await v2.recv(), await v1.recv()
    meta = got_v1.raw["payload"]["meta"]
    assert meta["offset"] == 1 and set(meta) == {"id", "offset", "epoch"}
    meta_b = orjson.dumps(meta)
    assert (
        got_v2.binary
        and got_v2.raw
        == bytes([4, len(topic), len(event), len(meta_b), 1]) + topic + event + meta_b + body
    )
    assert got_v1.raw == {
        "topic": "realtime:room",
        "event": "broadcast",
        "ref": None,
        "payload": {
            "type": "broadcast",
            "event": "msg",
            "payload": {"hello": "world"},
            "meta": meta,
        },
    }
    # A binary-encoded payload cannot be expressed in 1.0.0: v1 gets the next message instead.
    raw_header = bytes([3, len(sref), 1, len(topic), len(event), 0, 0])
    await sender.send_raw(raw_header + sref.encode() + b"a" + topic + event + b"\x00\xff")
    await sender.send(
        "realtime:room",
        "broadcast",
        {"type": "broadcast", "event": "text", "payload": {"n": 1}},
        "b",
        sref,
    )
    assert (await v2.recv()).payload["payload"] == b"\x00\xff"
    assert (await v1.recv()).payload["event"] == "text"
    text_v2 = await v2.recv()
    assert text_v2.raw == [
        None,
        None,
        "realtime:room",
        "broadcast",
        {
            "type": "broadcast",
            "event": "text",
            "payload": {"n": 1},
            "meta": {"id": text_v2.raw[4]["meta"]["id"], "offset": 3, "epoch": meta["epoch"]},
        },
    ]


async def test_access_token_refresh_and_expiry(server: RunningServer) -> None:
    client = await server.client("u1", ttl=3600)
    join_ref, _ = await client.join("user:u1", {"broadcast": {"self": True}})
    # A valid refresh: no reply, the channel keeps working.
    await client.send(
        "realtime:user:u1",
        "access_token",
        {"access_token": server.token("u1", ttl=7200)},
        "r1",
        join_ref,
    )
    await client.broadcast("user:u1", join_ref, "still", {})
    assert (await client.recv()).event == "broadcast"
    # A token of another user loses the read permission on user:u1.
    await client.send(
        "realtime:user:u1", "access_token", {"access_token": server.token("u2")}, "r2", join_ref
    )
    system, close = await client.recv(), await client.recv()
    assert system.payload == {
        "extension": "system",
        "status": "error",
        "channel": "user:u1",
        "message": "You no longer have permission to read from this Channel topic: user:u1",
    }
    assert (close.event, close.ref) == ("phx_close", join_ref)


async def test_expired_refresh_token_closes_the_channel(server: RunningServer) -> None:
    client = await server.client("u1")
    join_ref, _ = await client.join("room")
    await client.send(
        "realtime:room", "access_token", {"access_token": server.token("u1", ttl=-5)}, "r", join_ref
    )
    system, close = await client.recv(), await client.recv()
    assert system.event == "system" and system.payload["status"] == "error"
    assert system.payload["message"].startswith("Token has expired ")
    assert close.event == "phx_close"
    assert not server.node.hub.count("realtime:room")


async def test_token_expiry_closes_its_channels(server: RunningServer) -> None:
    client = await server.connect(server.token("u1", ttl=1.2))
    await client.join("room")
    system = await client.recv(timeout=5)
    assert system.payload["message"].startswith("Token has expired ")
    assert (await client.recv()).event == "phx_close"
    # The socket itself stays open (channels carry their own tokens).
    await client.send("phoenix", "heartbeat", {}, "hb")
    assert (await client.reply_to("hb")).payload["status"] == "ok"


async def test_rest_broadcast_reaches_both_versions(server: RunningServer) -> None:
    v1 = await server.client("a")
    v2 = await server.client("b", vsn="2.0.0")
    await v1.join("room")
    await v2.join("room")
    service = {"Authorization": f"Bearer {server.token('svc', role='service_role')}"}
    body = {"messages": [{"topic": "room", "event": "news", "payload": {"n": 1}, "id": "m-1"}]}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        for path, message_id in (("/api/broadcast", "m-1"), ("/realtime/v1/api/broadcast", "m-2")):
            body["messages"][0]["id"] = message_id
            response = await http.post(path, json=body, headers=service)
            assert response.status_code == 202
            [published] = response.json()["messages"]
            assert published["id"] == message_id and not published["duplicate"]
            expected = {
                "type": "broadcast",
                "event": "news",
                "payload": {"n": 1},
                "meta": {
                    "id": message_id,
                    "offset": published["offset"],
                    "epoch": published["epoch"],
                },
            }
            assert (await v1.recv()).payload == expected
            assert (await v2.recv()).payload == expected


async def test_idle_socket_is_closed_with_4000(server_factory: ServerFactory) -> None:
    server = await server_factory(idle_timeout_s=0.4)
    idle = await server.client("idle")
    with pytest.raises(ConnectionClosed) as closed:
        await idle.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


async def test_shutdown_drains_channels(server_factory: ServerFactory) -> None:
    server = await server_factory()
    client = await server.client("u1", vsn="2.0.0")
    join_ref, _ = await client.join("room")
    drain = asyncio.create_task(server.node.drain())
    system, close = await client.recv(), await client.recv()
    assert system.raw == [
        join_ref,
        None,
        "realtime:room",
        "system",
        {
            "extension": "system",
            "status": "error",
            "channel": "room",
            "message": "Server is shutting down",
        },
    ]
    assert close.raw == [join_ref, join_ref, "realtime:room", "phx_close", {}]
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    await drain


async def test_join_after_the_connect_token_expired_is_refused(server: RunningServer) -> None:
    client = await server.connect(server.token("u1", ttl=1.2))
    await client.join("room")
    expired = await client.recv(timeout=5)  # the channel's expiry, awaited, not slept for
    assert expired.payload["message"].startswith("Token has expired ")
    assert (await client.recv()).event == "phx_close"
    _, reply = await client.join("another")
    assert reply.payload["status"] == "error"
    assert reply.payload["response"]["reason"].startswith("TokenExpired: Token has expired ")
