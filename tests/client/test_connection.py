"""The client against a real server: states, sends and acks, reconnects, heartbeats, tokens."""

from __future__ import annotations

import asyncio
import logging
import random
import struct

import orjson
import pytest

from tests.client.support import (
    PAID,
    WAIT,
    Recorder,
    StateLog,
    TcpProxy,
    abort_all,
    connections_of,
    fast_client,
    publish,
)
from tests.conftest import RunningServer
from wedsync_realtime.client import (
    AuthenticationError,
    ChannelState,
    ConnectionState,
    JoinError,
    RealtimeClient,
)

pytestmark = pytest.mark.integration

CONNECTING, CONNECTED = ConnectionState.CONNECTING, ConnectionState.CONNECTED
DISCONNECTED, RECONNECTING = ConnectionState.DISCONNECTED, ConnectionState.RECONNECTING


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_send_with_ack_and_receive_in_order(server: RunningServer, vsn: str) -> None:
    client = fast_client(server.ws_url, server.token("u1", **PAID), vsn=vsn)
    states = StateLog(client)
    async with client:
        assert client.state is CONNECTED
        async with client.channel("room", self_=True) as channel:
            assert channel.state is ChannelState.JOINED
            recorder = Recorder().attach(channel)
            result = await channel.send("msg", {"n": 0})
            assert not result.queued and not result.duplicate
            assert result.offset == 1 and result.epoch
            await publish(server, "room", [{"n": n} for n in range(1, 4)])
            await recorder.wait_count(4)
            assert recorder.values == [0, 1, 2, 3]
            assert [m.position.offset for m in recorder.messages if m.position] == [1, 2, 3, 4]
            assert recorder.messages[0].id == result.id
    assert states.states == [CONNECTING, CONNECTED, DISCONNECTED]
    assert channel.state is ChannelState.CLOSED


async def test_messages_can_be_iterated(server: RunningServer) -> None:
    async with (
        fast_client(server.ws_url, server.token()) as client,
        client.channel("room") as channel,
    ):
        stream = channel.messages("wanted")
        await publish(server, "room", [{"n": 1}], event="other")
        await publish(server, "room", [{"n": 2}, {"n": 3}], event="wanted")
        received = []
        async with asyncio.timeout(WAIT):
            async for message in stream:
                received.append(message.payload["n"])
                if len(received) == 2:
                    stream.close()
        assert received == [2, 3]


async def test_server_abort_reconnects_and_rejoins(server: RunningServer) -> None:
    client = fast_client(server.ws_url, server.token("u1"))
    states = StateLog(client)
    async with client, client.channel("room") as channel:
        recorder = Recorder().attach(channel)
        await publish(server, "room", [{"n": 0}])
        await recorder.wait_count(1)
        assert abort_all(server) == 1
        await states.wait_for_sequence(CONNECTED, DISCONNECTED, RECONNECTING, CONNECTED)
        await channel.wait_joined(WAIT)
        assert client.connections == 2
        # Rejoined with recovery from the last delivered message: nothing was missed.
        assert channel.recovered is True and recorder.reloads == []
        await publish(server, "room", [{"n": 1}])
        await recorder.wait_count(2)
        assert recorder.values == [0, 1]


async def test_silent_connection_is_dropped_after_a_missed_heartbeat(
    server: RunningServer,
) -> None:
    async with TcpProxy(server.port) as proxy:
        client = fast_client(proxy.url, server.token(), heartbeat_interval=0.3)
        states = StateLog(client)
        async with client:
            # Heartbeats that are answered keep the connection: several intervals, one socket.
            await asyncio.sleep(1.2)
            assert client.state is CONNECTED and client.connections == 1
            proxy.blackhole()
            await states.wait_for_sequence(CONNECTED, DISCONNECTED)
            assert "heartbeat" in states.reasons[states.states.index(DISCONNECTED)]
            proxy.restore()
            await states.wait_for_sequence(CONNECTED, DISCONNECTED, RECONNECTING, CONNECTED)
            assert client.connections >= 2


async def test_a_refused_token_is_an_error_not_a_retry_loop(server: RunningServer) -> None:
    client = fast_client(server.ws_url, "not-a-jwt")
    states = StateLog(client)
    with pytest.raises(AuthenticationError, match="401"):
        async with client:
            pass
    assert states.states == [CONNECTING, ConnectionState.ERROR, DISCONNECTED]
    assert client.connections == 0


async def test_join_refusal_raises(server: RunningServer) -> None:
    async with fast_client(server.ws_url, server.token("u1")) as client:
        with pytest.raises(ValueError):
            client.channel("")
        with pytest.raises(JoinError, match="Unauthorized"):
            async with client.channel("user:someone-else"):
                pass
        assert client.channels == []
        # The refused name is free again, and other channels still join.
        async with client.channel("user:u1") as own:
            assert own.state is ChannelState.JOINED


async def test_set_auth_refreshes_joined_channels_and_later_joins(server: RunningServer) -> None:
    first, second = server.token("u1", **PAID), server.token("u1", ttl=7200, **PAID)
    async with fast_client(server.ws_url, first) as client, client.channel("room") as channel:
        await client.set_auth(second)
        # The server never answers access_token; an acked send after it proves it was handled.
        await channel.send("msg", {})
        (conn,) = connections_of(server, "u1")
        assert conn.memberships["realtime:room"].principal.token == second
        abort_all(server)
        await client.wait_for_state(RECONNECTING, timeout=WAIT)
        await client.wait_for_state(CONNECTED, timeout=WAIT)
        await channel.wait_joined(WAIT)
        (conn,) = connections_of(server, "u1")
        assert conn.principal.token == second  # the new connection's apikey
        assert conn.memberships["realtime:room"].principal.token == second


async def test_binary_broadcasts_reach_a_v2_client(server: RunningServer) -> None:
    async with (
        fast_client(server.ws_url, server.token("u2"), vsn="2.0.0") as client,
        client.channel("room") as channel,
    ):
        recorder = Recorder().attach(channel)
        sender = await server.client("u1", vsn="2.0.0")
        join_ref, _ = await sender.join("room")
        topic, event, meta, body = b"realtime:room", b"bin", b"", b'{"n":7}'
        header = struct.pack("!BBBBBBB", 3, len(join_ref), 1, len(topic), len(event), 0, 1)
        frame = header + join_ref.encode() + b"9" + topic + event + meta + body
        await sender.send_raw(frame)
        await recorder.wait_count(1)
        message = recorder.messages[0]
        assert (message.event, message.payload) == ("bin", orjson.loads(body))
        assert message.position is not None and message.position.offset == 1


def test_profiles_set_the_heartbeat() -> None:
    assert RealtimeClient("ws://h", "t").heartbeat_interval == 30.0
    assert RealtimeClient("ws://h", "t", profile="mobile").heartbeat_interval == 60.0
    assert (
        RealtimeClient("ws://h", "t", profile="mobile", heartbeat_interval=5).heartbeat_interval
        == 5
    )
    with pytest.raises(ValueError):
        RealtimeClient("ws://h", "t", vsn="3.0.0")


async def test_channels_come_back_after_a_server_drain(server: RunningServer) -> None:
    """A deploy: the server closes every channel, then every socket. Unlike the official
    clients, ours joins those channels again once a server answers."""
    client = fast_client(server.ws_url, server.token())
    states = StateLog(client)
    async with client, client.channel("room") as channel:
        recorder = Recorder().attach(channel)
        closes: list[str] = []
        channel.on_close(closes.append)
        await publish(server, "room", [{"n": 0}])
        await recorder.wait_count(1)
        await server.node.drain()
        await states.wait_for_sequence(CONNECTED, DISCONNECTED, RECONNECTING)
        server.node.accepting = True  # the restarted server
        await channel.wait_joined(WAIT)
        await publish(server, "room", [{"n": 1}])
        await recorder.wait_count(2)
        assert recorder.values == [0, 1] and recorder.reloads == []
        assert closes == ["Server is shutting down"]


class _Ceiling(random.Random):
    """A "random" source that always picks the longest delay full jitter allows."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_backoff_restarts_after_a_connection_the_server_answered(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A phone whose signal drops every second: each connection is cut soon after the rejoin
    # succeeded. Each retry must wait at most the base delay, not 2x, 4x, 8x ... of it.
    base = 0.05
    client = fast_client(
        server.ws_url, server.token("u1"), reconnect_base=base, reconnect_cap=30.0, rng=_Ceiling()
    )
    caplog.set_level(logging.INFO, logger="wedsync_realtime.client.client")
    async with client, client.channel("room") as channel:
        for _ in range(4):
            await channel.wait_joined(WAIT)
            states = StateLog(client)  # this cut's states only
            assert abort_all(server) == 1
            await states.wait_for_sequence(DISCONNECTED, RECONNECTING, CONNECTED)
        await channel.wait_joined(WAIT)
    delays = [
        float(record.getMessage().split()[2])
        for record in caplog.records
        if record.getMessage().startswith("reconnecting in ")
    ]
    assert delays == [base] * 4, delays
