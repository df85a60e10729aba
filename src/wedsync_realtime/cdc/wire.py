"""Shared low-level pieces of the replication decoders: a bounds-checked reader, LSNs, timestamps.

Byte layouts follow the PostgreSQL documentation, "Message Data Types" (§55.6 in PostgreSQL 16:
IntN are big-endian, String is NUL-terminated) and "Streaming Replication Protocol" (§55.4: LSNs
are 64-bit WAL positions written ``XXX/XXX``; clocks are microseconds since 2000-01-01 UTC).

Every malformed input becomes a `PgOutputError` that says what was being read and at which offset;
nothing here lets an `IndexError`, `struct.error` or `UnicodeDecodeError` escape. No I/O, no clock.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "PG_EPOCH",
    "Buffer",
    "PgOutputError",
    "Reader",
    "datetime_to_pg_timestamp",
    "format_lsn",
    "parse_lsn",
    "pg_timestamp_to_datetime",
]

Buffer = bytes | bytearray | memoryview

#: PostgreSQL's timestamp epoch: `TimestampTz` values count microseconds from here.
PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)

_MAX_U64: Final = (1 << 64) - 1
_LSN_RE: Final = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")

_U8 = struct.Struct("!B")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_U64 = struct.Struct("!Q")


class PgOutputError(ValueError):
    """Malformed or unsupported replication data; `offset` is where the problem was found."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at offset {offset})")
        self.offset = offset


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` → ``0x16_B374D848``: the ``pg_lsn`` text form (two 32-bit hex halves)."""
    match = _LSN_RE.fullmatch(text)
    if match is None:
        raise PgOutputError(f"invalid LSN {text!r}: expected two hex numbers like '16/B374D848'")
    return (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(lsn: int) -> str:
    """``0x16_B374D848`` → ``"16/B374D848"``, as PostgreSQL prints ``pg_lsn`` (``%X/%X``)."""
    if not 0 <= lsn <= _MAX_U64:
        raise PgOutputError(f"LSN {lsn} is outside the unsigned 64-bit range")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def pg_timestamp_to_datetime(micros: int, offset: int | None = None) -> datetime:
    """A PostgreSQL ``TimestampTz`` (µs since 2000-01-01 UTC) as an aware UTC `datetime`.

    Raises `PgOutputError` when Python cannot represent it (years outside 1..9999, or the special
    values ``infinity``/``-infinity``, which a commit or server clock never carries).
    """
    try:
        return PG_EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise PgOutputError(
            f"timestamp {micros} µs since 2000-01-01 is out of range", offset
        ) from None


def datetime_to_pg_timestamp(moment: datetime) -> int:
    """An aware `datetime` as a PostgreSQL ``TimestampTz`` (µs since 2000-01-01 UTC)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no defined instant; pass an aware one (UTC)")
    delta = moment - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Reader:
    """A cursor over one message: each read names its field so errors can say what was cut short."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: Buffer, what: str) -> None:
        # One copy at most (none for `bytes`); `bytes.find` then locates string terminators in C.
        self._data = data if isinstance(data, bytes) else bytes(memoryview(data).cast("B"))
        self._pos = 0
        self.what = what

    @property
    def offset(self) -> int:
        """Where the next read starts, counted from the start of the message."""
        return self._pos

    @property
    def remaining(self) -> int:
        """How many bytes are left unread."""
        return len(self._data) - self._pos

    def _take(self, size: int, field: str) -> int:
        start = self._pos
        if size > len(self._data) - start:
            raise PgOutputError(
                f"{self.what}: truncated {field}: needs {size} bytes, "
                f"{len(self._data) - start} left",
                start,
            )
        self._pos = start + size
        return start

    def u8(self, field: str) -> int:
        """Int8 / Byte1 as an unsigned number."""
        return int(_U8.unpack_from(self._data, self._take(1, field))[0])

    def char(self, field: str) -> str:
        """Byte1 read as a one-character ASCII tag (message type, tuple kind, replica identity)."""
        return chr(self.u8(field))

    def i16(self, field: str) -> int:
        """Int16, signed."""
        return int(_I16.unpack_from(self._data, self._take(2, field))[0])

    def i32(self, field: str) -> int:
        """Int32, signed (lengths, where -1 can mean NULL)."""
        return int(_I32.unpack_from(self._data, self._take(4, field))[0])

    def u32(self, field: str) -> int:
        """Int32 read as unsigned: OIDs and transaction ids."""
        return int(_U32.unpack_from(self._data, self._take(4, field))[0])

    def i64(self, field: str) -> int:
        """Int64, signed: timestamps."""
        return int(_I64.unpack_from(self._data, self._take(8, field))[0])

    def u64(self, field: str) -> int:
        """Int64 read as unsigned: LSNs (``XLogRecPtr``)."""
        return int(_U64.unpack_from(self._data, self._take(8, field))[0])

    def timestamp(self, field: str) -> tuple[datetime, int]:
        """Int64 ``TimestampTz``: the UTC `datetime` and the raw microseconds."""
        start = self._pos
        raw = self.i64(field)
        return pg_timestamp_to_datetime(raw, start), raw

    def raw(self, size: int, field: str) -> bytes:
        """Byten."""
        if size < 0:
            raise PgOutputError(f"{self.what}: negative length {size} for {field}", self._pos)
        start = self._take(size, field)
        return self._data[start : start + size]

    def rest(self) -> bytes:
        """Every byte that is left (the payload of an envelope)."""
        return self.raw(self.remaining, "payload")

    def text(self, size: int, field: str) -> str:
        """Byten holding UTF-8 text (the replication connection's client_encoding)."""
        start = self._pos
        data = self.raw(size, field)
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise PgOutputError(
                f"{self.what}: {field} is not valid UTF-8", start + exc.start
            ) from None

    def cstring(self, field: str) -> str:
        """String: UTF-8 bytes up to a NUL terminator."""
        start = self._pos
        end = self._data.find(0, start)
        if end < 0:
            raise PgOutputError(f"{self.what}: {field} string has no NUL terminator", start)
        text = self.text(end - start, field)
        self._pos = end + 1
        return text

    def expect_end(self) -> None:
        """Refuse trailing bytes: a length mix-up must not pass as a shorter message."""
        if self.remaining:
            raise PgOutputError(
                f"{self.what}: {self.remaining} unexpected trailing bytes", self._pos
            )
