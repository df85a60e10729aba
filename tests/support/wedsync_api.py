"""Helpers for the WedSync end-to-end tests: a demo server, joined clients, awaited events.

"Nothing arrived" is proven without sleeping: after the action under test, a marker is published
on the same channel, and the first broadcast the client then receives must be the marker (a
connection's frames arrive in the order they were queued).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.support.phoenix import Frame, PhoenixClient
from wedsync_realtime.wedding.demo import demo
from wedsync_realtime.wedding.policy import CatalogPolicy
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory

__all__ = [
    "C",
    "W",
    "assert_nothing_before_marker",
    "directory_of",
    "headers",
    "http",
    "joined",
    "next_event",
    "on_each",
    "refused",
]

#: James & Emma, and their wedding.
C = demo.couple
W = demo.wedding


def headers(server: RunningServer, user: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user, **claims)}"}


def http(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http_url, timeout=10)


def directory_of(server: RunningServer) -> SqliteDirectory:
    """The demo store the running server's catalog reads (to change facts mid-test)."""
    policy = server.node.policy
    assert isinstance(policy, CatalogPolicy)
    directory = policy.directory
    assert isinstance(directory, SqliteDirectory)
    return directory


async def joined(
    server: RunningServer, user: str, *channels: str, tier: str = "professional"
) -> PhoenixClient:
    """A connection of `user` joined to every channel of `channels` (each join must succeed)."""
    client = await server.connect(server.token(user, app_metadata={"tier": tier}))
    for channel in channels:
        _, reply = await client.join(channel)
        assert reply.payload["status"] == "ok", (user, channel, reply.payload)
    return client


async def refused(client: PhoenixClient, channel: str) -> str:
    """Join `channel`, expecting a refusal; returns the reason."""
    _, reply = await client.join(channel)
    assert reply.payload["status"] == "error", (channel, reply.payload)
    reason: str = reply.payload["response"]["reason"]
    return reason


def _is(frame: Frame, event: str, channel: str | None) -> bool:
    if frame.event != "broadcast" or frame.payload.get("event") != event:
        return False
    return channel is None or frame.topic == f"realtime:{channel}"


async def next_event(
    client: PhoenixClient, event: str, channel: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """The next broadcast `event` (on `channel`), skipping other frames: its broadcast body
    ``{"type", "event", "payload", "meta"}``."""
    frame = await client.recv_until(lambda f: _is(f, event, channel), timeout)
    body: dict[str, Any] = frame.payload
    return body


async def on_each(
    client: PhoenixClient, event: str, channels: list[str], timeout: float = 5.0
) -> dict[str, dict[str, Any]]:
    """`event` once on each of `channels` (in whatever order they come): channel → body."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < len(channels):
        frame = await client.recv_until(
            lambda f: any(_is(f, event, c) for c in channels if c not in seen), timeout
        )
        seen[frame.topic.removeprefix("realtime:")] = frame.payload
    return seen


async def assert_nothing_before_marker(
    server: RunningServer, client: PhoenixClient, channel: str
) -> None:
    """Publish a marker on `channel` and check it is the first broadcast `client` receives."""
    async with http(server) as api:
        response = await api.post(
            "/api/broadcast",
            json={"messages": [{"topic": channel, "event": "marker", "payload": {}}]},
            headers=headers(server, "ops", role="service_role"),
        )
    assert response.status_code == 202, response.text
    frame = await client.recv_until(lambda f: f.event == "broadcast")
    assert frame.topic == f"realtime:{channel}"
    assert frame.payload["event"] == "marker", f"unexpected {frame.payload}"
