"""Fixtures: a real server on a free port, tokens, and raw protocol clients.

Every fixture closes what it opens. Timeouts are scaled by WEDSYNC_TEST_TIME_FACTOR on slow
machines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.phoenix import PhoenixClient
from wedsync_realtime.app import build_app, build_node
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.engine.node import Node
from wedsync_realtime.server import Server, uvicorn_config
from wedsync_realtime.settings import Settings

TEST_SECRET = "test-secret-for-wedsync-realtime-0123456789"
TIME_FACTOR = float(os.environ.get("WEDSYNC_TEST_TIME_FACTOR", "1"))


def make_settings(**overrides: Any) -> Settings:
    # data_dir ":memory:": each server's embedded store lives in memory, nothing in ./var.
    base = Settings(
        jwt_secret=TEST_SECRET,
        jwt_secret_is_default=False,
        shutdown_grace_s=1.0,
        data_dir=Path(":memory:"),
    )
    return dataclasses.replace(base, **overrides)


@dataclass
class RunningServer:
    """A server listening on 127.0.0.1 at a free port."""

    port: int
    node: Node
    server: Server
    settings: Settings

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def token(
        self, sub: str = "user-1", role: str = "authenticated", ttl: float = 3600, **claims: Any
    ) -> str:
        now = time.time()
        body = {"sub": sub, "role": role, "iat": int(now), "exp": now + ttl, **claims}
        return TokenVerifier(self.settings.jwt_secret).sign(body)

    clients: list[PhoenixClient] = dataclasses.field(default_factory=list)

    async def connect(self, token: str | None, vsn: str = "1.0.0", **kwargs: Any) -> PhoenixClient:
        """A raw protocol client, closed when the server fixture stops."""
        client = await PhoenixClient.connect(self.ws_url, token, vsn, **kwargs)
        self.clients.append(client)
        return client

    async def client(self, sub: str = "user-1", vsn: str = "1.0.0", **claims: Any) -> PhoenixClient:
        return await self.connect(self.token(sub, **claims), vsn)


async def start_server(settings: Settings) -> tuple[RunningServer, asyncio.Task[None]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    node = build_node(settings)
    app = build_app(settings, node)
    server = Server(uvicorn_config(app, "127.0.0.1", port, settings.max_frame_bytes), node)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return RunningServer(port, node, server, settings), task


async def stop_server(running: RunningServer, task: asyncio.Task[None]) -> None:
    for client in running.clients:
        await client.close()
    running.server.should_exit = True
    await asyncio.wait_for(task, 10 * TIME_FACTOR)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    running, task = await start_server(settings)
    try:
        yield running
    finally:
        await stop_server(running, task)


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Awaitable[RunningServer]]]:
    """Start servers with custom settings inside a test: `await server_factory(**overrides)`."""
    started: list[tuple[RunningServer, asyncio.Task[None]]] = []

    async def factory(**overrides: Any) -> RunningServer:
        running, task = await start_server(make_settings(**overrides))
        started.append((running, task))
        return running

    try:
        yield factory
    finally:
        for running, task in started:
            await stop_server(running, task)
