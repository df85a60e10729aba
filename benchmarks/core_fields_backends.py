"""The backend-specific half of the Core Fields benchmark: how a change is written.

`benchmarks.core_fields` measures; a `Backend` says where the `SeedPlan` is stored before the
server starts, which ``WEDSYNC_*`` variables point the server at it, and gives the
`ChangeWriter` that makes each change. Everything else (connections, clock, accounting) is
shared.

* `EmbeddedBackend` (``--backend embedded``, the default): the plan goes into the SQLite file of
  the server's data directory (`benchmarks.wedsync_seed.seed_sqlite`), and a change is a
  ``PATCH /api/wedsync/couples/{C}/core-fields`` by the couple's own user (`RestWriter`), whose
  handler stores the change and routes its ``core_fields_updated`` event before answering.
* `benchmarks.core_fields_postgres.PostgresBackend` (``--backend postgres``): the plan goes
  into a fresh migrated PostgreSQL database, and a change is the platform's committed UPDATE of
  ``core_field_values``; its event comes through change capture.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import orjson

from benchmarks.fanout import ServerProcess
from benchmarks.wedsync_seed import SeedPlan, seed_sqlite
from benchmarks.wsclient import LOOPBACK
from wedsync_realtime.wedding.events import JsonValue

__all__ = ["BACKENDS", "Backend", "Change", "ChangeWriter", "EmbeddedBackend", "RestWriter"]


@dataclass(slots=True)
class Change:
    """One core-field change the generator makes."""

    seq: int
    couple: int
    field_name: str
    value: JsonValue
    expected_version: int
    measured: bool
    scheduled_ns: int = 0
    #: When the write left this process (the latency's origin); set by the `ChangeWriter`.
    sent_ns: int = 0
    done_ns: int = 0
    #: HTTP status (or 200 for a committed statement); 0 while in flight, -1 on a transport error.
    status: int = 0
    error: str = ""
    #: field name -> (value, version) of every field the write changed (auto-filled included).
    updated: dict[str, tuple[JsonValue, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


class ChangeWriter(Protocol):
    async def write(self, change: Change) -> None:
        """Write `change`: set `sent_ns` (``time.perf_counter_ns()``) just before the write
        leaves this process, then `done_ns`, `status` and `updated` (or `error`). Never raises
        for a failed write."""
        ...

    async def close(self) -> None: ...


class Backend(Protocol):
    name: str

    async def seed(self, plan: SeedPlan, workdir: Path) -> None:
        """Store `plan` where the server will read it (before the server starts)."""
        ...

    def server_env(self, workdir: Path) -> dict[str, str]:
        """`WEDSYNC_*` variables that point the server at the seeded data."""
        ...

    async def open_writer(
        self, server: ServerProcess, plan: SeedPlan, couple_tokens: Sequence[str], size: int
    ) -> ChangeWriter:
        """A writer of changes, with up to `size` writes in flight."""
        ...


class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("not connected")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self._buf = buf
            return
        lines = buf[:end].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(buf) < end + 4 + length:
            self._buf = buf
            return
        body = buf[end + 4 : end + 4 + length]
        self._buf = buf[end + 4 + length :]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RestWriter:
    """``PATCH /api/wedsync/couples/{C}/core-fields`` as the couple's user, over a pool of
    keep-alive connections."""

    def __init__(
        self, port: int, plan: SeedPlan, couple_tokens: Sequence[str], max_size: int
    ) -> None:
        self.port = port
        self.plan = plan
        self.tokens = couple_tokens
        self.max_size = max_size
        self._idle: asyncio.Queue[_HttpConnection] = asyncio.Queue()
        self._all: list[_HttpConnection] = []

    async def _connect(self) -> _HttpConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_HttpConnection, LOOPBACK, self.port)
        self._all.append(conn)
        return conn

    async def open(self, size: int) -> None:
        for _ in range(size):
            self._idle.put_nowait(await self._connect())

    @property
    def size(self) -> int:
        return len(self._all)

    async def write(self, change: Change) -> None:
        # Every couple has a browser of its own: a request never waits here for another one's
        # answer while the pool may grow (a stalled server shows in the latency, not hidden in
        # a queue of this generator).
        if self._idle.empty() and len(self._all) < self.max_size:
            self._idle.put_nowait(await self._connect())
        conn = await self._idle.get()
        couple = self.plan.couples[change.couple]
        body = orjson.dumps(
            {
                "changes": {
                    change.field_name: {"value": change.value, "version": change.expected_version}
                }
            }
        )
        head = (
            f"PATCH /api/wedsync/couples/{couple.couple_id}/core-fields HTTP/1.1\r\n"
            f"Host: {LOOPBACK}:{self.port}\r\n"
            f"Authorization: Bearer {self.tokens[change.couple]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            change.sent_ns = time.perf_counter_ns()
            status, answer = await conn.send(head + body)
        except (OSError, ConnectionError) as exc:
            change.done_ns = time.perf_counter_ns()
            change.status = -1
            change.error = f"{type(exc).__name__}: {str(exc)[:80]}"
            conn.close()
            self._all.remove(conn)
            conn = await self._connect()
        else:
            change.done_ns = time.perf_counter_ns()
            change.status = status
            if status == 200:
                updated = orjson.loads(answer).get("updated") or {}
                change.updated = {k: (v["value"], int(v["version"])) for k, v in updated.items()}
            else:
                change.error = answer[:160].decode("utf-8", "replace")
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            conn.close()


class EmbeddedBackend:
    """The embedded default: SQLite in the server's data directory, writes through REST."""

    name = "embedded"

    async def seed(self, plan: SeedPlan, workdir: Path) -> None:
        await seed_sqlite(plan, workdir / "data")

    def server_env(self, workdir: Path) -> dict[str, str]:
        return {"WEDSYNC_DATA_DIR": str(workdir / "data")}

    async def open_writer(
        self, server: ServerProcess, plan: SeedPlan, couple_tokens: Sequence[str], size: int
    ) -> ChangeWriter:
        writer = RestWriter(server.port, plan, couple_tokens, max_size=size)
        await writer.open(min(size, 8))
        return writer


def _postgres(_opts: argparse.Namespace) -> Backend:
    # Imported here: the PostgreSQL backend imports this module (`Change`).
    from benchmarks.core_fields_postgres import PostgresBackend

    return PostgresBackend()


BACKENDS: dict[str, Callable[[argparse.Namespace], Backend]] = {
    "embedded": lambda _opts: EmbeddedBackend(),
    "postgres": _postgres,
}
