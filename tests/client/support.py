"""Helpers of the client SDK tests: publishing from the test side, recording what a channel
delivers, and a TCP proxy that can cut or black-hole a connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import TIME_FACTOR, RunningServer
from wedsync_realtime.client import Broadcast, Channel, ConnectionState, RealtimeClient, Reload

#: Generous bound for anything a test waits on; the wait ends as soon as the event happens.
WAIT = 10.0 * TIME_FACTOR


async def publish(
    server: RunningServer,
    channel: str,
    payloads: list[dict[str, Any]],
    event: str = "msg",
    ids: list[str] | None = None,
) -> None:
    """Broadcast through `POST /api/broadcast` as the service role, in batches of 100."""
    token = server.token("service", role="service_role")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=WAIT) as http:
        for start in range(0, len(payloads), 100):
            batch = []
            for index in range(start, min(start + 100, len(payloads))):
                item: dict[str, Any] = {
                    "topic": channel,
                    "event": event,
                    "payload": payloads[index],
                }
                if ids is not None:
                    item["id"] = ids[index]
                batch.append(item)
            response = await http.post(
                "/api/broadcast",
                json={"messages": batch},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 202, response.text


#: A token claim for the paid tier: 100 broadcasts per minute per channel instead of 10.
PAID: dict[str, Any] = {"app_metadata": {"tier": "paid"}}


def fast_client(url: str, token: str, **options: Any) -> RealtimeClient:
    """A client with test-sized timings: the same code paths, milliseconds instead of seconds."""
    settings: dict[str, Any] = {
        "heartbeat_interval": 1.0,
        "reconnect_base": 0.05,
        "reconnect_cap": 0.3,
        "connect_timeout": 2.0,
        "push_timeout": 3.0,
    }
    settings.update(options)
    return RealtimeClient(url, token, **settings)


def connections_of(server: RunningServer, subject: str) -> list[Any]:
    return [c for c in server.node.connections.values() if c.principal.subject == subject]


def abort_all(server: RunningServer) -> int:
    """Drop every socket of the server without a close handshake; returns how many."""
    connections = list(server.node.connections.values())
    for conn in connections:
        conn.abort()
    return len(connections)


@dataclass
class Recorder:
    """Records what a channel delivers, and lets a test wait for a count."""

    messages: list[Broadcast] = field(default_factory=list)
    reloads: list[Reload] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def attach(self, channel: Channel, event: str = "*") -> Recorder:
        channel.on_broadcast(event, self._on_message)
        channel.on_reload(self._on_reload)
        return self

    def _on_message(self, message: Broadcast) -> None:
        self.messages.append(message)
        self._changed.set()

    def _on_reload(self, reload: Reload) -> None:
        self.reloads.append(reload)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, count: int, timeout: float = WAIT) -> None:
        await self.wait_for(lambda r: len(r.messages) >= count, timeout)

    @property
    def values(self) -> list[Any]:
        return [m.payload.get("n") for m in self.messages]


class StateLog:
    """Every connection state a client went through (with the reason the client gave), with a
    way to wait for a sequence of them."""

    def __init__(self, client: RealtimeClient) -> None:
        self.states: list[ConnectionState] = []
        self.reasons: list[str] = []
        self._client = client
        self._changed = asyncio.Event()
        client.on_state_change(self)

    def __call__(self, state: ConnectionState) -> None:
        self.states.append(state)
        self.reasons.append(self._client.state_reason)
        self._changed.set()

    async def wait_for_sequence(self, *wanted: ConnectionState, timeout: float = WAIT) -> None:
        """Wait until `wanted` appears in order (not necessarily adjacent) in the log."""
        async with asyncio.timeout(timeout):
            while not _subsequence(list(wanted), self.states):
                self._changed.clear()
                await self._changed.wait()


def _subsequence(wanted: list[Any], seen: list[Any]) -> bool:
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


class TcpProxy:
    """A TCP forwarder between clients and a server that can `cut` every connection (RST),
    `blackhole` them (keep the sockets open and silently drop every byte both ways, like a
    phone walking out of coverage) or `refuse` new ones, then `restore`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.dropping = False
        self.refusing = False
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def blackhole(self) -> None:
        self.dropping = True

    def refuse(self) -> None:
        self.refusing = True

    def restore(self) -> None:
        self.dropping = self.refusing = False

    def cut(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                if self.dropping:
                    continue
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._writers.discard(sink)
