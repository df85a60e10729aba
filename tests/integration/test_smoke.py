"""A first end-to-end check over real sockets (more in the other integration modules)."""

from __future__ import annotations

import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_join_broadcast_with_self_and_ack(server: RunningServer, vsn: str) -> None:
    client = await server.client("u1", vsn=vsn)
    join_ref, reply = await client.join("room1", {"broadcast": {"self": True, "ack": True}})
    epoch = reply.payload["response"]["position"]["epoch"]
    assert reply.payload == {
        "status": "ok",
        "response": {"postgres_changes": [], "position": {"offset": 0, "epoch": epoch}},
    }
    ref = await client.broadcast("room1", join_ref, "msg", {"hello": "world"})
    frames = [await client.recv(), await client.recv()]
    events = {f.event: f for f in frames}
    message_id = events["broadcast"].payload["meta"]["id"]
    assert events["broadcast"].payload == {
        "type": "broadcast",
        "event": "msg",
        "payload": {"hello": "world"},
        "meta": {"id": message_id, "offset": 1, "epoch": epoch},
    }
    # The ack says where the message went.
    assert events["phx_reply"].ref == ref
    assert events["phx_reply"].payload == {
        "status": "ok",
        "response": {"id": message_id, "offset": 1, "epoch": epoch},
    }
    await client.close()
