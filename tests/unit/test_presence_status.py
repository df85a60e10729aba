"""WedSync presence statuses: the decay rules, the status clock, hidden ("appear offline")
presences in the registry, and the node driving them with a fake clock (no sleeping)."""

from __future__ import annotations

import asyncio
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
from wedsync_realtime.engine.node import Node
from wedsync_realtime.engine.presence import PresenceRegistry
from wedsync_realtime.engine.presence_status import (
    Status,
    StatusClock,
    Thresholds,
    decayed,
    declared_status,
    is_hidden,
    iso_time,
)
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame

T = Thresholds(120, 600, 3600)
TOPIC = "realtime:room"


# -- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "inactive", "expected"),
    [
        (Status.ONLINE, 0, Status.ONLINE),
        (Status.ONLINE, 119.9, Status.ONLINE),
        (Status.ONLINE, 120, Status.IDLE),
        (Status.ONLINE, 600, Status.AWAY),
        (Status.ONLINE, 3600, Status.OFFLINE),
        (Status.IDLE, 0, Status.IDLE),
        (Status.IDLE, 600, Status.AWAY),
        (Status.AWAY, 0, Status.AWAY),
        (Status.AWAY, 3600, Status.OFFLINE),
        (Status.BUSY, 600, Status.BUSY),
        (Status.BUSY, 3599, Status.BUSY),
        (Status.BUSY, 3600, Status.OFFLINE),
        (Status.OFFLINE, 0, Status.OFFLINE),
    ],
)
def test_decay_only_lowers_and_busy_skips_idle_and_away(
    declared: Status, inactive: float, expected: Status
) -> None:
    assert decayed(declared, inactive, T) is expected


def test_managed_metas_and_appear_offline() -> None:
    assert declared_status({"status": "busy"}) is Status.BUSY
    # Plain Supabase metas (or unknown statuses) are left alone.
    assert declared_status({"name": "Alice"}) is None
    assert declared_status({"status": "dancing"}) is None
    assert is_hidden({"status": "offline"})
    assert is_hidden({"status": "online", "appear_offline": True})
    assert not is_hidden({"status": "online", "appear_offline": "yes"})


# -- the clock -----------------------------------------------------------------------------------


def test_clock_moves_online_to_idle_away_offline_at_the_thresholds() -> None:
    clock = StatusClock(T)
    assert clock.track("t", "c", Status.ONLINE, now=0, wall=5000) == 120
    assert clock.due(119.9) == []
    [idle] = clock.due(120)
    assert (idle.status, idle.last_activity) == (Status.IDLE, 5000)
    assert clock.next_deadline() == 600
    assert [c.status for c in clock.due(600)] == [Status.AWAY]
    assert [c.status for c in clock.due(3600)] == [Status.OFFLINE]
    assert clock.next_deadline() is None


def test_a_late_tick_jumps_to_the_status_due_now() -> None:
    clock = StatusClock(T)
    clock.track("t", "c", Status.ONLINE, now=0, wall=0)
    assert [c.status for c in clock.due(700)] == [Status.AWAY]


def test_busy_goes_offline_only() -> None:
    clock = StatusClock(T)
    assert clock.track("t", "c", Status.BUSY, now=0, wall=0) == 3600
    assert clock.due(3599) == []
    assert [c.status for c in clock.due(3600)] == [Status.OFFLINE]


def test_activity_restores_the_declared_status_and_restarts_the_clock() -> None:
    clock = StatusClock(T)
    clock.track("t", "c", Status.ONLINE, now=0, wall=0)
    clock.due(130)
    assert clock.activity("t", "c", now=140, wall=140) is Status.ONLINE
    assert clock.activity("t", "c", now=150, wall=150) is None  # nothing to restore
    assert clock.next_deadline() == 270
    assert clock.activity("t", "other", now=150, wall=150) is None  # not managed


def test_declaring_idle_is_not_activity() -> None:
    clock = StatusClock(T)
    clock.track("t", "c", Status.ONLINE, now=0, wall=0)
    clock.track("t", "c", Status.IDLE, now=700, wall=700)
    # Inactive since 0: idle declared at 700 is already past the away threshold.
    assert [c.status for c in clock.due(700)] == [Status.AWAY]


def test_forgotten_presences_do_not_fire() -> None:
    clock = StatusClock(T)
    clock.track("t", "c", Status.ONLINE, now=0, wall=0)
    clock.forget("t", "c")
    assert clock.next_deadline() is None and clock.due(10_000) == []


# -- hidden presences in the registry --------------------------------------------------------------


def test_going_hidden_is_a_leave_for_others_and_an_update_for_the_owner() -> None:
    registry = PresenceRegistry("n")
    shown = registry.track(TOPIC, "c1", "alice", {"status": "online"}, owner="alice")
    assert shown is not None and shown.owner is None  # shared by everyone
    [visible_meta] = shown.joins["alice"]["metas"]
    hide = registry.track(TOPIC, "c1", "alice", {"status": "offline"}, owner="alice", hidden=True)
    assert hide is not None and hide.owner == "alice"
    assert hide.others is not None
    assert hide.others.payload() == {"joins": {}, "leaves": {"alice": {"metas": [visible_meta]}}}
    [own_meta] = hide.joins["alice"]["metas"]
    assert own_meta["phx_ref_prev"] == visible_meta["phx_ref"]
    assert registry.state(TOPIC) == {}
    assert registry.state(TOPIC, viewer="alice") == {"alice": {"metas": [own_meta]}}
    # A change while hidden: the others get nothing at all.
    again = registry.track(
        TOPIC, "c1", "alice", {"status": "offline", "page": "x"}, owner="alice", hidden=True
    )
    assert again is not None and again.others is None
    # Back: a join for the others.
    back = registry.track(TOPIC, "c1", "alice", {"status": "online"}, owner="alice")
    assert back is not None and back.others is not None
    assert back.others.leaves == {} and back.others.joins == back.joins
    gone = registry.untrack(TOPIC, "c1")
    assert gone is not None and gone.owner is None


def test_a_server_change_makes_the_same_retrack_a_change() -> None:
    registry = PresenceRegistry("n")
    registry.track(TOPIC, "c1", "k", {"status": "online"})
    decay = registry.replace_meta(TOPIC, "c1", {"status": "idle"})
    assert decay is not None
    assert decay.joins["k"]["metas"][0]["status"] == "idle"
    assert registry.replace_meta(TOPIC, "c1", {"status": "idle"}) is None
    back = registry.track(TOPIC, "c1", "k", {"status": "online"})
    assert back is not None and back.joins["k"]["metas"][0]["status"] == "online"
    assert registry.track(TOPIC, "c1", "k", {"status": "online"}) is None


# -- the node, with a fake clock -------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recording:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        self.frames.append(orjson.loads(frame))
        return True

    async def send(self, frame: OutFrame) -> None:
        self.frames.append(orjson.loads(frame))

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass

    def diffs(self) -> list[dict[str, Any]]:
        return [f["payload"] for f in self.frames if f["event"] == "presence_diff"]

    def states(self) -> list[dict[str, Any]]:
        return [f["payload"] for f in self.frames if f["event"] == "presence_state"]


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, float]] = []

    def seen(self, user_id: str, status: str | None, at: float) -> None:
        self.calls.append((user_id, status, at))


class Harness:
    def __init__(self, node: Node, clock: FakeClock, wall: FakeClock) -> None:
        self.node, self.clock, self.wall = node, clock, wall
        self.writers: list[asyncio.Task[None]] = []
        self.seen = Seen()
        node.presence_listener = self.seen

    async def joined(self, sub: str, key: str) -> tuple[Connection, Recording]:
        verifier = self.node.verifier
        token = verifier.sign({"sub": sub, "role": "authenticated", "exp": time.time() + 600})
        conn = self.node.connect(verifier.verify(token), ProtocolVersion.V1)
        out = Recording()
        self.writers.append(asyncio.create_task(conn.write_loop(out)))
        await asyncio.sleep(0)
        config = {"presence": {"key": key, "enabled": True}}
        await self.send(conn, "phx_join", {"config": config})
        return conn, out

    async def send(self, conn: Connection, event: str, payload: dict[str, Any]) -> None:
        frame = {"topic": TOPIC, "event": event, "payload": payload, "ref": "1", "join_ref": "1"}
        await conn.receive_text(orjson.dumps(frame))

    async def track(self, conn: Connection, payload: dict[str, Any]) -> None:
        await self.send(conn, "presence", {"event": "track", "payload": payload})

    async def advance(self, seconds: float) -> int:
        self.clock.now += seconds
        self.wall.now += seconds
        return await self.node.decay_presence()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock, wall = FakeClock(1000.0), FakeClock(1_750_000_000.0)
    settings = make_settings()
    node = Node(
        settings,
        verifier=TokenVerifier(settings.jwt_secret),
        policy=NameRulesPolicy(),
        broker=MemoryBroker(),
        history=MemoryHistory(),
        clock=clock,
        wall_clock=wall,
    )
    async with node:
        h = Harness(node, clock, wall)
        yield h
        for writer in h.writers:
            writer.cancel()
        await asyncio.gather(*h.writers, return_exceptions=True)


async def test_node_pushes_each_decay_as_an_update_diff(harness: Harness) -> None:
    alice, _ = await harness.joined("alice", "alice")
    _, bob_out = await harness.joined("bob", "bob")
    tracked_at = harness.wall.now
    await harness.track(alice, {"status": "online", "user_name": "Alice"})
    [join] = bob_out.diffs()
    [online] = join["joins"]["alice"]["metas"]
    assert await harness.advance(119) == 0
    assert await harness.advance(1) == 1
    idle = bob_out.diffs()[-1]
    assert idle["leaves"] == {"alice": {"metas": [online]}}
    [idle_meta] = idle["joins"]["alice"]["metas"]
    assert idle_meta["status"] == "idle" and idle_meta["user_name"] == "Alice"
    assert idle_meta["phx_ref_prev"] == online["phx_ref"]
    assert idle_meta["last_activity"] == iso_time(tracked_at)
    await harness.advance(480)
    assert bob_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "away"
    await harness.advance(3000)
    assert bob_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "offline"
    assert len(bob_out.diffs()) == 4


async def test_a_broadcast_is_activity_a_heartbeat_is_not(harness: Harness) -> None:
    alice, _ = await harness.joined("alice", "alice")
    _, bob_out = await harness.joined("bob", "bob")
    await harness.track(alice, {"status": "online"})
    await harness.advance(130)
    assert bob_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "idle"
    heartbeat = {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "h"}
    await alice.receive_text(orjson.dumps(heartbeat))
    assert bob_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "idle"
    await harness.send(alice, "broadcast", {"type": "broadcast", "event": "typing", "payload": {}})
    await asyncio.sleep(0)  # the restored meta is published in the background
    back = bob_out.diffs()[-1]["joins"]["alice"]["metas"][0]
    assert back["status"] == "online" and "last_activity" not in back
    # The clock restarted at the broadcast.
    assert await harness.advance(119) == 0
    assert await harness.advance(1) == 1


async def test_a_new_track_resets_to_online_busy_does_not_idle(harness: Harness) -> None:
    alice, alice_out = await harness.joined("alice", "alice")
    await harness.track(alice, {"status": "online"})
    await harness.advance(200)
    await harness.track(alice, {"status": "online"})  # same payload, but it had decayed
    assert alice_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "online"
    await harness.track(alice, {"status": "busy"})
    await harness.advance(3000)
    assert alice_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "busy"
    await harness.advance(600)
    assert alice_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "offline"


async def test_plain_metas_never_decay(harness: Harness) -> None:
    alice, _ = await harness.joined("alice", "alice")
    _, bob_out = await harness.joined("bob", "bob")
    await harness.track(alice, {"name": "Alice"})
    assert await harness.advance(10_000) == 0
    [join] = bob_out.diffs()
    assert set(join["joins"]["alice"]["metas"][0]) == {"name", "phx_ref"}


async def test_appear_offline_hides_from_others_not_from_self(harness: Harness) -> None:
    alice, alice_out = await harness.joined("alice", "alice")
    _, bob_out = await harness.joined("bob", "bob")
    await harness.track(alice, {"status": "online"})
    [shown] = bob_out.diffs()[-1]["joins"]["alice"]["metas"]
    await harness.track(alice, {"status": "online", "appear_offline": True})
    assert bob_out.diffs()[-1] == {"joins": {}, "leaves": {"alice": {"metas": [shown]}}}
    own = alice_out.diffs()[-1]
    assert own["leaves"] == {"alice": {"metas": [shown]}} and own["joins"]["alice"]
    # Changes while hidden reach the owner only; so does the decay.
    bob_seen = len(bob_out.diffs())
    await harness.advance(120)
    assert alice_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "idle"
    assert len(bob_out.diffs()) == bob_seen
    # A late joiner does not see her; her own second tab does.
    _, carol_out = await harness.joined("carol", "carol")
    assert carol_out.states() == [{}]
    _, tab_out = await harness.joined("alice", "alice-tab")
    assert list(tab_out.states()[0]) == ["alice"]
    # Showing herself again is a join for the others.
    await harness.track(alice, {"status": "online"})
    assert bob_out.diffs()[-1]["leaves"] == {}
    assert bob_out.diffs()[-1]["joins"]["alice"]["metas"][0]["status"] == "online"


async def test_last_seen_is_reported_but_not_while_hidden(harness: Harness) -> None:
    alice, _ = await harness.joined("alice", "alice")
    start = harness.wall.now
    await harness.track(alice, {"status": "online"})
    assert harness.seen.calls == [("alice", "online", start)]
    await harness.advance(10)
    await harness.track(alice, {"status": "online", "appear_offline": True})
    assert harness.seen.calls[-1] == ("alice", "offline", start + 10)
    calls = len(harness.seen.calls)
    await harness.send(alice, "broadcast", {"type": "broadcast", "event": "x", "payload": {}})
    await harness.track(alice, {"status": "busy", "appear_offline": True})
    await harness.send(alice, "presence", {"event": "untrack"})
    assert len(harness.seen.calls) == calls  # nothing while hidden
    await harness.track(alice, {"status": "online"})
    await harness.advance(700)  # away: the leave reports the last activity, not now
    await harness.send(alice, "presence", {"event": "untrack"})
    assert harness.seen.calls[-1] == ("alice", "away", start + 10)
