"""A streaming logical replication session on a psycopg 3 connection, at the libpq level.

psycopg 3 has no replication API (psycopg2's ``LogicalReplicationConnection`` was not ported), but
its ``pq`` layer exposes what is needed: ``PGconn.send_query`` for the replication command (a
walsender accepts only the simple query protocol), then ``get_copy_data(async=1)`` /
``put_copy_data`` in the CopyBoth sub-protocol, waiting on the socket with the event loop's
``add_reader``/``add_writer``. Nothing polls on a timer: a change is read as soon as its bytes
arrive (PostgreSQL documentation, "Streaming Replication Protocol", §55.4 in PostgreSQL 15).

The session:

- ``START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1', publication_names 'p')``: ``0/0``
  means "from the slot's ``confirmed_flush_lsn``", so the slot (not this process) decides where
  a restarted server resumes;
- yields XLogData and Primary keepalive messages as `cdc.replication_protocol` decodes them;
- sends Standby status updates: whenever the owner acknowledges an LSN (`ack`), when asked
  (`send_status`, for a keepalive with reply-requested), and every ``status_interval_s`` so
  that ``wal_sender_timeout`` does not end an idle session;
- ends with CopyDone, so the walsender releases the slot before the connection closes and an
  immediate restart can take the slot again.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo

from wedsync_realtime.cdc.replication_protocol import (
    ReplicationMessage,
    decode_copy_data,
    encode_standby_status_update,
)
from wedsync_realtime.cdc.slot import validate_slot_name
from wedsync_realtime.cdc.wire import format_lsn

__all__ = ["ReplicationError", "ReplicationStream", "quote_literal"]

_CLOSE_TIMEOUT_S: Final = 2.0


class ReplicationError(Exception):
    """The replication session failed or ended; the owner reconnects."""


def quote_literal(value: str) -> str:
    """A SQL string literal (replication commands take no bind parameters)."""
    if "\x00" in value:
        raise ValueError("a NUL character cannot appear in a replication command")
    return "'" + value.replace("'", "''") + "'"


class ReplicationStream:
    """One ``START_REPLICATION`` session; use `open`, then `read` in a loop, then `close`.

    Not safe for concurrent use: one task reads, and the same task acknowledges.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any], status_interval_s: float) -> None:
        self._conn = conn
        self._pgconn = conn.pgconn
        self._status_interval_s = status_interval_s
        self._last_status = time.monotonic()
        self.acked_lsn = 0
        """The last LSN reported as flushed: the slot may discard WAL before it."""
        self.received_lsn = 0
        """The highest WAL end seen in XLogData or a keepalive (the server's sent position)."""

    @classmethod
    async def open(
        cls,
        dsn: str,
        slot_name: str,
        publication: str,
        *,
        status_interval_s: float = 10.0,
        application_name: str = "wedsync_realtime_cdc",
        connect_timeout_s: float = 10.0,
    ) -> ReplicationStream:
        """Connect with ``replication=database`` and start streaming from the slot."""
        conninfo = make_conninfo(
            dsn,
            replication="database",
            application_name=application_name,
            client_encoding="UTF8",  # pgoutput text values are decoded as UTF-8
            connect_timeout=max(1, round(connect_timeout_s)),
        )
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise ReplicationError(f"cannot open a replication connection: {exc}") from exc
        stream = cls(conn, status_interval_s)
        try:
            await stream._start(validate_slot_name(slot_name), publication)
        except BaseException:
            await conn.close()
            raise
        return stream

    async def _start(self, slot_name: str, publication: str) -> None:
        command = (
            f"START_REPLICATION SLOT {slot_name} LOGICAL 0/0 "
            f"(proto_version '1', publication_names {quote_literal(publication)})"
        )
        self._pgconn.send_query(command.encode())
        await self._flush()
        while True:
            while self._pgconn.is_busy():
                await self._wait(readable=True, timeout=None)
                self._pgconn.consume_input()
            result = self._pgconn.get_result()
            if result is None:
                raise ReplicationError("START_REPLICATION returned no result")
            if result.status == pq.ExecStatus.COPY_BOTH:
                return
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise ReplicationError(
                f"START_REPLICATION failed ({pq.ExecStatus(result.status).name}): {message}"
            )

    def try_read(self) -> ReplicationMessage | None:
        """The next message if libpq already holds it, else None; never waits."""
        nbytes, data = self._pgconn.get_copy_data(1)
        if nbytes == 0:
            return None
        if nbytes == -1:
            result = self._pgconn.get_result()
            detail = ""
            if result is not None and result.error_message:
                detail = ": " + result.error_message.decode(errors="replace").strip()
            raise ReplicationError(f"the server ended the replication stream{detail}")
        message = decode_copy_data(bytes(data))
        if message.wal_end > self.received_lsn:
            self.received_lsn = message.wal_end
        return message

    async def read(self, timeout: float | None = None) -> ReplicationMessage | None:
        """The next message; None after ``timeout`` seconds without one.

        Keeps the session alive meanwhile: a status update goes out every status interval.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                message = self.try_read()
                if message is not None:
                    return message
                now = time.monotonic()
                if now - self._last_status >= self._status_interval_s:
                    await self.send_status()
                    now = time.monotonic()
                wait = self._last_status + self._status_interval_s - now
                if deadline is not None:
                    if now >= deadline:
                        return None
                    wait = min(wait, deadline - now)
                await self._wait(readable=True, timeout=max(wait, 0.0))
                self._pgconn.consume_input()
            except psycopg.Error as exc:
                raise ReplicationError(f"replication connection lost: {exc}") from exc

    async def ack(self, lsn: int) -> None:
        """Report everything before ``lsn`` as flushed (the slot may advance to it)."""
        if lsn > self.acked_lsn:
            self.acked_lsn = lsn
            await self.send_status()

    async def send_status(self, *, reply_requested: bool = False) -> None:
        """Send a Standby status update with the acknowledged LSN."""
        flushed = self.acked_lsn
        payload = encode_standby_status_update(
            max(flushed, self.received_lsn) if flushed else 0,
            flushed,
            flushed,
            datetime.now(UTC),
            reply_requested=reply_requested,
        )
        try:
            while self._pgconn.put_copy_data(payload) == 0:
                await self._wait(readable=False, timeout=None)
            await self._flush()
        except psycopg.Error as exc:
            raise ReplicationError(f"cannot send a status update: {exc}") from exc
        self._last_status = time.monotonic()

    async def close(self) -> None:
        """End the COPY (the walsender then releases the slot) and close the connection."""
        try:
            if not self._conn.closed and self._pgconn.status == pq.ConnStatus.OK:
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self._end_copy()
        except (TimeoutError, psycopg.Error, ReplicationError, OSError):
            pass  # closing the socket below ends the walsender anyway, a little later
        finally:
            await self._conn.close()

    async def _end_copy(self) -> None:
        self._pgconn.put_copy_end()
        await self._flush()
        while True:
            nbytes, _ = self._pgconn.get_copy_data(1)
            if nbytes == -1:
                break
            if nbytes == 0:
                await self._wait(readable=True, timeout=None)
                self._pgconn.consume_input()
        while True:
            while self._pgconn.is_busy():
                await self._wait(readable=True, timeout=None)
                self._pgconn.consume_input()
            if self._pgconn.get_result() is None:
                return

    async def _flush(self) -> None:
        while self._pgconn.flush() == 1:
            await self._wait(readable=False, timeout=None)

    async def _wait(self, *, readable: bool, timeout: float | None) -> None:
        """Wait until the socket is readable (or writable), or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        fd = self._pgconn.socket
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if readable:
            loop.add_reader(fd, wake)
        else:
            loop.add_writer(fd, wake)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that races with the future completing, and `ChangeCapture.stop` would hang.
            async with asyncio.timeout(timeout):
                await ready
        except TimeoutError:
            pass
        finally:
            if readable:
                loop.remove_reader(fd)
            else:
                loop.remove_writer(fd)

    def describe(self) -> str:
        """Positions, for logs."""
        return f"received {format_lsn(self.received_lsn)}, acked {format_lsn(self.acked_lsn)}"
