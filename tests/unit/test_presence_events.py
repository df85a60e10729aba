"""`presence_updated`: the announcer fed by a real node's presence hooks, with fake clocks, the
demo directory and a recording publisher behind the real router (no sockets, no sleeping: each
test awaits `PresenceAnnouncer.settled`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.conftest import make_settings
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.auth.policy import NameRulesPolicy
from wedsync_realtime.backends.memory import MemoryBroker, MemoryHistory
from wedsync_realtime.engine.connection import Connection
from wedsync_realtime.engine.history import Published
from wedsync_realtime.engine.node import Node, PresenceChangeListener
from wedsync_realtime.engine.presence_status import PresenceListener, iso_time
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.demo import demo, load_demo
from wedsync_realtime.wedding.presence_events import PresenceAnnouncer, PresenceHooks
from wedsync_realtime.wedding.router import EventRouter
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory

NOW = dt.datetime(2025, 6, 14, 14, 0, tzinfo=dt.UTC)
STAMP = "2025-06-14T14:00:00.000Z"
ROOM, LOBBY = "realtime:room", "realtime:lobby"
EMMA_CHANNELS = {
    f"couple:{demo.couple}",
    *(f"supplier:{s}:clients" for s in demo.connected_suppliers),
}
EMMA = {
    "status": "online",
    "current_page": "/forms/shot-list",
    "device_type": "mobile",
    "is_typing": False,
}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Transport:
    """Where a connection's frames go (nothing here looks at them)."""

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        return True

    async def send(self, frame: OutFrame) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


class RecordingPublisher:
    """The router's publisher: remembers (channel, event, payload) of every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = False

    async def publish(
        self,
        message: OutboundBroadcast,
        exclude: str | None = None,
        *,
        message_id: str | None = None,
    ) -> Published:
        if self.fail:
            raise RuntimeError("publisher down")
        payload = message.payload
        assert isinstance(payload, dict)
        self.messages.append((message.topic.removeprefix("realtime:"), message.event, payload))
        return Published(message_id or "", None, delivered=1)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """One (user, payload) per event (the copies on its channels are one event)."""
        seen: list[tuple[str, dict[str, Any]]] = []
        for _, event, payload in self.messages:
            assert event == "presence_updated"
            if not seen or seen[-1][1] != payload:
                seen.append((str(payload["user_id"]), payload))
        return seen

    def channels(self) -> set[str]:
        return {channel for channel, _, _ in self.messages}

    def statuses(self) -> list[tuple[str, str]]:
        return [(user, str(p["status"])) for user, p in self.events()]


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, float]] = []

    def seen(self, user_id: str, status: str | None, at: float) -> None:
        self.calls.append((user_id, status, at))


class World:
    def __init__(
        self, node: Node, database: SqliteDatabase, clock: FakeClock, wall: FakeClock
    ) -> None:
        self.node, self.clock, self.wall = node, clock, wall
        self.publisher = RecordingPublisher()
        self.directory = SqliteDirectory(database)
        self.announcer = PresenceAnnouncer(
            node, self.directory, EventRouter(self.publisher).route, clock=lambda: NOW
        )
        self.last_seen = Seen()
        node.presence_listener = PresenceHooks(self.last_seen, self.announcer)
        self.writers: list[asyncio.Task[None]] = []

    async def connected(self, user: str) -> Connection:
        verifier = self.node.verifier
        token = verifier.sign({"sub": user, "role": "authenticated", "exp": time.time() + 600})
        conn = self.node.connect(verifier.verify(token), ProtocolVersion.V1)
        self.writers.append(asyncio.create_task(conn.write_loop(Transport())))
        return conn

    async def send(self, conn: Connection, topic: str, event: str, payload: Any) -> None:
        frame = {"topic": topic, "event": event, "payload": payload, "ref": "1", "join_ref": "1"}
        await conn.receive_text(orjson.dumps(frame))

    async def tab(self, user: str, *topics: str) -> Connection:
        """A connection of `user` joined (with presence) to each of `topics`."""
        conn = await self.connected(user)
        for topic in topics:
            config = {"presence": {"key": user, "enabled": True}}
            await self.send(conn, topic, "phx_join", {"config": config})
            assert topic in conn.memberships
        return conn

    async def track(self, conn: Connection, payload: dict[str, Any], topic: str = ROOM) -> None:
        await self.send(conn, topic, "presence", {"event": "track", "payload": payload})
        await self.announcer.settled()

    async def untrack(self, conn: Connection, topic: str = ROOM) -> None:
        await self.send(conn, topic, "presence", {"event": "untrack"})
        await self.announcer.settled()

    async def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.wall.now += seconds
        await self.node.decay_presence()
        await self.announcer.settled()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    settings = make_settings()
    clock, wall = FakeClock(1000.0), FakeClock(1_750_000_000.0)
    node = Node(
        settings,
        verifier=TokenVerifier(settings.jwt_secret),
        policy=NameRulesPolicy(),
        broker=MemoryBroker(),
        history=MemoryHistory(),
        clock=clock,
        wall_clock=wall,
    )
    database = SqliteDatabase.open(":memory:")
    load_demo(database)
    try:
        async with node:
            w = World(node, database, clock, wall)
            yield w
            for writer in w.writers:
                writer.cancel()
            await asyncio.gather(*w.writers, return_exceptions=True)
    finally:
        database.close()


async def test_the_hooks_are_a_change_listener_and_a_plain_listener_is_not(world: World) -> None:
    hooks: PresenceListener | None = world.node.presence_listener
    assert isinstance(hooks, PresenceHooks) and isinstance(hooks, PresenceChangeListener)
    assert not isinstance(Seen(), PresenceChangeListener)


async def test_a_couple_user_coming_online_is_one_event_on_the_couple_and_its_suppliers(
    world: World,
) -> None:
    emma = await world.tab("emma", ROOM)
    tracked_at = world.wall.now
    await world.track(emma, EMMA)
    assert world.publisher.events() == [
        (
            "emma",
            {
                "user_id": "emma",
                "user_name": "Emma",
                "user_type": "couple",
                "status": "online",
                "current_page": "/forms/shot-list",
                "is_typing": False,
                "device_type": "mobile",
                "last_activity": iso_time(tracked_at),
                "timestamp": STAMP,
                "couple_id": demo.couple,
            },
        )
    ]
    # Exactly the couple's channel and its five connected suppliers' client lists: not the
    # wedding channel, not the rival studio.
    assert world.publisher.channels() == EMMA_CHANNELS
    assert len(world.publisher.messages) == len(EMMA_CHANNELS)
    # Last seen still hears about her.
    assert [call[:2] for call in world.last_seen.calls] == [("emma", "online")]


async def test_the_same_status_again_is_not_announced(world: World) -> None:
    emma = await world.tab("emma", ROOM, LOBBY)
    await world.track(emma, EMMA)
    await world.advance(30)
    await world.track(emma, EMMA)  # an activity ping: same status, same page
    await world.track(emma, {**EMMA, "is_typing": True})  # typing alone is not a change
    await world.track(emma, EMMA, topic=LOBBY)  # her presence on a second channel
    second_tab = await world.tab("emma", ROOM)
    await world.track(second_tab, EMMA)
    assert world.publisher.statuses() == [("emma", "online")]


async def test_a_burst_of_tabs_is_one_event(world: World) -> None:
    tabs = [await world.tab("emma", ROOM) for _ in range(3)]
    for tab in tabs:
        await world.send(tab, ROOM, "presence", {"event": "track", "payload": EMMA})
    await world.announcer.settled()
    assert world.publisher.statuses() == [("emma", "online")]


async def test_a_new_page_is_announced_with_the_same_status(world: World) -> None:
    emma = await world.tab("emma", ROOM)
    await world.track(emma, EMMA)
    await world.track(emma, {**EMMA, "current_page": "/timeline"})
    [(_, first), (_, second)] = world.publisher.events()
    assert first["current_page"] == "/forms/shot-list"
    assert second["status"] == "online" and second["current_page"] == "/timeline"


async def test_appear_offline_is_announced_as_offline_without_page(world: World) -> None:
    emma = await world.tab("emma", ROOM)
    await world.track(emma, EMMA)
    await world.track(emma, {**EMMA, "appear_offline": True})
    await world.track(emma, {**EMMA, "current_page": "/secret", "appear_offline": True})
    [_, (_, hidden)] = world.publisher.events()
    assert hidden == {
        "user_id": "emma",
        "user_name": "Emma",
        "user_type": "couple",
        "status": "offline",
        "current_page": None,
        "is_typing": False,
        "device_type": None,
        "last_activity": None,
        "timestamp": STAMP,
        "couple_id": demo.couple,
    }
    # Declaring `offline` is the same thing; showing herself again is online at once.
    await world.track(emma, EMMA)
    await world.track(emma, {**EMMA, "status": "offline"})
    assert world.publisher.statuses()[2:] == [("emma", "online"), ("emma", "offline")]


async def test_a_hidden_tab_counts_as_offline_next_to_a_visible_one(world: World) -> None:
    visible = await world.tab("emma", ROOM)
    await world.track(visible, {**EMMA, "status": "away", "current_page": "/old"})
    hidden = await world.tab("emma", ROOM)
    await world.track(hidden, {**EMMA, "current_page": "/secret", "appear_offline": True})
    assert world.publisher.statuses() == [("emma", "away")]  # the visible tab speaks for her
    await world.untrack(visible)
    assert [(p["status"], p["current_page"]) for _, p in world.publisher.events()] == [
        ("away", "/old"),
        ("offline", None),
    ]


async def test_a_user_who_starts_hidden_is_never_announced(world: World) -> None:
    emma = await world.tab("emma", ROOM)
    await world.track(emma, {**EMMA, "appear_offline": True})
    await world.advance(200)
    await world.untrack(emma)
    assert world.publisher.messages == []


async def test_untracking_the_last_presence_is_offline(world: World) -> None:
    first = await world.tab("emma", ROOM)
    second = await world.tab("emma", ROOM)
    await world.track(first, EMMA)
    await world.track(second, EMMA)
    await world.untrack(first)
    assert world.publisher.statuses() == [("emma", "online")]
    await world.untrack(second)
    assert world.publisher.statuses() == [("emma", "online"), ("emma", "offline")]
    [_, (_, offline)] = world.publisher.events()
    assert offline["current_page"] is None and offline["device_type"] is None


async def test_disconnecting_is_offline(world: World) -> None:
    emma = await world.tab("emma", ROOM, LOBBY)
    await world.track(emma, EMMA)
    await world.track(emma, EMMA, topic=LOBBY)
    world.node.disconnect(emma)
    await world.announcer.settled()
    assert world.publisher.statuses() == [("emma", "online"), ("emma", "offline")]


async def test_decay_is_announced_idle_away_offline_and_activity_brings_her_back(
    world: World,
) -> None:
    emma = await world.tab("emma", ROOM)
    tracked_at = world.wall.now
    await world.track(emma, EMMA)
    await world.advance(119)
    assert world.publisher.statuses() == [("emma", "online")]
    await world.advance(1)
    await world.advance(480)
    await world.advance(3000)
    assert world.publisher.statuses() == [
        ("emma", "online"),
        ("emma", "idle"),
        ("emma", "away"),
        ("emma", "offline"),
    ]
    [_, (_, idle), (_, away), _] = world.publisher.events()
    assert idle["last_activity"] == away["last_activity"] == iso_time(tracked_at)
    assert idle["current_page"] == "/forms/shot-list"
    # A broadcast is activity: the decayed status comes back.
    await world.send(emma, ROOM, "broadcast", {"type": "broadcast", "event": "x", "payload": {}})
    await world.announcer.settled()
    assert world.publisher.statuses()[-1] == ("emma", "online")


async def test_the_best_tab_speaks_for_the_user(world: World) -> None:
    idle_tab = await world.tab("emma", ROOM)
    await world.track(idle_tab, {**EMMA, "status": "idle", "current_page": "/old"})
    active_tab = await world.tab("emma", ROOM)
    await world.track(active_tab, EMMA)
    await world.untrack(active_tab)
    assert [(p["status"], p["current_page"]) for _, p in world.publisher.events()] == [
        ("idle", "/old"),
        ("online", "/forms/shot-list"),
        ("idle", "/old"),
    ]


async def test_a_supplier_user_goes_to_its_team_and_its_connected_couples(
    world: World,
) -> None:
    lisa = await world.tab("lisa", ROOM)
    await world.track(lisa, {"status": "busy", "current_page": "/forms/catering"})
    [(_, payload)] = world.publisher.events()
    assert payload["user_name"] == "Lisa" and payload["user_type"] == "supplier"
    assert payload["status"] == "busy" and payload["supplier_id"] == demo.caterer
    assert world.publisher.channels() == {f"supplier:{demo.caterer}:team", f"couple:{demo.couple}"}
    # The rival studio's user: its own team and its own couple, never James & Emma.
    world.publisher.messages.clear()
    rita = await world.tab("rita", ROOM)
    await world.track(rita, {"status": "online"})
    assert world.publisher.channels() == {
        f"supplier:{demo.rival}:team",
        f"couple:{demo.other_couple}",
    }


async def test_admins_unknown_users_and_a_node_shutting_down_announce_nothing(
    world: World,
) -> None:
    admin = await world.tab("admin", ROOM)
    await world.track(admin, {"status": "online"})
    stranger = await world.tab("someone-else", ROOM)
    await world.track(stranger, {"status": "online"})
    assert world.publisher.messages == []
    emma = await world.tab("emma", ROOM)
    world.node.accepting = False
    await world.track(emma, EMMA)
    assert world.publisher.messages == []


async def test_errors_while_announcing_never_break_presence(world: World) -> None:
    emma = await world.tab("emma", ROOM)
    watcher = await world.tab("james", ROOM)
    world.publisher.fail = True
    await world.track(emma, EMMA)  # the router logs the channels that failed
    world.publisher.fail = False
    await world.track(emma, {**EMMA, "current_page": "/next"})
    assert [p["current_page"] for _, p in world.publisher.events()] == ["/next"]
    world.directory.database.close()  # every directory read now raises
    await world.track(emma, {**EMMA, "current_page": "/third"})
    assert len(world.publisher.events()) == 1
    # Presence itself carried on: the last track is in the registry, the sockets are open.
    entry = world.node.presence.get(ROOM, emma.id)
    assert entry is not None and entry.payload["current_page"] == "/third"
    assert emma.id in world.node.connections and watcher.id in world.node.connections
