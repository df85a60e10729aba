"""The offline outbox against a real server: queued while offline, flushed in order after the
rejoin, de-duplicated by id, kept across a client restart, bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.client.support import (
    PAID,
    WAIT,
    Recorder,
    TcpProxy,
    abort_all,
    fast_client,
    publish,
)
from tests.conftest import RunningServer
from wedsync_realtime.client import ChannelState, ConnectionState, OutboxFull, RealtimeClient

pytestmark = pytest.mark.integration


async def wait_outbox_empty(client: RealtimeClient) -> None:
    empty = asyncio.Event()
    remove = client.on_outbox_change(lambda size: empty.set() if size == 0 else None)
    try:
        if client.outbox_size:
            async with asyncio.timeout(WAIT):
                await empty.wait()
    finally:
        remove()


async def test_sends_while_offline_are_flushed_in_order_after_the_rejoin(
    server: RunningServer,
) -> None:
    async with (
        TcpProxy(server.port) as proxy,
        fast_client(server.ws_url, server.token("watcher")) as watcher,
        watcher.channel("room") as watched,
    ):
        recorder = Recorder().attach(watched)
        client = fast_client(proxy.url, server.token("writer", **PAID))
        sizes: list[int] = []
        client.on_outbox_change(sizes.append)
        async with client, client.channel("room") as channel:
            await channel.send("msg", {"n": 0})
            proxy.refuse()
            abort_all(server)  # the watcher too: it recovers what it misses
            await client.wait_for_state(ConnectionState.RECONNECTING, timeout=WAIT)
            results = [await channel.send("msg", {"n": n}) for n in (1, 2, 3)]
            assert all(r.queued for r in results)
            assert client.outbox_size == 3 and sizes[-3:] == [1, 2, 3]
            proxy.restore()
            await client.reconnect()
            await wait_outbox_empty(client)
            # After the flush, live sends go straight out again, behind the queued ones.
            live = await channel.send("msg", {"n": 4})
            assert not live.queued and live.offset == 5
            await recorder.wait_count(5)
            assert recorder.values == [0, 1, 2, 3, 4]
            assert [m.id for m in recorder.messages[1:4]] == [r.id for r in results]
            assert sizes[-1] == 0


async def test_outbox_survives_a_restart_and_is_not_published_twice(
    server: RunningServer, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.sqlite"
    token = server.token("writer", **PAID)
    async with TcpProxy(server.port) as proxy:
        proxy.refuse()  # the first run never gets through: a phone offline all along
        offline = fast_client(proxy.url, token, outbox_path=path)
        async with offline:
            assert offline.state is ConnectionState.RECONNECTING
            async with offline.channel("room") as channel:
                assert channel.state is ChannelState.ERRORED  # joins once connected
                results = [await channel.send("msg", {"n": n}) for n in range(4)]
            assert offline.outbox_size == 4
    assert all(r.queued for r in results)

    async with (
        fast_client(server.ws_url, server.token("watcher")) as watcher,
        watcher.channel("room") as watched,
    ):
        recorder = Recorder().attach(watched)
        # The first message did reach the server in the earlier run (only its ack was
        # lost): it is published under the same id before the restart's flush.
        await publish(server, "room", [{"n": 0}], ids=[results[0].id])
        await recorder.wait_count(1)
        restarted = fast_client(server.ws_url, token, outbox_path=path)
        async with restarted:
            assert restarted.outbox_size == 4
            async with restarted.channel("room") as again:
                await wait_outbox_empty(restarted)
                marker = await again.send("msg", {"n": "end"})
                assert not marker.queued
        await recorder.wait_for(lambda r: r.values[-1:] == ["end"])
        assert recorder.values == [0, 1, 2, 3, "end"]
        assert [m.id for m in recorder.messages[:4]] == [r.id for r in results]


async def test_same_id_twice_is_delivered_once(server: RunningServer) -> None:
    async with (
        fast_client(server.ws_url, server.token("watcher")) as watcher,
        watcher.channel("room") as watched,
    ):
        recorder = Recorder().attach(watched)
        async with (
            fast_client(server.ws_url, server.token("writer")) as client,
            client.channel("room") as channel,
        ):
            first = await channel.send("msg", {"n": 1}, message_id="form-42-save-7")
            again = await channel.send("msg", {"n": 1}, message_id="form-42-save-7")
            assert not first.duplicate and again.duplicate
            assert (again.offset, again.epoch) == (first.offset, first.epoch)
            await channel.send("msg", {"n": 2})
        await recorder.wait_count(2)
        assert recorder.values == [1, 2]


async def test_a_full_outbox_refuses(server: RunningServer) -> None:
    async with TcpProxy(server.port) as proxy:
        proxy.refuse()
        client = fast_client(proxy.url, server.token(), outbox_max_size=2)
        async with client, client.channel("room") as channel:
            await channel.send("msg", {"n": 1})
            await channel.send("msg", {"n": 2})
            with pytest.raises(OutboxFull):
                await channel.send("msg", {"n": 3})
            assert client.outbox_size == 2
