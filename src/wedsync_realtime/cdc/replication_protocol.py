"""The envelope around pgoutput messages on a ``START_REPLICATION`` connection, in both directions.

Layouts from the PostgreSQL documentation, "Streaming Replication Protocol" (§55.4 in PostgreSQL
16, https://www.postgresql.org/docs/current/protocol-replication.html), the CopyData payloads of
the ``START_REPLICATION`` sub-protocol:

- server → client: XLogData ``w`` (WAL start, WAL end, server clock, then one pgoutput message)
  and Primary keepalive ``k`` (WAL end, server clock, reply-requested flag);
- client → server: Standby status update ``r`` (written, flushed and applied LSNs, client clock,
  reply-requested flag), which is how the consumer acknowledges LSNs so the slot can advance.

Pure: the caller supplies the clock for the status update, this module never reads one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from wedsync_realtime.cdc.wire import Buffer, PgOutputError, Reader, datetime_to_pg_timestamp

__all__ = [
    "PrimaryKeepalive",
    "ReplicationMessage",
    "XLogData",
    "decode_copy_data",
    "encode_standby_status_update",
]

_STATUS_UPDATE: Final = struct.Struct("!cQQQqB")
_MAX_U64: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class XLogData:
    """``w``: WAL data; ``data`` is one pgoutput message, for `cdc.pgoutput.decode_message`."""

    wal_start: int
    wal_end: int
    server_time: datetime
    server_time_us: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PrimaryKeepalive:
    """``k``: the server is alive; if ``reply_requested``, send a status update at once."""

    wal_end: int
    server_time: datetime
    server_time_us: int
    reply_requested: bool


ReplicationMessage = XLogData | PrimaryKeepalive


def decode_copy_data(data: Buffer) -> ReplicationMessage:
    """Decode the payload of one CopyData message the server sent during ``START_REPLICATION``."""
    reader = Reader(data, "replication CopyData")
    tag = reader.char("message type")
    if tag == "w":
        reader.what = "XLogData"
        wal_start = reader.u64("WAL start")
        wal_end = reader.u64("WAL end")
        server_time, raw = reader.timestamp("server clock")
        return XLogData(wal_start, wal_end, server_time, raw, reader.rest())
    if tag == "k":
        reader.what = "primary keepalive"
        wal_end = reader.u64("WAL end")
        server_time, raw = reader.timestamp("server clock")
        reply = reader.u8("reply-requested flag")
        reader.expect_end()
        return PrimaryKeepalive(wal_end, server_time, raw, reply != 0)
    raise PgOutputError(f"unknown replication CopyData type {tag!r} (expected 'w' or 'k')", 0)


def encode_standby_status_update(
    written: int,
    flushed: int,
    applied: int,
    now: datetime,
    *,
    reply_requested: bool = False,
) -> bytes:
    """The CopyData payload ``r`` that reports progress to the server.

    Each LSN is "the location of the last WAL byte + 1" received and written / flushed / applied.
    The server may recycle WAL up to ``flushed``, so pass only what has been handed to fan-out.
    ``now`` must be an aware `datetime` (the client's clock); nothing here reads a clock.
    """
    for name, lsn in (("written", written), ("flushed", flushed), ("applied", applied)):
        if not 0 <= lsn <= _MAX_U64:
            raise ValueError(f"{name} LSN {lsn} is outside the unsigned 64-bit range")
    return _STATUS_UPDATE.pack(
        b"r", written, flushed, applied, datetime_to_pg_timestamp(now), int(reply_requested)
    )
