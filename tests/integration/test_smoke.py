"""A first end-to-end check over real sockets (more in the other integration modules)."""

from __future__ import annotations

import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_join_broadcast_with_self_and_ack(server: RunningServer, vsn: str) -> None:
    client = await server.client("u1", vsn=vsn)
    join_ref, reply = await client.join("room1", {"broadcast": {"self": True, "ack": True}})
    assert reply.payload == {"status": "ok", "response": {"postgres_changes": []}}
    ref = await client.broadcast("room1", join_ref, "msg", {"hello": "world"})
    frames = [await client.recv(), await client.recv()]
    events = {f.event: f for f in frames}
    assert events["broadcast"].payload == {
        "type": "broadcast",
        "event": "msg",
        "payload": {"hello": "world"},
    }
    assert events["phx_reply"].ref == ref
    await client.close()
