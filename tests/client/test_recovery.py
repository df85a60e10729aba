"""Nothing lost, nothing twice: a subscriber cut off while messages are published gets every
one of them exactly once and in order after it reconnects — or, when history cannot cover the
gap, is told to reload and gets no partial replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.client.support import (
    WAIT,
    Recorder,
    TcpProxy,
    abort_all,
    fast_client,
    publish,
)
from tests.conftest import RunningServer
from wedsync_realtime.client import ConnectionState

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]

RECONNECTING = ConnectionState.RECONNECTING


def assert_exactly_once_in_order(recorder: Recorder, count: int) -> None:
    assert recorder.values == list(range(count))
    offsets = [m.position.offset for m in recorder.messages if m.position is not None]
    assert offsets == list(range(1, count + 1))
    assert len({m.id for m in recorder.messages}) == count


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_server_side_abort_500_published_while_cut(
    server_factory: ServerFactory, vsn: str
) -> None:
    server = await server_factory(history_size=1000)
    async with TcpProxy(server.port) as proxy:
        client = fast_client(proxy.url, server.token(), vsn=vsn)
        async with client, client.channel("room") as channel:
            recorder = Recorder().attach(channel)
            await publish(server, "room", [{"n": 0}])
            await recorder.wait_count(1)
            proxy.refuse()  # the client cannot come back until the test says so
            assert abort_all(server) == 1
            await client.wait_for_state(RECONNECTING, timeout=WAIT)
            await publish(server, "room", [{"n": n} for n in range(1, 501)])
            proxy.restore()
            await client.reconnect()  # skip the rest of the backoff delay
            await recorder.wait_count(501)
            assert channel.recovered is True and recorder.reloads == []
            assert all(m.replayed for m in recorder.messages[1:])
            # Live messages after the recovery continue the same stream.
            await publish(server, "room", [{"n": 501}])
            await recorder.wait_count(502)
            assert_exactly_once_in_order(recorder, 502)
            assert not recorder.messages[-1].replayed


async def test_blackholed_connection_500_published_while_cut(
    server_factory: ServerFactory,
) -> None:
    """The TCP connection stays up but carries nothing (a phone out of coverage): the missed
    heartbeat reply is the only sign, and recovery still gets every message."""
    server = await server_factory(history_size=1000)
    async with TcpProxy(server.port) as proxy:
        client = fast_client(proxy.url, server.token(), heartbeat_interval=0.2, connect_timeout=0.5)
        async with client, client.channel("room") as channel:
            recorder = Recorder().attach(channel)
            await publish(server, "room", [{"n": 0}])
            await recorder.wait_count(1)
            proxy.blackhole()
            await publish(server, "room", [{"n": n} for n in range(1, 501)])
            await client.wait_for_state(RECONNECTING, timeout=WAIT)
            assert recorder.values == [0]
            proxy.restore()
            await recorder.wait_count(501)
            assert channel.recovered is True and recorder.reloads == []
            await publish(server, "room", [{"n": 501}])
            await recorder.wait_count(502)
            assert_exactly_once_in_order(recorder, 502)


async def test_repeated_cuts_during_a_steady_stream(server_factory: ServerFactory) -> None:
    """Cuts land anywhere: between a join reply and its replay, in the middle of live traffic.
    Replayed and live copies overlap; each message is still delivered once, in order."""
    server = await server_factory(history_size=1000)
    client = fast_client(server.ws_url, server.token(), reconnect_base=0.01, reconnect_cap=0.05)
    async with client, client.channel("room") as channel:
        recorder = Recorder().attach(channel)
        cuts = 0
        for batch in range(50):
            await publish(server, "room", [{"n": n} for n in range(batch * 10, batch * 10 + 10)])
            if batch % 7 == 3:
                cuts += abort_all(server)
        # A last message after the stream: delivery is in order, so once it is in, any
        # duplicate of an earlier message would have been delivered already.
        await publish(server, "room", [{"n": 500}])
        await recorder.wait_count(501, timeout=3 * WAIT)
        assert_exactly_once_in_order(recorder, 501)
        assert recorder.reloads == []
        assert cuts >= 3 and client.connections >= 3


async def test_trimmed_history_means_reload_and_no_partial_replay(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(history_size=10)
    async with TcpProxy(server.port) as proxy:
        client = fast_client(proxy.url, server.token())
        async with client, client.channel("room") as channel:
            recorder = Recorder().attach(channel)
            events: list[str] = []
            channel.on_reload(lambda reload: events.append("reload"))
            channel.on_broadcast("*", lambda m: events.append(f"msg {m.payload['n']}"))
            await publish(server, "room", [{"n": 0}])
            await recorder.wait_count(1)
            proxy.refuse()
            abort_all(server)
            await client.wait_for_state(RECONNECTING, timeout=WAIT)
            # 20 messages while cut, history keeps 10: the first 10 missed are gone.
            await publish(server, "room", [{"n": n} for n in range(1, 21)])
            proxy.restore()
            await client.reconnect()
            await recorder.wait_for(lambda r: len(r.reloads) == 1)
            (reload,) = recorder.reloads
            assert reload.position is not None and reload.position.offset == 21
            assert channel.recovered is False
            # Nothing of the cut period is delivered (no partial replay); live ones continue.
            await publish(server, "room", [{"n": 21}])
            await recorder.wait_count(2)
            assert recorder.values == [0, 21]
            assert events == ["msg 0", "reload", "msg 21"]


async def test_expired_history_means_reload(server_factory: ServerFactory) -> None:
    ttl = 0.3
    server = await server_factory(history_ttl_s=ttl)
    async with TcpProxy(server.port) as proxy:
        client = fast_client(proxy.url, server.token())
        async with client, client.channel("room") as channel:
            recorder = Recorder().attach(channel)
            await publish(server, "room", [{"n": 0}])
            await recorder.wait_count(1)
            proxy.refuse()
            abort_all(server)
            await client.wait_for_state(RECONNECTING, timeout=WAIT)
            await publish(server, "room", [{"n": 1}, {"n": 2}])
            await asyncio.sleep(ttl * 2)  # the missed messages expire
            proxy.restore()
            await client.reconnect()
            await recorder.wait_for(lambda r: len(r.reloads) == 1)
            assert recorder.values == [0]
            assert channel.recovered is False
