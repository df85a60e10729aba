"""Conformance: the official Python client `realtime` 2.34.1 (vsn 1.0.0, fixed) against our server.

Every test drives an unchanged `AsyncRealtimeClient` over real sockets. What the client reports
(subscribe states, broadcast, presence and push callbacks) lands in `Inbox`es that tests await
with timeouts; "nothing arrived" is proved with a later marker message on the same socket (the
server writes each connection's frames in order), never with a fixed sleep.

Besides the callbacks, every text frame the client receives is recorded from realtime-py's own
debug log ("receive: ..."), so tests can also assert the exact frames, and the fixture fails a
test in which the client could not parse a server frame ("Unrecognized message format").

realtime-py leaves timers running after `close()` (push timeouts of 10 s, rejoin timers of up to
30 s after a rate-limited join); the fixture cancels and awaits every task still running code of
the `realtime` package, so nothing outlives a test or is destroyed while pending.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import logging
import re
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import pytest
import realtime
import realtime._async.channel as realtime_channel
import realtime._async.client as realtime_client
from realtime import (
    AsyncRealtimeChannel,
    AsyncRealtimeClient,
    ChannelEvents,
    ChannelStates,
    RealtimeAcknowledgementStatus,
    RealtimeSubscribeStates,
)
from realtime.message import ReplyPostgresChanges

from tests.conftest import TIME_FACTOR, RunningServer
from tests.support.phoenix import PhoenixClient

pytestmark = pytest.mark.conformance

TIMEOUT = 5.0 * TIME_FACTOR
REALTIME_DIR = Path(realtime.__file__).resolve().parent

T = TypeVar("T")
Frame = dict[str, Any]
State = tuple[RealtimeSubscribeStates, Exception | None]


class Inbox(Generic[T]):
    """Values delivered by client callbacks, in order; awaitable by predicate."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = asyncio.Event()

    def put(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_count(
        self,
        n: int,
        predicate: Callable[[T], bool] = lambda _: True,
        *,
        since: int = 0,
        timeout: float = TIMEOUT,
    ) -> list[T]:
        """Wait until `n` items from index `since` on match `predicate`; returns the matches."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    matching = [item for item in self.items[since:] if predicate(item)]
                    if len(matching) >= n:
                        return matching
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"no {n} matching items within {timeout} s; got {self.items!r}"
            ) from None

    async def wait_for(
        self,
        predicate: Callable[[T], bool] = lambda _: True,
        *,
        since: int = 0,
        timeout: float = TIMEOUT,
    ) -> T:
        """The first item from index `since` on that matches `predicate`, waiting if need be."""
        return (await self.wait_count(1, predicate, since=since, timeout=timeout))[0]


@dataclass
class PyClient:
    """One realtime-py client and every text frame it received, as parsed JSON."""

    client: AsyncRealtimeClient
    wire: Inbox[Frame] = field(default_factory=Inbox)
    #: Raw frames realtime-py logged as "Unrecognized message format" (it then drops them).
    unparsed: list[str] = field(default_factory=list)

    def channel(
        self,
        name: str,
        *,
        self_: bool = False,
        ack: bool = False,
        presence_key: str | None = None,
    ) -> AsyncRealtimeChannel:
        config: dict[str, Any] = {
            "broadcast": {"self": self_, "ack": ack},
            "presence": {"key": presence_key or "", "enabled": presence_key is not None},
            "private": False,
        }
        return self.client.channel(name, {"config": config})


class WireLog(logging.Handler):
    """Routes realtime-py's "receive: <frame>" debug records to the client that logged them.

    Each client parses frames in its own `_listen` task, which is the current task while it logs.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.clients: list[PyClient] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return
        owner = next((c for c in self.clients if c.client._listen_task is task), None)
        if owner is None:
            return
        message = record.getMessage()
        if message.startswith("receive: "):
            raw = ast.literal_eval(message.removeprefix("receive: "))
            owner.wire.put(orjson.loads(raw))
        elif message.startswith("Unrecognized message format"):
            owner.unparsed.append(message)


def _runs_realtime_code(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and Path(code.co_filename).resolve().is_relative_to(REALTIME_DIR)


class Clients:
    """Connects realtime-py clients to a server; the fixture closes them all."""

    def __init__(self, server: RunningServer, wire_log: WireLog) -> None:
        self.server = server
        self._wire_log = wire_log

    async def connect(
        self,
        sub: str = "user-1",
        *,
        token: str | None = None,
        server: RunningServer | None = None,
        base_path: str = "/socket",
        **options: Any,
    ) -> PyClient:
        server = server or self.server
        client = AsyncRealtimeClient(
            f"{server.ws_url}{base_path}", token=token or server.token(sub), **options
        )
        py = PyClient(client)
        self._wire_log.clients.append(py)
        await client.connect()
        return py

    async def close_all(self) -> None:
        for py in self._wire_log.clients:
            await py.client.close()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current and _runs_realtime_code(t)]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


@pytest.fixture
async def clients(
    server: RunningServer, server_factory: Callable[..., Any]
) -> AsyncIterator[Clients]:
    # Depends on `server_factory` so that clients close before the servers a test started stop
    # (a server stopping first would send its shutdown frames and trigger reconnect attempts).
    logger = logging.getLogger(realtime_client.__name__)
    wire_log = WireLog()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(wire_log)
    factory = Clients(server, wire_log)
    try:
        yield factory
    finally:
        try:
            await factory.close_all()
        finally:
            logger.removeHandler(wire_log)
            logger.setLevel(level)
    unparsed = [m for c in wire_log.clients for m in c.unparsed]
    assert not unparsed, f"realtime-py could not parse server frames: {unparsed}"


# -- helpers -------------------------------------------------------------------------------------


async def subscribe(channel: AsyncRealtimeChannel) -> Inbox[State]:
    """Subscribe; returns every state the subscribe callback reports (the first is in already)."""
    states: Inbox[State] = Inbox()
    await asyncio.wait_for(channel.subscribe(lambda s, e: states.put((s, e))), TIMEOUT)
    return states


def broadcasts(channel: AsyncRealtimeChannel, event: str = "*") -> Inbox[dict[str, Any]]:
    """The channel's broadcasts as the application gets them, without their `meta`: realtime-py
    passes on the server's message id (checked here) and drops our stream position."""
    inbox: Inbox[dict[str, Any]] = Inbox()

    def put(message: Any) -> None:
        message = dict(message)
        meta = message.pop("meta")
        assert set(meta) == {"id"} and isinstance(meta["id"], str)
        inbox.put(message)

    channel.on_broadcast(event, put)
    return inbox


def event_is(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message["event"] == name


def is_heartbeat_reply(frame: Frame) -> bool:
    return frame["topic"] == "phoenix" and frame["event"] == "phx_reply"


def strip_refs(presences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Presence payloads without their `presence_ref`, which must be a non-empty string."""
    for presence in presences:
        assert isinstance(presence.get("presence_ref"), str) and presence["presence_ref"]
    return [{k: v for k, v in p.items() if k != "presence_ref"} for p in presences]


def user_broadcast_push(
    join_ref: str, ref: str, topic: str, event: str, payload: bytes, encoding: int
) -> bytes:
    """A vsn 2.0.0 binary kind 3 frame (user broadcast push), as realtime-js encodes it."""
    fields = [join_ref.encode(), ref.encode(), topic.encode(), event.encode(), b""]
    header = struct.pack("!7B", 3, *(len(f) for f in fields), encoding)
    return header + b"".join(fields) + payload


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("base_path", ["/socket", "/realtime/v1"])
async def test_connect_and_subscribe(clients: Clients, base_path: str) -> None:
    py = await clients.connect("user-1", base_path=base_path)
    channel = py.channel("room")

    states = await subscribe(channel)

    assert states.items == [(RealtimeSubscribeStates.SUBSCRIBED, None)]
    assert channel.state is ChannelStates.JOINED
    reply = await py.wire.wait_for(lambda f: f["event"] == "phx_reply" and f["ref"] == "1")
    # The stream position (our extension) rides along; realtime-py accepts the reply.
    position = reply["payload"]["response"]["position"]
    assert position["offset"] == 0 and isinstance(position["epoch"], str)
    assert reply == {
        "topic": "realtime:room",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {"postgres_changes": [], "position": position}},
        "ref": "1",
    }
    # realtime-py sends its first heartbeat on connect, with "ref": null; the reply echoes it.
    heartbeat = await py.wire.wait_for(is_heartbeat_reply)
    assert heartbeat == {
        "topic": "phoenix",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {}},
        "ref": None,
    }


async def test_broadcast_to_self_with_ack(clients: Clients) -> None:
    py = await clients.connect("user-1")
    channel = py.channel("room", self_=True, ack=True)
    received = broadcasts(channel, "msg")
    await subscribe(channel)
    acks: Inbox[Any] = Inbox()

    push = await channel.push(
        ChannelEvents.broadcast, {"type": "broadcast", "event": "msg", "payload": {"hello": "x"}}
    )
    push.receive(RealtimeAcknowledgementStatus.Ok, acks.put)
    push.receive(RealtimeAcknowledgementStatus.Error, lambda r: acks.put(("error", r)))

    assert await received.wait_for() == {"event": "msg", "payload": {"hello": "x"}}
    ack = await acks.wait_for()
    assert ack == ReplyPostgresChanges(postgres_changes=None)
    ack_frame = await py.wire.wait_for(lambda f: f["ref"] == push.ref)
    response = ack_frame["payload"]["response"]
    assert set(response) == {"id", "offset", "epoch"} and response["offset"] == 1
    assert ack_frame == {
        "topic": "realtime:room",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": response},
        "ref": push.ref,
    }
    # The high-level API delivers to self too.
    await channel.send_broadcast("msg", {"hello": "y"})
    assert await received.wait_for(lambda m: m["payload"] == {"hello": "y"})


async def test_two_clients_exchange_broadcasts(clients: Clients) -> None:
    alice, bob = await clients.connect("alice"), await clients.connect("bob")
    to_alice = broadcasts(alice_channel := alice.channel("room"))
    to_bob = broadcasts(bob_channel := bob.channel("room"))
    await subscribe(alice_channel)
    await subscribe(bob_channel)

    await alice_channel.send_broadcast("ping", {"from": "alice", "n": 1})
    assert await to_bob.wait_for() == {"event": "ping", "payload": {"from": "alice", "n": 1}}
    await bob_channel.send_broadcast("pong", {"from": "bob", "n": 2})
    assert await to_alice.wait_for() == {"event": "pong", "payload": {"from": "bob", "n": 2}}

    # `self` is false by default: alice's own ping (sent before bob could answer it) would have
    # reached her before the pong; bob's inbox holds only alice's message.
    assert to_alice.items == [{"event": "pong", "payload": {"from": "bob", "n": 2}}]
    assert to_bob.items == [{"event": "ping", "payload": {"from": "alice", "n": 1}}]


async def test_presence_sync_join_and_leave(clients: Clients) -> None:
    alice, bob = await clients.connect("alice"), await clients.connect("bob")
    alice_channel = alice.channel("lobby", presence_key="alice")
    bob_channel = bob.channel("lobby", presence_key="bob")
    syncs: Inbox[dict[str, Any]] = Inbox()
    joins: Inbox[tuple[str, list[Any], list[Any]]] = Inbox()
    leaves: Inbox[tuple[str, list[Any], list[Any]]] = Inbox()
    alice_channel.on_presence_sync(lambda: syncs.put(copy.deepcopy(alice_channel.presence_state())))
    alice_channel.on_presence_join(lambda *args: joins.put(copy.deepcopy(args)))
    alice_channel.on_presence_leave(lambda *args: leaves.put(copy.deepcopy(args)))
    bob_syncs: Inbox[dict[str, Any]] = Inbox()
    bob_channel.on_presence_sync(lambda: bob_syncs.put(copy.deepcopy(bob_channel.presence_state())))

    await subscribe(alice_channel)
    await alice_channel.track({"name": "Alice"})
    await subscribe(bob_channel)
    await bob_channel.track({"name": "Bob"})

    # Both keys with their payloads, on both sides (bob saw alice in his presence_state).
    for inbox in (syncs, bob_syncs):
        state = await inbox.wait_for(lambda s: set(s) == {"alice", "bob"})
        assert strip_refs(state["alice"]) == [{"name": "Alice"}]
        assert strip_refs(state["bob"]) == [{"name": "Bob"}]
    assert set(alice_channel.presence_state()) == {"alice", "bob"}
    _, current, new = await joins.wait_for(lambda j: j[0] == "bob")
    assert current == []
    assert strip_refs(new) == [{"name": "Bob"}]
    assert [j[0] for j in joins.items] == ["alice", "bob"]

    # bob untracks: a leave for bob, alice stays.
    synced = len(syncs.items)
    await bob_channel.untrack()
    _, current, left = await leaves.wait_for(lambda event: event[0] == "bob")
    assert current == []
    assert strip_refs(left) == [{"name": "Bob"}]
    state = await syncs.wait_for(lambda s: set(s) == {"alice"}, since=synced)
    assert strip_refs(state["alice"]) == [{"name": "Alice"}]

    # bob tracks again, then his socket closes: another join, then another leave.
    await bob_channel.track({"name": "Bob again"})
    await joins.wait_count(2, lambda j: j[0] == "bob")
    assert strip_refs(joins.items[-1][2]) == [{"name": "Bob again"}]
    await bob.client.close()
    await leaves.wait_count(2, lambda event: event[0] == "bob")
    assert strip_refs(leaves.items[-1][2]) == [{"name": "Bob again"}]
    assert list(alice_channel.presence_state()) == ["alice"]


async def test_set_auth_refresh_keeps_channel_working(clients: Clients) -> None:
    server = clients.server
    short_ttl = 2.0 * TIME_FACTOR
    # The control client's channel runs on a short-lived token and is closed when it expires.
    control = await clients.connect(token=server.token("user-1", ttl=short_ttl))
    refreshed = await clients.connect(token=server.token("user-1", ttl=short_ttl))
    control_channel = control.channel("room")
    channel = refreshed.channel("room", self_=True, ack=True)
    received = broadcasts(channel)
    control_states = await subscribe(control_channel)
    states = await subscribe(channel)

    await refreshed.client.set_auth(server.token("user-1", ttl=3600))
    await channel.send_broadcast("after-refresh", {"n": 1})
    assert await received.wait_for(event_is("after-refresh"))

    # Once the old token has expired (the control channel proves it), the refreshed channel
    # still works: the server re-verified the new token and moved its expiry.
    await control_states.wait_for(
        lambda s: s[0] is RealtimeSubscribeStates.CLOSED, timeout=short_ttl + TIMEOUT
    )
    assert [s for s, _ in control_states.items] == [
        RealtimeSubscribeStates.SUBSCRIBED,
        RealtimeSubscribeStates.CHANNEL_ERROR,
        RealtimeSubscribeStates.CLOSED,
    ]
    assert "Token has expired" in str(control_states.items[1][1])
    await channel.send_broadcast("after-expiry", {"n": 2})
    assert await received.wait_for(event_is("after-expiry"))
    assert states.items == [(RealtimeSubscribeStates.SUBSCRIBED, None)]
    assert channel.state is ChannelStates.JOINED
    # `access_token` is never answered (Supabase replies {:noreply}); the acked broadcasts were.
    pending = [push.event for push in channel.messages_waiting_for_ack.values()]
    assert pending == [ChannelEvents.access_token]


async def test_set_auth_with_expired_token_closes_channel(clients: Clients) -> None:
    py = await clients.connect("user-1")
    channel = py.channel("room")
    states = await subscribe(channel)

    await py.client.set_auth(clients.server.token("user-1", ttl=-30))

    await states.wait_for(lambda s: s[0] is RealtimeSubscribeStates.CLOSED)
    # What the server sends: a `system` error, then `phx_close` with the join ref.
    system = await py.wire.wait_for(lambda f: f["event"] == "system")
    message = system["payload"]["message"]
    assert re.fullmatch(r"Token has expired \d+ seconds ago", message), message
    assert system == {
        "topic": "realtime:room",
        "event": "system",
        "payload": {
            "extension": "system",
            "status": "error",
            "message": message,
            "channel": "room",
        },
        "ref": None,
    }
    close = py.wire.items[py.wire.items.index(system) + 1]
    assert close == {"topic": "realtime:room", "event": "phx_close", "payload": {}, "ref": "1"}
    # What realtime-py makes of it: the ErrorSystemPayload goes to on_error (CHANNEL_ERROR, the
    # payload as a JSON exception), then phx_close to on_close (CLOSED), which cancels the rejoin
    # that on_error had scheduled and forgets the channel.
    assert [s for s, _ in states.items] == [
        RealtimeSubscribeStates.SUBSCRIBED,
        RealtimeSubscribeStates.CHANNEL_ERROR,
        RealtimeSubscribeStates.CLOSED,
    ]
    error = states.items[1][1]
    assert orjson.loads(str(error)) == system["payload"]
    assert states.items[2][1] is None
    assert channel.state is ChannelStates.CLOSED
    assert channel.rejoin_timer.timer is None
    assert "realtime:room" not in py.client.channels
    assert clients.server.node.hub.count("realtime:room") == 0
    assert py.client.is_connected


async def test_forbidden_channel_is_refused(clients: Clients) -> None:
    py = await clients.connect("user-1")
    own = await subscribe(py.channel("user:user-1"))
    channel = py.channel("user:someone-else")

    states = await subscribe(channel)

    assert own.items == [(RealtimeSubscribeStates.SUBSCRIBED, None)]
    [(state, error)] = states.items
    assert state is RealtimeSubscribeStates.CHANNEL_ERROR
    assert "Unauthorized" in str(error)
    assert orjson.loads(str(error)) == {
        "reason": "Unauthorized: You do not have permissions to read from this Channel topic: "
        "user:someone-else"
    }
    # realtime-py marks the channel errored and schedules a rejoin (1 s); the fixture cancels it.
    assert channel.state is ChannelStates.ERRORED
    assert channel.rejoin_timer.timer is not None


async def test_too_many_channels_for_free_tier(clients: Clients) -> None:
    py = await clients.connect("user-1")
    joined = [await subscribe(py.channel(f"room-{i}")) for i in range(3)]
    fourth = py.channel("room-3")

    states = await subscribe(fourth)

    for states_of_joined in joined:
        assert states_of_joined.items == [(RealtimeSubscribeStates.SUBSCRIBED, None)]
    [(state, error)] = states.items
    assert state is RealtimeSubscribeStates.CHANNEL_ERROR
    reason = orjson.loads(str(error))["reason"]
    assert reason.startswith("ChannelRateLimitReached: Too many channels")
    assert "Maximum 3 channels allowed for free tier" in reason
    # realtime-py treats this code as a rate limit: it retries after 30 s (cancelled on close).
    assert realtime_channel._is_rate_limit_error({"reason": reason})
    assert fourth.state is ChannelStates.ERRORED
    assert fourth.rejoin_timer.timer is not None


async def test_unsubscribed_client_receives_nothing(clients: Clients) -> None:
    leaver, sender = await clients.connect("leaver"), await clients.connect("sender")
    leaver_room = leaver.channel("room")
    to_leaver = broadcasts(leaver_room)
    leaver_marker = leaver.channel("marker")
    markers = broadcasts(leaver_marker)
    sender_room = sender.channel("room", ack=True)
    sender_marker = sender.channel("marker")
    states = await subscribe(leaver_room)
    for channel in (leaver_marker, sender_room, sender_marker):
        await subscribe(channel)
    await sender_room.send_broadcast("before", {"n": 1})
    assert await to_leaver.wait_for() == {"event": "before", "payload": {"n": 1}}

    await leaver_room.unsubscribe()
    await states.wait_for(lambda s: s[0] is RealtimeSubscribeStates.CLOSED)
    assert leaver_room.state is ChannelStates.CLOSED

    acks: Inbox[Any] = Inbox()
    push = await sender_room.push(
        ChannelEvents.broadcast, {"type": "broadcast", "event": "after", "payload": {"n": 2}}
    )
    push.receive(RealtimeAcknowledgementStatus.Ok, acks.put)
    await acks.wait_for()  # the server has fanned it out
    await sender_marker.send_broadcast("marker", {"n": 3})
    assert await markers.wait_for() == {"event": "marker", "payload": {"n": 3}}

    assert to_leaver.items == [{"event": "before", "payload": {"n": 1}}]
    # realtime-py forgets a closed channel and would drop its frames: check the wire too.
    assert [
        (f["topic"], f["payload"]["event"], f["payload"]["payload"])
        for f in leaver.wire.items
        if f["event"] == "broadcast"
    ] == [("realtime:room", "before", {"n": 1}), ("realtime:marker", "marker", {"n": 3})]


async def test_heartbeats_keep_the_connection_alive(
    clients: Clients, server_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    idle_timeout = 1.0 * TIME_FACTOR
    server = await server_factory(idle_timeout_s=idle_timeout)
    # realtime-py sleeps max(hb_interval, 15) s between heartbeats; lift that floor (a `max`
    # shadowing the builtin in its module, used only there) so that many heartbeats fit into a
    # short test. The heartbeat frames themselves are the client's own.
    monkeypatch.setattr(realtime_client, "max", lambda interval, _floor: interval, raising=False)
    hb_interval = idle_timeout / 4
    # Control: a socket that sends nothing is closed by the idle timeout.
    silent = await PhoenixClient.connect(server.ws_url, server.token("silent"))

    py = await clients.connect("user-1", server=server, hb_interval=hb_interval)
    channel = py.channel("room", self_=True)
    received = broadcasts(channel)
    await subscribe(channel)
    heartbeats = await py.wire.wait_count(
        int(2.5 * idle_timeout / hb_interval), is_heartbeat_reply, timeout=5 * TIMEOUT
    )

    assert all(f["ref"] is None and f["payload"]["status"] == "ok" for f in heartbeats)
    await asyncio.wait_for(silent.ws.wait_closed(), TIMEOUT)
    assert silent.ws.close_code == 4000
    # Well past the idle timeout, the heartbeating client is still connected and joined.
    assert py.client.is_connected
    assert channel.state is ChannelStates.JOINED
    await channel.send_broadcast("still-here", {})
    assert await received.wait_for(event_is("still-here"))


async def test_broadcasts_cross_protocol_versions(clients: Clients) -> None:
    py = await clients.connect("py-user")
    py_channel = py.channel("mixed")
    to_py = broadcasts(py_channel)
    await subscribe(py_channel)
    v2 = await clients.server.client("js-user", vsn="2.0.0")
    try:
        join_ref, reply = await v2.join("mixed")
        assert reply.payload["status"] == "ok"

        # realtime-py (1.0.0 JSON) → vsn 2.0.0: a text frame [null, null, topic, event, payload].
        await py_channel.send_broadcast("from-py", {"n": 1})
        frame = await v2.recv_until(lambda f: f.event == "broadcast")
        assert not frame.binary
        meta = frame.raw[4]["meta"]
        assert set(meta) == {"id", "offset", "epoch"}
        assert frame.raw == [
            None,
            None,
            "realtime:mixed",
            "broadcast",
            {"type": "broadcast", "event": "from-py", "payload": {"n": 1}, "meta": meta},
        ]

        # vsn 2.0.0 → realtime-py: a text broadcast, then a binary kind 3 push with a JSON
        # payload, both as ordinary JSON broadcasts; a kind 3 push with a binary payload cannot
        # be expressed in 1.0.0 and is not delivered (the marker after it proves it).
        await v2.broadcast("mixed", join_ref, "from-v2-text", {"n": 2})
        topic = "realtime:mixed"
        await v2.send_raw(
            user_broadcast_push(join_ref, v2.next_ref(), topic, "from-v2-json", b'{"n":3}', 1)
        )
        await v2.send_raw(
            user_broadcast_push(join_ref, v2.next_ref(), topic, "from-v2-bytes", b"\x00\xff", 0)
        )
        await v2.broadcast("mixed", join_ref, "marker", {"n": 4})
        await to_py.wait_for(event_is("marker"))
        assert to_py.items == [
            {"event": "from-v2-text", "payload": {"n": 2}},
            {"event": "from-v2-json", "payload": {"n": 3}},
            {"event": "marker", "payload": {"n": 4}},
        ]
    finally:
        await v2.close()
