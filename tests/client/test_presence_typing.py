"""Presence (throttled track, re-tracked after a reconnect, untrack) and the typing helper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.support import WAIT, Recorder, connections_of, fast_client
from tests.conftest import RunningServer
from wedsync_realtime.client import Channel, PresenceChange

pytestmark = pytest.mark.integration


class PresenceLog:
    def __init__(self, channel: Channel) -> None:
        self.changes: list[PresenceChange] = []
        self._changed = asyncio.Event()
        channel.on_presence(self._on_change)

    def _on_change(self, change: PresenceChange) -> None:
        self.changes.append(change)
        self._changed.set()

    @property
    def state(self) -> dict[str, list[dict[str, Any]]]:
        return self.changes[-1].state if self.changes else {}

    def joined_statuses(self, key: str) -> list[Any]:
        return [meta.get("status") for c in self.changes for meta in c.joins.get(key, [])]

    async def wait_for(self, predicate: Callable[[PresenceLog], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


def status_of(log: PresenceLog, key: str) -> Any:
    metas = log.state.get(key, [])
    return metas[0].get("status") if metas else None


async def test_track_is_throttled_last_one_wins_and_survives_a_reconnect(
    server: RunningServer,
) -> None:
    async with (
        fast_client(server.ws_url, server.token("bob")) as observer,
        observer.channel("room", presence=True) as watched,
    ):
        log = PresenceLog(watched)
        alice = fast_client(server.ws_url, server.token("alice"))
        async with (
            alice,
            alice.channel("room", presence_key="alice", presence_interval=0.3) as channel,
        ):
            channel.track({"status": "online"})
            channel.track({"status": "busy"})
            channel.track({"status": "away"})
            await log.wait_for(lambda log: status_of(log, "alice") == "away")
            # The first went at once, the middle one was replaced before its turn.
            assert log.joined_statuses("alice") == ["online", "away"]

            (conn,) = connections_of(server, "alice")
            conn.abort()
            await log.wait_for(lambda log: "alice" not in log.state)
            # Back after the reconnect without the application doing anything.
            await log.wait_for(lambda log: status_of(log, "alice") == "away")
            assert alice.connections == 2

            channel.untrack()
            await log.wait_for(lambda log: "alice" not in log.state)
        assert watched.presence_state == log.state


async def test_typing_sends_one_start_and_one_stop(server: RunningServer) -> None:
    async with (
        fast_client(server.ws_url, server.token("bob")) as observer,
        observer.channel("room") as watched,
    ):
        recorder = Recorder().attach(watched, "user:typing")
        typist = fast_client(server.ws_url, server.token("alice"))
        async with typist, typist.channel("room", typing_timeout=0.5) as channel:
            for _ in range(5):  # keystrokes closer together than the quiet time
                channel.typing("guest_count", user_name="Alice")
                await asyncio.sleep(0.05)
            assert channel.typing_fields == {"guest_count"}
            await recorder.wait_count(2)
            assert channel.typing_fields == set()
            assert [m.payload for m in recorder.messages] == [
                {"user_name": "Alice", "field_id": "guest_count", "is_typing": True},
                {"user_name": "Alice", "field_id": "guest_count", "is_typing": False},
            ]
            channel.typing("guest_count")  # a new burst starts again
            await recorder.wait_count(4)
        assert len(recorder.messages) == 4
