"""History over real sockets: stream positions in `meta`, recovery and replay on join,
idempotent publishing (socket and REST) and the REST history endpoint."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.support.phoenix import Frame, PhoenixClient
from wedsync_realtime.settings import HistoryRule

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]


async def publish(
    server: RunningServer,
    channel: str,
    *payloads: dict[str, Any],
    ids: list[str | None] | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """POST /api/broadcast as the service role; returns the per-message results."""
    messages = [
        {"topic": channel, "event": "msg", "payload": payload}
        | ({"id": ids[i]} if ids and ids[i] else {})
        for i, payload in enumerate(payloads)
    ]
    auth = {"Authorization": f"Bearer {server.token('svc', role='service_role')}"}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.post(
            "/api/broadcast", json={"messages": messages}, headers=auth | (headers or {})
        )
    assert response.status_code == 202, response.text
    results: list[dict[str, Any]] = response.json()["messages"]
    return results


async def broadcasts(client: PhoenixClient, count: int) -> list[dict[str, Any]]:
    """The next `count` broadcast payloads, skipping other frames."""
    return [
        (await client.recv_until(lambda f: f.event == "broadcast")).payload for _ in range(count)
    ]


def position(reply: Frame) -> tuple[int, str]:
    pos = reply.payload["response"]["position"]
    return pos["offset"], pos["epoch"]


async def test_each_channel_numbers_its_messages(server: RunningServer) -> None:
    client = await server.client("u1")
    _, reply_a = await client.join("room-a")
    _, reply_b = await client.join("room-b")
    (offset_a, epoch_a), (offset_b, epoch_b) = position(reply_a), position(reply_b)
    assert offset_a == offset_b == 0 and epoch_a != epoch_b

    await publish(server, "room-a", {"n": 1}, {"n": 2})
    await publish(server, "room-b", {"n": 3})
    await publish(server, "room-a", {"n": 4})
    got = await broadcasts(client, 4)

    assert [(m["payload"]["n"], m["meta"]["offset"], m["meta"]["epoch"]) for m in got] == [
        (1, 1, epoch_a),
        (2, 2, epoch_a),
        (3, 1, epoch_b),
        (4, 3, epoch_a),
    ]
    assert len({m["meta"]["id"] for m in got}) == 4


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_recover_replays_exactly_what_was_missed(server: RunningServer, vsn: str) -> None:
    first = await server.client("u1", vsn=vsn)
    await first.join("room")
    await publish(server, "room", {"n": 1})
    [seen] = await broadcasts(first, 1)
    await first.close()
    missed = await publish(server, "room", *({"n": n} for n in range(2, 7)))

    again = await server.client("u1", vsn=vsn)
    recover = {"offset": seen["meta"]["offset"], "epoch": seen["meta"]["epoch"]}
    _, reply = await again.join("room", {"broadcast": {"recover": recover}})
    assert reply.payload["status"] == "ok"
    assert reply.payload["response"]["recovered"] is True
    assert position(reply) == (6, recover["epoch"])
    replayed = await broadcasts(again, 5)
    assert [m["payload"]["n"] for m in replayed] == [2, 3, 4, 5, 6]
    assert [m["meta"] for m in replayed] == [
        {"id": p["id"], "offset": p["offset"], "epoch": p["epoch"], "replayed": True}
        for p in missed
    ]
    # Live messages follow, unmarked.
    await publish(server, "room", {"n": 7})
    [live] = await broadcasts(again, 1)
    assert live["payload"] == {"n": 7} and "replayed" not in live["meta"]
    assert live["meta"]["offset"] == 7


async def test_recover_with_nothing_missed_is_recovered(server: RunningServer) -> None:
    client = await server.client("u1")
    _, reply = await client.join("room")
    offset, epoch = position(reply)
    _, again = await client.join(
        "room", {"broadcast": {"recover": {"offset": offset, "epoch": epoch}}}
    )
    assert again.payload["response"]["recovered"] is True
    await publish(server, "room", {"n": 1})
    [live] = await broadcasts(client, 1)
    assert live["meta"]["offset"] == 1 and "replayed" not in live["meta"]


async def test_unrecoverable_positions_replay_nothing(server_factory: ServerFactory) -> None:
    server = await server_factory(history_size=3)
    watcher = await server.client("u1")
    _, reply = await watcher.join("room")
    start_offset, epoch = position(reply)
    await publish(server, "room", *({"n": n} for n in range(1, 6)))  # 1 and 2 are trimmed

    cases = {
        "trimmed": {"offset": start_offset, "epoch": epoch},
        "other epoch": {"offset": 4, "epoch": "not-" + epoch},
        "ahead of the stream": {"offset": 99, "epoch": epoch},
    }
    for markers, (case, recover) in enumerate(cases.items()):
        client = await server.client("u2")
        _, reply = await client.join("room", {"broadcast": {"recover": recover}})
        assert reply.payload["response"]["recovered"] is False, case
        assert position(reply) == (5 + markers, epoch), case
        # No partial replay: the next broadcast is the next live one.
        await publish(server, "room", {"marker": case})
        [first] = await broadcasts(client, 1)
        assert first["payload"] == {"marker": case} and "replayed" not in first["meta"], case
        await client.close()


async def test_replay_since_sends_the_newest_messages_first_to_last(server: RunningServer) -> None:
    await publish(server, "room", *({"n": n} for n in range(1, 5)))
    client = await server.client("u1", vsn="2.0.0")
    _, reply = await client.join("room", {"broadcast": {"replay": {"since": 0, "limit": 2}}})
    assert "recovered" not in reply.payload["response"]
    replayed = await broadcasts(client, 2)
    assert [(m["payload"]["n"], m["meta"]["offset"], m["meta"]["replayed"]) for m in replayed] == [
        (3, 3, True),
        (4, 4, True),
    ]
    # Replay is Supabase's: realtime-js joins with it on any channel here, private or not.
    await publish(server, "room", {"n": 5})
    [live] = await broadcasts(client, 1)
    assert live["payload"] == {"n": 5}


async def test_channels_without_history(server_factory: ServerFactory) -> None:
    server = await server_factory(history_rules=(HistoryRule("typing:*", 0, -1),))
    client = await server.client("u1")
    join_ref, reply = await client.join("typing:form-1", {"broadcast": {"self": True}})
    assert reply.payload == {"status": "ok", "response": {"postgres_changes": []}}
    await client.broadcast("typing:form-1", join_ref, "typing", {"field": "venue"})
    [message] = await broadcasts(client, 1)
    assert set(message["meta"]) == {"id"}

    _, refused = await client.join("typing:form-2", {"broadcast": {"replay": {"since": 0}}})
    assert refused.payload == {
        "status": "error",
        "response": {
            "reason": "UnableToReplayMessages: Channel typing:form-2 keeps no history to replay"
        },
    }
    _, reply = await client.join(
        "typing:form-3", {"broadcast": {"recover": {"offset": 3, "epoch": "e"}}}
    )
    assert reply.payload["response"] == {"postgres_changes": [], "recovered": False}


async def test_a_message_id_is_published_once(server: RunningServer) -> None:
    sender = await server.client("sender")
    receiver = await server.client("receiver")
    join_ref, _ = await sender.join("room", {"broadcast": {"ack": True}})
    await receiver.join("room")
    acks = []
    for _ in range(2):
        ref = sender.next_ref()
        body = {"type": "broadcast", "event": "msg", "payload": {"n": 1}, "meta": {"id": "m-1"}}
        await sender.send("realtime:room", "broadcast", body, ref, join_ref)
        acks.append((await sender.reply_to(ref)).payload["response"])
    epoch = acks[0]["epoch"]
    assert acks == [
        {"id": "m-1", "offset": 1, "epoch": epoch},
        {"id": "m-1", "offset": 1, "epoch": epoch, "duplicate": True},
    ]
    await publish(server, "room", {"marker": True})
    got = await broadcasts(receiver, 2)
    assert [(m["meta"]["id"], m["meta"]["offset"]) for m in got] == [
        ("m-1", 1),
        (got[1]["meta"]["id"], 2),
    ]
    assert got[1]["payload"] == {"marker": True}


async def test_rest_publishing_is_idempotent(server: RunningServer) -> None:
    receiver = await server.client("receiver")
    await receiver.join("room")
    first = await publish(server, "room", {"n": 1}, ids=["order-1"])
    again = await publish(server, "room", {"n": 1}, ids=["order-1"])
    assert first[0]["duplicate"] is False and again[0]["duplicate"] is True
    assert again[0]["offset"] == first[0]["offset"]

    key = {"Idempotency-Key": "batch-7"}
    batch = await publish(server, "room", {"n": 2}, {"n": 3}, headers=key)
    retried = await publish(server, "room", {"n": 2}, {"n": 3}, headers=key)
    assert [m["id"] for m in batch] == ["batch-7:0", "batch-7:1"]
    assert [m["duplicate"] for m in retried] == [True, True]

    await publish(server, "room", {"marker": True})
    got = await broadcasts(receiver, 4)
    assert [m["payload"] for m in got] == [{"n": 1}, {"n": 2}, {"n": 3}, {"marker": True}]


async def test_bad_history_requests_get_clear_errors(server: RunningServer) -> None:
    client = await server.client("u1")
    bystander = await server.client("u2")
    await bystander.join("room")
    bad_configs = {
        "`config.broadcast.recover.offset` must be a non-negative integer": {
            "recover": {"offset": -1, "epoch": "e"}
        },
        "`config.broadcast.recover.epoch` must be a string": {"recover": {"offset": 1}},
        "`config.broadcast`: give `replay` or `recover`, not both": {
            "recover": {"offset": 1, "epoch": "e"},
            "replay": {"since": 0},
        },
    }
    for reason, broadcast in bad_configs.items():
        _, reply = await client.join("room", {"broadcast": broadcast})
        assert reply.payload["status"] == "error"
        assert reason in reply.payload["response"]["reason"]

    join_ref, _ = await client.join("room", {"broadcast": {"ack": True}})
    for bad_id in ("", "x" * 129, 7):
        ref = client.next_ref()
        body = {"type": "broadcast", "event": "msg", "payload": {}, "meta": {"id": bad_id}}
        await client.send("realtime:room", "broadcast", body, ref, join_ref)
        reply = await client.reply_to(ref)
        assert reply.payload == {
            "status": "error",
            "response": {
                "reason": "InvalidMessage: broadcast `meta.id` must be a string of 1 to 128 "
                "characters"
            },
        }
    # Nothing was published; the bystander gets the next message first.
    await publish(server, "room", {"after": True})
    [first] = await broadcasts(bystander, 1)
    assert first["payload"] == {"after": True} and first["meta"]["offset"] == 1


async def test_rest_history(server_factory: ServerFactory) -> None:
    server = await server_factory(history_rules=(HistoryRule("typing:*", 0, -1),))
    published = await publish(server, "room", *({"n": n} for n in range(1, 5)))
    epoch = published[0]["epoch"]
    sender = await server.client("u1", vsn="2.0.0")
    join_ref, _ = await sender.join("room", {"broadcast": {"ack": True}})
    ref = sender.next_ref()
    topic, event = b"realtime:room", b"bin"
    header = bytes([3, len(join_ref), len(ref), len(topic), len(event), 0, 0])
    await sender.send_raw(header + join_ref.encode() + ref.encode() + topic + event + b"\x00\xff")
    await sender.reply_to(ref)

    user = {"Authorization": f"Bearer {server.token('u1')}"}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        everything = (await http.get("/api/channels/room/history", headers=user)).json()
        assert everything["channel"] == "room"
        assert everything["position"] == {"offset": 5, "epoch": epoch}
        assert everything["recoverable"] is True
        messages = everything["messages"]
        assert [(m["offset"], m["payload"]) for m in messages[:4]] == [
            (n, {"n": n}) for n in range(1, 5)
        ]
        assert [m["id"] for m in messages[:4]] == [p["id"] for p in published]
        assert messages[4] | {"id": "", "time_ms": 0} == {
            "id": "",
            "offset": 5,
            "time_ms": 0,
            "event": "bin",
            "payload": base64.b64encode(b"\x00\xff").decode(),
            "binary": True,
        }

        after = await http.get(
            "/api/channels/room/history",
            params={"since_offset": 3, "epoch": epoch, "limit": 1},
            headers=user,
        )
        assert [m["offset"] for m in after.json()["messages"]] == [4]
        top_only = await http.get("/api/channels/room/history?limit=0", headers=user)
        assert top_only.json()["messages"] == [] and top_only.json()["position"]["offset"] == 5
        stale = await http.get(
            "/api/channels/room/history", params={"since_offset": 1, "epoch": "old"}, headers=user
        )
        assert stale.json()["recoverable"] is False and stale.json()["messages"] == []

        no_token = await http.get("/api/channels/room/history")
        assert no_token.status_code == 401
        forbidden = await http.get("/api/channels/user:someone-else/history", headers=user)
        assert forbidden.status_code == 403
        assert "user:someone-else" in forbidden.json()["message"]
        no_history = await http.get("/api/channels/typing:x/history", headers=user)
        assert no_history.status_code == 404
        assert no_history.json() == {"message": "Channel typing:x keeps no history"}
        half = await http.get("/api/channels/room/history?since_offset=1", headers=user)
        assert half.status_code == 422
        assert half.json() == {"message": "give `since_offset` and `epoch` together"}
