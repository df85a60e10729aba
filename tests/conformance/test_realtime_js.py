"""Conformance: the official `@supabase/realtime-js` 2.119.0 client against our real server.

Each `JsClient` is one Node process running `js/driver.mjs` (one `RealtimeClient`), driven by
JSON-line commands on stdin; everything the client reports comes back as JSON-line events on
stdout, including every WebSocket frame in both directions. Tests await specific events with
timeouts, never fixed sleeps; "nothing arrived" is proved with a later message on the same socket
as a barrier (the server writes each connection's frames in order).

Needs Node and `npm ci` in tests/conformance/js (`make test` does it). Without them the tests are
skipped, except on CI (`CI=true`), where that is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import TIME_FACTOR, RunningServer

pytestmark = pytest.mark.conformance

JS_DIR = Path(__file__).parent / "js"
DRIVER = JS_DIR / "driver.mjs"
TIMEOUT = 10.0 * TIME_FACTOR

Event = dict[str, Any]


def _missing_js() -> str | None:
    """Why the JS client cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (realtime-js conformance tests need Node >= 20)"
    for package in ("@supabase/realtime-js", "ws"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            return (
                f"{JS_DIR / 'node_modules' / package} is missing: run "
                f"`npm ci --no-audit --no-fund` in {JS_DIR} (`make test` does it)"
            )
    return None


class JsClient:
    """One realtime-js client in a Node process: send commands, await events."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.events: list[Event] = []
        self._consumed: set[int] = set()
        self._new = asyncio.Event()
        self._stderr: list[str] = []
        self._ids = itertools.count(1)
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(cls, name: str) -> JsClient:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,  # one event per line, frames included
        )
        return cls(proc, name)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # something else printed to stdout: keep it for reports
                event = {"type": "stdout", "line": line.decode(errors="replace").rstrip()}
            self.events.append(event)
            self._new.set()
        self.events.append({"type": "exited"})
        self._new.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace").rstrip())

    # -- events --------------------------------------------------------------------------------

    @staticmethod
    def _matches(
        event: Event, type_: str, fields: dict[str, Any], where: Callable[[Event], bool] | None
    ) -> bool:
        return (
            event["type"] == type_
            and all(event.get(k) == v for k, v in fields.items())
            and (where is None or where(event))
        )

    def seen(self, type_: str, **fields: Any) -> list[Event]:
        """Every event so far of `type_` with these field values (consumed or not)."""
        return [e for e in self.events if self._matches(e, type_, fields, None)]

    async def wait_for(
        self,
        type_: str,
        timeout: float = TIMEOUT,
        where: Callable[[Event], bool] | None = None,
        **fields: Any,
    ) -> Event:
        """The first not yet awaited event of `type_` with these field values (and `where`)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._new.clear()
                    for index, event in enumerate(self.events):
                        if index in self._consumed:
                            continue
                        if self._matches(event, type_, fields, where):
                            self._consumed.add(index)
                            return event
                    if self.events and self.events[-1]["type"] == "exited":
                        break
                    await self._new.wait()
        except TimeoutError:
            pass
        raise AssertionError(
            f"{self.name}: no {type_} event with {fields} within {timeout} s\n{self.transcript()}"
        )

    def transcript(self) -> str:
        """Everything the client reported, for failure messages."""
        lines = [json.dumps(e) for e in self.events[-60:]]
        if self._stderr:
            lines += ["stderr:", *self._stderr[-20:]]
        return "\n".join(lines)

    def frames(self, direction: str) -> list[Any]:
        """WebSocket frames sent ("out") or received ("in"): JSON values, or bytes if binary."""
        return [
            bytes.fromhex(e["data"]) if e["binary"] else json.loads(e["data"])
            for e in self.seen("frame", dir=direction)
        ]

    # -- commands ------------------------------------------------------------------------------

    async def command(self, cmd: str, timeout: float = TIMEOUT, **args: Any) -> Any:
        """Run one driver command and return its result (what the client's promise gave)."""
        ident = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": ident, "cmd": cmd, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        reply = await self.wait_for("reply", timeout, id=ident)
        if not reply["ok"]:
            raise AssertionError(f"{self.name}: {cmd} failed: {reply['error']}")
        return reply["result"]

    async def join(
        self,
        channel: str,
        config: dict[str, Any] | None = None,
        *,
        presence: bool = False,
        expect: str = "SUBSCRIBED",
    ) -> Event:
        """Create `channel`, listen to every broadcast (and presence), subscribe, await `expect`."""
        await self.command("channel", name=channel, config=config or {})
        await self.command("on_broadcast", channel=channel)
        if presence:
            await self.command("on_presence", channel=channel)
        await self.command("subscribe", channel=channel)
        return await self.wait_for("status", channel=channel, status=expect)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd": "exit"}\n')
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5 * TIME_FACTOR)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


JsFactory = Callable[..., Awaitable[JsClient]]


@pytest.fixture
async def js() -> AsyncIterator[JsFactory]:
    """`await js(server, "alice", vsn=None, token=None)`: a connected realtime-js client."""
    missing = _missing_js()
    if missing is not None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"realtime-js conformance tests cannot run on CI: {missing}")
        pytest.skip(missing)
    clients: list[JsClient] = []

    async def start(
        server: RunningServer, sub: str, *, vsn: str | None = None, token: str | None = None
    ) -> JsClient:
        client = await JsClient.start(sub)
        clients.append(client)
        await client.command(
            "connect",
            url=f"{server.ws_url}/socket",
            token=token or server.token(sub),
            **({"vsn": vsn} if vsn else {}),
        )
        await client.wait_for("socket", state="open")
        return client

    try:
        yield start
    finally:
        for client in clients:
            await client.close()


def _event(frame: Any) -> str:
    """The event of a decoded frame: a 2.0.0 array, a 1.0.0 object, or a binary broadcast."""
    if isinstance(frame, bytes):
        # Kind 3 (user broadcast push, client → server) and kind 4 (user broadcast, back).
        return "broadcast" if frame[0] in (3, 4) else f"binary kind {frame[0]}"
    return str(frame[3] if isinstance(frame, list) else frame["event"])


def _broadcasts(client: JsClient, direction: str) -> list[Any]:
    return [f for f in client.frames(direction) if _event(f) == "broadcast"]


def _presences(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A presenceState() without the server-chosen `presence_ref`s."""
    return {
        key: [{k: v for k, v in meta.items() if k != "presence_ref"} for meta in metas]
        for key, metas in state.items()
    }


# -- connect and subscribe ---------------------------------------------------------------------


@pytest.mark.parametrize("vsn", [None, "1.0.0"], ids=["vsn-default", "vsn-1.0.0"])
async def test_connect_and_subscribe(server: RunningServer, js: JsFactory, vsn: str | None) -> None:
    alice = await js(server, "alice", vsn=vsn)
    await alice.join("room1")
    join = next(f for f in alice.frames("out") if _event(f) == "phx_join")
    if vsn is None:  # 2.0.0 is the default of realtime-js 2.119.0: arrays
        topic, payload = join[2], join[4]
    else:
        topic, payload = join["topic"], join["payload"]
    assert topic == "realtime:room1"
    # No access_token before setAuth(): the server authorizes the join with the connect token.
    assert payload == {
        "config": {
            "broadcast": {"ack": False, "self": False},
            "presence": {"key": "", "enabled": False},
            "postgres_changes": [],
            "private": False,
        }
    }
    assert alice.seen("status", status="CHANNEL_ERROR") == []


# -- broadcast -----------------------------------------------------------------------------------


def _meta(message: dict[str, Any]) -> dict[str, Any]:
    """The server's `meta` of a delivered broadcast: message id and stream position."""
    meta = message["meta"]
    assert set(meta) == {"id", "offset", "epoch"}
    assert isinstance(meta["id"], str) and isinstance(meta["epoch"], str)
    assert isinstance(meta["offset"], int)
    return dict(meta)


@pytest.mark.parametrize("vsn", [None, "1.0.0"], ids=["vsn-default", "vsn-1.0.0"])
async def test_broadcast_self_and_ack(
    server: RunningServer, js: JsFactory, vsn: str | None
) -> None:
    alice = await js(server, "alice", vsn=vsn)
    await alice.join("room1", {"broadcast": {"self": True, "ack": True}})

    result = await alice.command("send", channel="room1", event="msg", payload={"hello": "world"})

    assert result == "ok"
    received = await alice.wait_for("broadcast", channel="room1")
    # The server's `meta` (message id and stream position) reaches the callback untouched.
    meta = _meta(received["message"])
    assert meta["offset"] == 1
    assert received["message"] == {
        "type": "broadcast",
        "event": "msg",
        "payload": {"hello": "world"},
        "meta": meta,
    }
    (sent,) = _broadcasts(alice, "out")
    (got,) = _broadcasts(alice, "in")
    if vsn is None:
        # 2.0.0: a binary kind 3 user broadcast push out (JSON encoding), and back a kind 4
        # user broadcast: kind, topic/event/metadata lengths, encoding, then the fields.
        assert isinstance(sent, bytes) and sent[0] == 3 and sent[6] == 1
        meta_b = orjson.dumps(meta)
        assert got == (
            bytes([4, 14, 3, len(meta_b), 1]) + b"realtime:room1msg" + meta_b + b'{"hello":"world"}'
        )
    else:
        assert sent["topic"] == "realtime:room1" and sent["event"] == "broadcast"
        assert sent["payload"] == {
            "type": "broadcast",
            "event": "msg",
            "payload": {"hello": "world"},
        }
        assert got == {
            "topic": "realtime:room1",
            "event": "broadcast",
            "payload": {
                "type": "broadcast",
                "event": "msg",
                "payload": {"hello": "world"},
                "meta": meta,
            },
            "ref": None,
        }


async def test_two_js_clients_exchange_broadcasts(server: RunningServer, js: JsFactory) -> None:
    alice, bob = await js(server, "alice"), await js(server, "bob")
    await alice.join("room1", {"broadcast": {"ack": True}})
    await bob.join("room1", {"broadcast": {"ack": True}})

    assert await alice.command("send", channel="room1", event="ping", payload={"n": 1}) == "ok"
    got = await bob.wait_for("broadcast", channel="room1")
    ping_meta = _meta(got["message"])
    assert got["message"] == {
        "type": "broadcast",
        "event": "ping",
        "payload": {"n": 1},
        "meta": ping_meta,
    }

    assert await bob.command("send", channel="room1", event="pong", payload={"n": 2}) == "ok"
    got = await alice.wait_for("broadcast", channel="room1")
    pong_meta = _meta(got["message"])
    assert got["message"] == {
        "type": "broadcast",
        "event": "pong",
        "payload": {"n": 2},
        "meta": pong_meta,
    }
    # One stream per channel: the second message is the next offset of the same epoch.
    assert (pong_meta["offset"], pong_meta["epoch"]) == (2, ping_meta["epoch"])

    # self: false: neither got its own message (each ack came after its fan-out).
    assert [e["message"]["event"] for e in alice.seen("broadcast")] == ["pong"]
    assert [e["message"]["event"] for e in bob.seen("broadcast")] == ["ping"]


@pytest.mark.parametrize("vsn", [None, "1.0.0"], ids=["vsn-default", "vsn-1.0.0"])
async def test_broadcast_replay_on_join(
    server: RunningServer, js: JsFactory, vsn: str | None
) -> None:
    # Published before alice joins; realtime-js asks for replay on private channels only.
    service = {"Authorization": f"Bearer {server.token('svc', role='service_role')}"}
    messages = [{"topic": "user:alice", "event": "note", "payload": {"n": n}} for n in (1, 2, 3)]
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.post("/api/broadcast", json={"messages": messages}, headers=service)
    assert response.status_code == 202
    alice = await js(server, "alice", vsn=vsn)

    await alice.join(
        "user:alice", {"private": True, "broadcast": {"replay": {"since": 0, "limit": 2}}}
    )

    replayed = [await alice.wait_for("broadcast", channel="user:alice") for _ in range(2)]
    assert [(e["message"]["payload"], e["message"]["meta"]["replayed"]) for e in replayed] == [
        ({"n": 2}, True),
        ({"n": 3}, True),
    ]
    assert [e["message"]["meta"]["offset"] for e in replayed] == [2, 3]


async def test_js_v2_and_raw_v1_client_exchange_broadcasts(
    server: RunningServer, js: JsFactory
) -> None:
    alice = await js(server, "alice")
    await alice.join("room1", {"broadcast": {"ack": True}})
    py = await server.client("py-user", vsn="1.0.0")
    try:
        join_ref, reply = await py.join("room1")
        assert reply.payload["status"] == "ok"

        # JS (2.0.0) sends a binary kind 3 frame; the 1.0.0 client gets a JSON broadcast.
        sent = await alice.command("send", channel="room1", event="hi", payload={"from": "js"})
        assert sent == "ok"
        assert _broadcasts(alice, "out")[-1][0] == 3
        frame = await py.recv_until(lambda f: f.event == "broadcast")
        assert not frame.binary
        js_meta = _meta(frame.payload)
        assert frame.raw == {
            "topic": "realtime:room1",
            "event": "broadcast",
            "payload": {
                "type": "broadcast",
                "event": "hi",
                "payload": {"from": "js"},
                "meta": js_meta,
            },
            "ref": None,
        }

        # The 1.0.0 client's JSON broadcast reaches the JS client as a 2.0.0 text frame.
        await py.broadcast("room1", join_ref, "hi", {"from": "py"})
        got = await alice.wait_for("broadcast", channel="room1")
        py_meta = _meta(got["message"])
        expected = {"type": "broadcast", "event": "hi", "payload": {"from": "py"}, "meta": py_meta}
        assert got["message"] == expected
        assert _broadcasts(alice, "in")[-1] == [None, None, "realtime:room1", "broadcast", expected]
    finally:
        await py.close()


# -- presence ------------------------------------------------------------------------------------


async def test_presence_track_untrack_and_disconnect(server: RunningServer, js: JsFactory) -> None:
    alice, bob = await js(server, "alice"), await js(server, "bob")
    await alice.join("lobby", {"presence": {"key": "alice"}}, presence=True)
    await alice.wait_for("presence", channel="lobby", event="sync")  # the empty presence_state

    assert await alice.command("track", channel="lobby", payload={"name": "Alice"}) == "ok"
    joined = await alice.wait_for("presence", event="join", key="alice")
    assert _presences({"alice": joined["newPresences"]}) == {"alice": [{"name": "Alice"}]}
    synced = await alice.wait_for("presence", event="sync")
    assert _presences(synced["state"]) == {"alice": [{"name": "Alice"}]}

    # Bob joins after Alice tracked: his presence_state already has her.
    await bob.join("lobby", {"presence": {"key": "bob"}}, presence=True)
    synced = await bob.wait_for("presence", event="sync")
    assert _presences(synced["state"]) == {"alice": [{"name": "Alice"}]}
    assert await bob.command("track", channel="lobby", payload={"name": "Bob"}) == "ok"
    joined = await alice.wait_for("presence", event="join", key="bob")
    assert _presences({"bob": joined["newPresences"]}) == {"bob": [{"name": "Bob"}]}
    assert joined["newPresences"][0]["presence_ref"]
    synced = await alice.wait_for("presence", event="sync")
    assert _presences(synced["state"]) == {
        "alice": [{"name": "Alice"}],
        "bob": [{"name": "Bob"}],
    }
    await bob.wait_for("presence", event="join", key="bob")

    # untrack: a leave for bob, Alice alone again.
    assert await bob.command("untrack", channel="lobby") == "ok"
    left = await alice.wait_for("presence", event="leave", key="bob")
    assert _presences({"bob": left["leftPresences"]}) == {"bob": [{"name": "Bob"}]}
    synced = await alice.wait_for("presence", event="sync")
    assert _presences(synced["state"]) == {"alice": [{"name": "Alice"}]}

    # Track again, then drop the whole socket: the server untracks and Alice sees a leave.
    assert await bob.command("track", channel="lobby", payload={"name": "Bob", "v": 2}) == "ok"
    await alice.wait_for("presence", event="join", key="bob")
    await alice.wait_for("presence", event="sync")
    await bob.command("disconnect")
    left = await alice.wait_for("presence", event="leave", key="bob")
    assert _presences({"bob": left["leftPresences"]}) == {"bob": [{"name": "Bob", "v": 2}]}
    synced = await alice.wait_for("presence", event="sync")
    assert _presences(synced["state"]) == {"alice": [{"name": "Alice"}]}


# -- token refresh -------------------------------------------------------------------------------


async def test_set_auth_keeps_the_channel_working(server: RunningServer, js: JsFactory) -> None:
    alice = await js(server, "alice")
    await alice.join("room1", {"broadcast": {"self": True, "ack": True}})
    fresh = server.token("alice", ttl=7200, refreshed=True)

    await alice.command("set_auth", token=fresh)

    # realtime-js pushes access_token to the joined channel (the server never replies to it).
    (push,) = [f for f in alice.frames("out") if _event(f) == "access_token"]
    assert push[2:] == ["realtime:room1", "access_token", {"access_token": fresh}]
    assert await alice.command("send", channel="room1", event="msg", payload={"n": 1}) == "ok"
    got = await alice.wait_for("broadcast", channel="room1")
    assert got["message"]["payload"] == {"n": 1}
    # The server handled access_token before the broadcast (same socket): the channel now acts
    # as the refreshed token.
    (conn,) = [c for c in server.node.connections.values() if c.principal.user_id == "alice"]
    assert conn.memberships["realtime:room1"].principal.token == fresh
    assert alice.seen("status", status="CLOSED") == []
    assert alice.seen("status", status="CHANNEL_ERROR") == []


async def test_set_auth_with_an_expired_token_closes_the_channel(
    server: RunningServer, js: JsFactory
) -> None:
    alice = await js(server, "alice")
    await alice.join("room1")

    await alice.command("set_auth", token=server.token("alice", ttl=-30))

    system = await alice.wait_for("system", channel="room1")
    assert system["payload"]["extension"] == "system"
    assert system["payload"]["status"] == "error"
    assert system["payload"]["channel"] == "room1"
    assert system["payload"]["message"].startswith("Token has expired")
    # Then phx_close: realtime-js reports CLOSED (no rejoin after a close).
    await alice.wait_for("status", channel="room1", status="CLOSED")
    join_ref = next(f[0] for f in alice.frames("out") if _event(f) == "phx_join")
    system_frame, close_frame = alice.frames("in")[-2:]
    assert system_frame == [join_ref, None, "realtime:room1", "system", system["payload"]]
    assert close_frame == [join_ref, join_ref, "realtime:room1", "phx_close", {}]
    assert alice.seen("status", status="CHANNEL_ERROR") == []
    assert [c.memberships for c in server.node.connections.values()] == [{}]


# -- refusals ------------------------------------------------------------------------------------


async def test_joining_another_users_channel_is_unauthorized(
    server: RunningServer, js: JsFactory
) -> None:
    alice = await js(server, "alice")
    await alice.join("user:alice")

    refused = await alice.join("user:bob", expect="CHANNEL_ERROR")

    assert "Unauthorized" in refused["error"]
    assert "user:bob" in refused["error"]
    assert alice.seen("status", channel="user:bob", status="SUBSCRIBED") == []


async def test_fourth_channel_of_a_free_tier_user_is_refused(
    server: RunningServer, js: JsFactory
) -> None:
    alice = await js(server, "alice")
    for n in (1, 2, 3):
        await alice.join(f"room{n}")

    refused = await alice.join("room4", expect="CHANNEL_ERROR")

    assert "ChannelRateLimitReached: Too many channels" in refused["error"]
    assert "Maximum 3 channels allowed for free tier" in refused["error"]
    assert alice.seen("status", channel="room4", status="SUBSCRIBED") == []


# -- leave ---------------------------------------------------------------------------------------


async def test_unsubscribe_closes_and_stops_delivery(server: RunningServer, js: JsFactory) -> None:
    alice, bob = await js(server, "alice"), await js(server, "bob")
    for client in (alice, bob):
        await client.join("room1", {"broadcast": {"ack": True}})
        await client.join("lobby", {"broadcast": {"ack": True}})

    topic = "realtime:room1"
    assert await alice.command("unsubscribe", channel="room1") == "ok"
    await alice.wait_for("status", channel="room1", status="CLOSED")
    # realtime-js reports the leave at once (phoenix `leave()` triggers "ok" locally as soon as
    # the channel is "leaving"); the server's reply and phx_close follow. Wait for the close.
    await alice.wait_for(
        "frame",
        dir="in",
        binary=False,
        where=lambda e: json.loads(e["data"])[2:4] == [topic, "phx_close"],
    )
    left_at = len(alice.events)

    assert await bob.command("send", channel="room1", event="after-leave", payload={}) == "ok"
    assert await bob.command("send", channel="lobby", event="barrier", payload={}) == "ok"

    got = await alice.wait_for("broadcast", channel="lobby")
    assert got["message"]["event"] == "barrier"
    # Nothing for room1 reached the socket after the leave, not even a frame the client dropped.
    later = alice.events[left_at:]
    assert not [
        e
        for e in later
        if e["type"] == "frame" and (topic in e["data"] or topic.encode().hex() in e["data"])
    ]
    assert alice.seen("broadcast", channel="room1") == []
