"""Tier limits, rate limits and slow consumers: going over gets the matching error and never
affects other connections."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Awaitable, Callable

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import RunningServer

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.mark.parametrize(
    ("claims", "maximum", "scope"),
    [
        ({}, 3, "for free tier"),
        ({"app_metadata": {"tier": "professional"}}, 10, "for professional tier"),
        ({"role": "service_role"}, 50, "for the service role"),
    ],
)
async def test_channels_per_connection_by_tier(
    server_factory: ServerFactory, claims: dict[str, object], maximum: int, scope: str
) -> None:
    server = await server_factory(joins_per_second=100)
    role = str(claims.pop("role", "authenticated"))
    client = await server.connect(server.token("u1", role=role, **claims))
    for i in range(maximum):
        _, reply = await client.join(f"room-{i}")
        assert reply.payload["status"] == "ok", reply.payload
    _, reply = await client.join("one-too-many")
    assert reply.payload["response"]["reason"] == (
        f"ChannelRateLimitReached: Too many channels. Maximum {maximum} channels allowed {scope}"
    )
    # Leaving one frees a slot.
    await client.send("realtime:room-0", "phx_leave", {}, "leave", None)
    await client.reply_to("leave")
    _, reply = await client.join("one-too-many")
    assert reply.payload["status"] == "ok"


async def test_channels_per_user_across_connections(server_factory: ServerFactory) -> None:
    server = await server_factory(max_channels_per_user=4)
    first, second = await server.client("u1"), await server.client("u1")
    for i in range(3):
        assert (await first.join(f"a-{i}"))[1].payload["status"] == "ok"
    assert (await second.join("b-0"))[1].payload["status"] == "ok"
    _, reply = await second.join("b-1")
    assert reply.payload["response"]["reason"] == (
        "ChannelRateLimitReached: Too many channels. Maximum 4 channels allowed per user"
    )
    other_user = await server.client("u2")
    assert (await other_user.join("b-1"))[1].payload["status"] == "ok"


async def test_message_rate_limit_per_user_and_channel(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    listener = await server.client("listener")
    await listener.join("room")
    acked = await server.client("u1")
    join_ref, _ = await acked.join("room", {"broadcast": {"ack": True}})
    for n in range(10):  # the free tier's 10 messages per minute
        ref = await acked.broadcast("room", join_ref, "m", {"n": n})
        assert (await acked.reply_to(ref)).payload["status"] == "ok"
    ref = await acked.broadcast("room", join_ref, "m", {"n": 10})
    reason = (await acked.reply_to(ref)).payload["response"]["reason"]
    assert reason == (
        "MessageRateLimitReached: Too many messages. Maximum 10 messages per minute allowed on "
        "a channel for free tier"
    )
    received = [(await listener.recv()).payload["payload"]["n"] for _ in range(10)]
    assert received == list(range(10))
    # Without ack the over-limit broadcast is dropped with a log line, and nothing is replied.
    quiet = await server.client("u2")
    quiet_ref, _ = await quiet.join("room")
    for n in range(11):
        await quiet.broadcast("room", quiet_ref, "q", {"n": n})
    await quiet.send("phoenix", "heartbeat", {}, "hb")
    assert (await quiet.recv()).ref == "hb"  # no error reply before the heartbeat's
    assert any("dropped broadcast" in r.getMessage() for r in caplog.records)
    got = [(await listener.recv()).payload["payload"]["n"] for _ in range(10)]
    assert got == list(range(10))
    # u2's ten got through after u1 had used up u1's: the budget is per user and channel.


async def test_too_many_joins_per_second_closes_the_socket(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(joins_per_second=3)
    bystander = await server.client("other")
    client = await server.client("u1", app_metadata={"tier": "paid"})
    for i in range(3):
        assert (await client.join(f"r{i}"))[1].payload["status"] == "ok"
    _, reply = await client.join("r3")
    assert reply.payload["response"]["reason"] == (
        "ClientJoinRateLimitReached: Too many joins per second"
    )
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029
    assert (await bystander.join("fine"))[1].payload["status"] == "ok"


async def test_connections_per_user(server_factory: ServerFactory) -> None:
    server = await server_factory(max_connections_per_user=2)
    clients = [await server.client("u1"), await server.client("u1")]
    with pytest.raises(InvalidStatus) as refused:
        await server.client("u1")
    assert refused.value.response.status_code == 429
    assert b"Too many connected users" in (refused.value.response.body or b"")
    assert (await server.client("u2")) is not None
    await clients[0].close()
    await asyncio.wait_for(_until(lambda: len(server.node.connections) == 2), 5)
    assert (await server.client("u1")) is not None


async def _until(condition: Callable[[], bool]) -> None:
    """Poll server-side state that has no event to await; callers bound it with a timeout."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def _silent_client(port: int, token: str) -> asyncio.StreamWriter:
    """A client that completes the WebSocket handshake, joins a channel, then reads nothing."""
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
    payload = b'{"topic":"realtime:room","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}'
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    # Stop reading: the transport's buffer fills, then the kernel's, then the server's.
    writer.transport.pause_reading()
    return writer


async def test_slow_consumer_is_dropped_and_others_keep_receiving(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await server_factory(send_queue_max=16)
    silent = await _silent_client(server.port, server.token("slow"))
    try:
        await asyncio.wait_for(_until(lambda: server.node.hub.count("realtime:room") == 1), 5)
        reader = await server.client("reader")
        await reader.join("room")
        publisher = await server.client("svc", role="service_role")
        pub_ref, _ = await publisher.join("room")
        blob = "x" * 16_000
        n = 0
        while any(c.principal.user_id == "slow" for c in server.node.connections.values()):
            await publisher.broadcast("room", pub_ref, "bulk", {"n": n, "blob": blob})
            frame = await reader.recv()
            assert frame.payload["payload"]["n"] == n  # the reader gets every one, in order
            n += 1
            assert n < 5_000, "the silent client was never dropped"
        assert any("slow consumer" in r.getMessage() for r in caplog.records)
    finally:
        silent.close()


async def test_idle_client_that_reads_nothing_is_aborted(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await server_factory(idle_timeout_s=0.5, shutdown_grace_s=0.3, send_queue_max=100_000)
    silent = await _silent_client(server.port, server.token("stuck"))
    try:
        await asyncio.wait_for(_until(lambda: server.node.hub.count("realtime:room") == 1), 5)
        publisher = await server.client("svc", role="service_role")
        pub_ref, _ = await publisher.join("room")
        stuck = next(c for c in server.node.connections.values() if c.principal.subject == "stuck")
        # Fill the socket's buffers so that the close frame cannot get out.
        blob = "x" * 60_000
        while not stuck.closing:
            await publisher.broadcast("room", pub_ref, "bulk", {"blob": blob})
            await publisher.send("phoenix", "heartbeat", {}, "hb")
            await publisher.reply_to("hb")
        await asyncio.wait_for(_until(lambda: stuck.id not in server.node.connections), 10)
        assert any("close not completed" in r.getMessage() for r in caplog.records)
    finally:
        silent.close()


async def test_tokens_without_sub_are_not_one_shared_user(server_factory: ServerFactory) -> None:
    server = await server_factory(max_connections_per_user=2)
    from wedsync_realtime.auth.jwt import TokenVerifier

    anon = TokenVerifier(server.settings.jwt_secret).sign({"role": "anon", "exp": 2**40})
    clients = [await server.connect(anon) for _ in range(4)]  # more than the per-user cap
    for client in clients:
        assert (await client.join("lobby"))[1].payload["status"] == "ok"


async def test_join_token_of_another_user_counts_against_that_user(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(max_channels_per_user=2)
    client = await server.client("connector", app_metadata={"tier": "paid"})
    emma = server.token("emma")
    for channel in ("a", "b"):
        assert (await client.join(channel, access_token=emma))[1].payload["status"] == "ok"
    _, reply = await client.join("c", access_token=emma)
    assert reply.payload["response"]["reason"].endswith("allowed per user")
    # The connect identity has not been charged for Emma's channels.
    assert (await client.join("d"))[1].payload["status"] == "ok"


async def test_presence_calls_are_rate_limited(server_factory: ServerFactory) -> None:
    server = await server_factory(presence_per_minute=1)
    client = await server.client("u1")
    ref, _ = await client.join("room", {"presence": {"key": "u1", "enabled": True}})
    for n in range(10):  # the burst
        await client.send(
            "realtime:room", "presence", {"event": "track", "payload": {"n": n}}, f"t{n}", ref
        )
        assert (await client.reply_to(f"t{n}")).payload["status"] == "ok"
    await client.send("realtime:room", "presence", {"event": "track", "payload": {}}, "x", ref)
    reason = (await client.reply_to("x")).payload["response"]["reason"]
    assert reason.startswith("ClientPresenceRateLimitReached: Too many presence messages")
