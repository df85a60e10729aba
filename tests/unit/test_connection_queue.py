"""The connection's send path: direct writes while the socket has room, a bounded queue while it
is paused, and never a frame overtaking one queued before it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import make_settings
from wedsync_realtime.app import build_node
from wedsync_realtime.engine.connection import Connection
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import CloseCode
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame


class PausableTransport:
    """Behaves like FastWebSocketProtocol under flow control: direct writes only while
    writable, `send` waits until writable."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.written: list[OutFrame] = []
        self.closed: tuple[int, str] | None = None
        self.aborted = False

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        if not self.writable.is_set():
            return False
        self.written.append(frame)
        return True

    async def send(self, frame: OutFrame) -> None:
        await self.writable.wait()
        self.written.append(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with build_node(make_settings(send_queue_max=4)) as node:
        yield node


def connect(node: Node) -> Connection:
    verifier = node.verifier
    token = verifier.sign({"sub": "u1", "role": "authenticated", "exp": time.time() + 60})
    return node.connect(verifier.verify(token), ProtocolVersion.V1)


async def test_queued_frame_is_never_overtaken(node: Node) -> None:
    conn, transport = connect(node), PausableTransport()
    writer = asyncio.create_task(conn.write_loop(transport))
    await asyncio.sleep(0)
    transport.writable.clear()  # the socket's buffer is above its high-water mark
    conn.send("A")
    await asyncio.sleep(0)  # the writer took A and waits for the socket
    transport.writable.set()  # room again, but the writer has not run yet
    conn.send("B")
    conn.close(CloseCode.NORMAL, "")
    await asyncio.wait_for(writer, 5)
    assert transport.written == ["A", "B"]


async def test_writes_directly_while_writable(node: Node) -> None:
    conn, transport = connect(node), PausableTransport()
    writer = asyncio.create_task(conn.write_loop(transport))
    await asyncio.sleep(0)
    conn.send("A")
    assert transport.written == ["A"]  # no task switch needed
    conn.close(CloseCode.NORMAL, "")
    await asyncio.wait_for(writer, 5)
    assert transport.closed == (CloseCode.NORMAL, "")


async def test_overflowing_queue_aborts_a_slow_consumer(node: Node) -> None:
    conn, transport = connect(node), PausableTransport()
    writer = asyncio.create_task(conn.write_loop(transport))
    await asyncio.sleep(0)
    transport.writable.clear()
    for n in range(6):  # one taken by the blocked writer, 4 queued, then overflow
        conn.send(f"m{n}")
        await asyncio.sleep(0)
    assert transport.aborted and conn.closing
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
