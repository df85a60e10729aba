"""`GET /api/realtime/metrics` over a real server: the figures match what the test did
(connections, channels, broadcasts, presences), a slow consumer shows in the error rate and the
connection uptime, and only the service role and admins may read them."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.support.phoenix import PhoenixClient
from tests.support.wedsync_api import headers, http

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

CHANNEL_A, CHANNEL_B = "metrics-a", "metrics-b"
TOPIC_A = f"realtime:{CHANNEL_A}"


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(demo=True)


async def metrics(server: RunningServer, query: str = "") -> dict[str, Any]:
    async with http(server) as api:
        response = await api.get(
            f"/api/realtime/metrics{query}", headers=headers(server, "ops", role="service_role")
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def present(
    server: RunningServer, user: str, channel: str, meta: dict[str, Any]
) -> PhoenixClient:
    """`user` joined to `channel` with presence, tracking `meta` (the reply awaited)."""
    client = await server.client(user)
    join_ref, reply = await client.join(channel, {"presence": {"key": user, "enabled": True}})
    assert reply.payload["status"] == "ok", reply.payload
    ref = client.next_ref()
    body = {"type": "presence", "event": "track", "payload": meta}
    await client.send(f"realtime:{channel}", "presence", body, ref, join_ref)
    tracked = await client.reply_to(ref)
    assert tracked.payload["status"] == "ok", tracked.payload
    return client


async def _until(condition: Callable[[], bool]) -> None:
    """Poll server-side state that has no event to await; callers bound it with a timeout."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_a_fresh_node_has_nothing_to_report(server: RunningServer) -> None:
    assert await metrics(server) == {
        "connection_stats": {
            "active_connections": 0,
            "total_channels": 0,
            "messages_per_minute": 0,
            "connection_uptime_percent": 100.0,
        },
        "channel_performance": [],
        "user_activity": {
            "online_users": 0,
            "idle_users": 0,
            "typing_users": 0,
            "peak_concurrent_users": 0,
        },
    }


async def test_figures_match_connections_channels_broadcasts_and_presences(
    server: RunningServer,
) -> None:
    alice = await server.client("alice")
    for channel in (CHANNEL_A, CHANNEL_B):
        _, reply = await alice.join(channel)
        assert reply.payload["status"] == "ok", reply.payload
    alice_again = await server.client("alice")  # a second tab: a connection, not a user
    await present(server, "bob", CHANNEL_A, {"status": "online", "is_typing": True})
    await present(server, "carol", CHANNEL_B, {"status": "idle", "is_typing": False})
    # Appearing offline: counted as a connection and a subscriber, never as online or typing.
    await present(
        server, "dave", CHANNEL_B, {"status": "online", "appear_offline": True, "is_typing": True}
    )

    sent = [(CHANNEL_A, 0), (CHANNEL_B, 1), (CHANNEL_A, 2), (CHANNEL_B, 3), (CHANNEL_A, 4)]
    async with http(server) as api:
        for channel, n in sent:
            response = await api.post(
                "/api/broadcast",
                json={"messages": [{"topic": channel, "event": "m", "payload": {"n": n}}]},
                headers=headers(server, "ops", role="service_role"),
            )
            assert response.status_code == 202, response.text
    received = []
    while len(received) < len(sent):
        frame = await alice.recv_until(lambda f: f.event == "broadcast")
        received.append((frame.topic.removeprefix("realtime:"), frame.payload["payload"]["n"]))
    assert received == sent

    body = await metrics(server)
    assert body["connection_stats"] == {
        "active_connections": 5,
        "total_channels": 2,
        "messages_per_minute": 5,
        "connection_uptime_percent": 100.0,
    }
    performance = body["channel_performance"]
    assert all(0 <= p.pop("average_delivery_ms") < 1_000 for p in performance)
    assert performance == [
        {"channel_name": CHANNEL_A, "subscriber_count": 2, "messages_sent": 3, "error_rate": 0.0},
        {"channel_name": CHANNEL_B, "subscriber_count": 3, "messages_sent": 2, "error_rate": 0.0},
    ]
    assert body["user_activity"] == {
        "online_users": 1,
        "idle_users": 1,
        "typing_users": 1,
        "peak_concurrent_users": 4,
    }
    top = await metrics(server, "?limit=1")
    assert [p["channel_name"] for p in top["channel_performance"]] == [CHANNEL_A]

    # A tab closing normally: one connection fewer, still 100 % uptime, the peak stays.
    await alice_again.close()
    await asyncio.wait_for(_until(lambda: len(server.node.connections) == 4), 5)
    after = await metrics(server)
    assert after["connection_stats"]["active_connections"] == 4
    assert after["connection_stats"]["connection_uptime_percent"] == 100.0
    assert after["user_activity"]["peak_concurrent_users"] == 4


async def test_only_the_service_role_and_admins_may_read_them(server: RunningServer) -> None:
    async with http(server) as api:
        anonymous = await api.get("/api/realtime/metrics")
        assert anonymous.status_code == 401
        couple = await api.get("/api/realtime/metrics", headers=headers(server, "emma"))
        assert couple.status_code == 403
        assert (
            couple.json()["message"] == "Only the service role or an admin may call this endpoint"
        )
        stranger = await api.get("/api/realtime/metrics", headers=headers(server, "nobody"))
        assert stranger.status_code == 403
        admin = await api.get("/api/realtime/metrics", headers=headers(server, "admin"))
        assert admin.status_code == 200 and "connection_stats" in admin.json()
        too_many = await api.get(
            "/api/realtime/metrics?limit=501", headers=headers(server, "admin")
        )
        assert too_many.status_code == 422 and too_many.json()["field"] == "limit"
        docs = (await api.get("/openapi.json")).json()
    described = docs["paths"]["/api/realtime/metrics"]["get"]["description"]
    assert "connection_uptime_percent" in described and "average_delivery_ms" in described


async def _silent_client(port: int, token: str, channel: str) -> asyncio.StreamWriter:
    """A client that completes the WebSocket handshake, joins `channel`, then reads nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /socket/websocket?apikey={token}&vsn=1.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101")
    payload = (
        f'{{"topic":"realtime:{channel}","event":"phx_join","payload":{{}},'
        '"ref":"1","join_ref":"1"}'
    ).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    # Stop reading: the transport's buffer fills, then the kernel's, then the server's.
    writer.transport.pause_reading()
    return writer


async def test_a_slow_consumer_shows_in_error_rate_and_uptime(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(demo=True, send_queue_max=16)
    silent = await _silent_client(server.port, server.token("slow"), CHANNEL_A)
    try:
        reader = await server.client("reader")
        publisher = await server.client("svc", role="service_role")
        _, reply = await reader.join(CHANNEL_A)
        assert reply.payload["status"] == "ok"
        pub_ref, reply = await publisher.join(CHANNEL_A)
        assert reply.payload["status"] == "ok"
        await asyncio.wait_for(_until(lambda: server.node.hub.count(TOPIC_A) == 3), 5)
        blob = "x" * 16_000
        sent = 0
        dropped = False
        while not dropped:
            await publisher.broadcast(CHANNEL_A, pub_ref, "bulk", {"n": sent, "blob": blob})
            frame = await reader.recv()
            assert frame.payload["payload"]["n"] == sent  # the reader gets every one
            sent += 1
            assert sent < 5_000, "the silent client was never dropped"
            dropped = not any(
                c.principal.subject == "slow" for c in server.node.connections.values()
            )
        body = await metrics(server)
    finally:
        silent.close()
    stats = body["connection_stats"]
    assert stats["active_connections"] == 2
    # 2 open + the silent one, dropped as a slow consumer.
    assert stats["connection_uptime_percent"] == round(100 * 2 / 3, 3)
    [channel] = body["channel_performance"]
    assert channel["channel_name"] == CHANNEL_A and channel["messages_sent"] == sent
    assert channel["subscriber_count"] == 2
    # One delivery dropped; at least `sent` messages and `sent` deliveries to the reader tried.
    assert 0 < channel["error_rate"] <= 1 / (2 * sent) + 1e-6  # (rounded to 6 places)
