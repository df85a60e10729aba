"""A pure decoder of the messages the built-in ``pgoutput`` logical decoding plugin emits.

The byte layouts are those of the PostgreSQL documentation, "Logical Replication Message Formats"
(§55.9 in PostgreSQL 16, https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).

Supported:

- protocol version 1: Begin ``B``, Commit ``C``, Origin ``O``, Relation ``R``, Type ``Y``,
  Insert ``I``, Update ``U`` (with an optional ``K`` key or ``O`` old tuple), Delete ``D``,
  Truncate ``T``, and logical decoding Message ``M`` (``messages 'true'``); TupleData columns
  ``n`` (NULL), ``u`` (unchanged TOASTed value), ``t`` (text) and ``b`` (binary, ``binary 'true'``);
- protocol version 2 streaming of in-progress transactions (``streaming 'on'``): Stream Start
  ``S``, Stream Stop ``E``, Stream Commit ``c``, Stream Abort ``A`` (including the version 4
  abort LSN and time), and the transaction id that R/Y/I/U/D/T/M carry inside a stream block.
  Whether a message is inside a block is stream state the caller knows: pass ``in_stream=True``,
  or let `PgOutputDecoder` track it from the Stream Start/Stop messages.

Refused with a `PgOutputError` that says so: the protocol version 3 two-phase messages
(``b``, ``P``, ``K``, ``r``, ``p``; do not set ``two_phase 'true'``) and any unknown type byte.

Text values are decoded as UTF-8, so the replication connection must use ``client_encoding=UTF8``.
This module does no I/O: bytes in, frozen dataclasses out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from wedsync_realtime.cdc.messages import (
    UNCHANGED_TOAST,
    Begin,
    ColumnValue,
    Commit,
    Delete,
    Insert,
    Message,
    OldTupleKind,
    Origin,
    PgOutputMessage,
    Relation,
    RelationColumn,
    ReplicaIdentity,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TupleData,
    Type,
    Update,
)
from wedsync_realtime.cdc.wire import Buffer, PgOutputError, Reader

# The message types are defined in `cdc.messages`; they are re-exported here for one import.
__all__ = [
    "UNCHANGED_TOAST",
    "Begin",
    "ColumnValue",
    "Commit",
    "Delete",
    "Insert",
    "Message",
    "OldTupleKind",
    "Origin",
    "PgOutputDecoder",
    "PgOutputError",
    "PgOutputMessage",
    "Relation",
    "RelationColumn",
    "ReplicaIdentity",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TupleData",
    "Type",
    "Update",
    "decode_message",
]


_TWO_PHASE: Final = {
    "b": "Begin Prepare",
    "P": "Prepare",
    "K": "Commit Prepared",
    "r": "Rollback Prepared",
    "p": "Stream Prepare",
}


def decode_message(data: Buffer, *, in_stream: bool = False) -> PgOutputMessage:
    """Decode one pgoutput message (the payload of one XLogData).

    ``in_stream`` says the message sits between Stream Start and Stream Stop, where R, Y, I, U, D,
    T and M carry the streamed transaction's id first. Raises `PgOutputError` on anything
    malformed, unknown or unsupported, with the offset inside ``data``.
    """
    reader = Reader(data, "pgoutput message")
    tag = reader.char("message type")
    reader.what = f"pgoutput {tag!r} message"
    decoder = _DECODERS.get(tag)
    if decoder is None:
        if tag in _TWO_PHASE:
            raise PgOutputError(
                f"pgoutput {_TWO_PHASE[tag]} ({tag!r}) is a two-phase commit message of protocol "
                "version 3, which is not supported: do not set the two_phase option",
                0,
            )
        raise PgOutputError(f"unknown pgoutput message type {tag!r}", 0)
    message = decoder(reader, in_stream)
    reader.expect_end()
    return message


class PgOutputDecoder:
    """`decode_message` plus the one bit of state streaming needs: are we inside a stream block?"""

    __slots__ = ("in_stream",)

    def __init__(self) -> None:
        self.in_stream = False

    def decode(self, data: Buffer) -> PgOutputMessage:
        """Decode one message, entering or leaving stream mode on Stream Start / Stream Stop."""
        message = decode_message(data, in_stream=self.in_stream)
        if isinstance(message, StreamStart):
            if self.in_stream:
                raise PgOutputError("Stream Start inside an open stream block", 0)
            self.in_stream = True
        elif isinstance(message, StreamStop):
            if not self.in_stream:
                raise PgOutputError("Stream Stop without a Stream Start", 0)
            self.in_stream = False
        return message


def _xid(reader: Reader, in_stream: bool) -> int | None:
    return reader.u32("transaction id") if in_stream else None


def _begin(reader: Reader, in_stream: bool) -> Begin:
    final_lsn = reader.u64("final LSN")
    commit_time, raw = reader.timestamp("commit timestamp")
    return Begin(final_lsn, commit_time, raw, reader.u32("transaction id"))


def _commit(reader: Reader, in_stream: bool) -> Commit:
    flags = reader.u8("flags")
    commit_lsn = reader.u64("commit LSN")
    end_lsn = reader.u64("end LSN")
    commit_time, raw = reader.timestamp("commit timestamp")
    return Commit(flags, commit_lsn, end_lsn, commit_time, raw)


def _origin(reader: Reader, in_stream: bool) -> Origin:
    return Origin(reader.u64("origin commit LSN"), reader.cstring("origin name"))


def _relation(reader: Reader, in_stream: bool) -> Relation:
    xid = _xid(reader, in_stream)
    oid = reader.u32("relation OID")
    namespace = reader.cstring("namespace")
    name = reader.cstring("relation name")
    at = reader.offset
    identity_tag = reader.char("replica identity")
    try:
        identity = ReplicaIdentity(identity_tag)
    except ValueError:
        raise PgOutputError(
            f"{reader.what}: unknown replica identity {identity_tag!r}", at
        ) from None
    count = _count(reader, "number of columns")
    columns = tuple(
        RelationColumn(
            reader.u8("column flags"),
            reader.cstring("column name"),
            reader.u32("column type OID"),
            reader.i32("column type modifier"),
        )
        for _ in range(count)
    )
    return Relation(oid, namespace, name, identity, columns, xid)


def _type(reader: Reader, in_stream: bool) -> Type:
    xid = _xid(reader, in_stream)
    oid = reader.u32("type OID")
    return Type(oid, reader.cstring("type namespace"), reader.cstring("type name"), xid)


def _insert(reader: Reader, in_stream: bool) -> Insert:
    xid = _xid(reader, in_stream)
    oid = reader.u32("relation OID")
    _expect(reader, "N", "new tuple marker")
    return Insert(oid, _tuple(reader), xid)


def _update(reader: Reader, in_stream: bool) -> Update:
    xid = _xid(reader, in_stream)
    oid = reader.u32("relation OID")
    at = reader.offset
    marker = reader.char("tuple marker")
    if marker == "N":
        return Update(oid, _tuple(reader), None, None, xid)
    if marker not in ("K", "O"):
        raise PgOutputError(f"{reader.what}: expected tuple marker K, O or N, got {marker!r}", at)
    old = _tuple(reader)
    _expect(reader, "N", "new tuple marker")
    return Update(oid, _tuple(reader), old, OldTupleKind(marker), xid)


def _delete(reader: Reader, in_stream: bool) -> Delete:
    xid = _xid(reader, in_stream)
    oid = reader.u32("relation OID")
    at = reader.offset
    marker = reader.char("tuple marker")
    if marker not in ("K", "O"):
        raise PgOutputError(f"{reader.what}: expected tuple marker K or O, got {marker!r}", at)
    return Delete(oid, _tuple(reader), OldTupleKind(marker), xid)


def _truncate(reader: Reader, in_stream: bool) -> Truncate:
    xid = _xid(reader, in_stream)
    at = reader.offset
    count = reader.i32("number of relations")
    if count < 0:
        raise PgOutputError(f"{reader.what}: negative number of relations {count}", at)
    options = reader.u8("option bits")
    if count > reader.remaining // 4:  # refuse before allocating for a bogus count
        raise PgOutputError(
            f"{reader.what}: truncated relation OIDs: {count} announced, "
            f"room for {reader.remaining // 4}",
            reader.offset,
        )
    oids = tuple(reader.u32("relation OID") for _ in range(count))
    return Truncate(oids, options, xid)


def _message(reader: Reader, in_stream: bool) -> Message:
    xid = _xid(reader, in_stream)
    flags = reader.u8("flags")
    lsn = reader.u64("message LSN")
    prefix = reader.cstring("prefix")
    length = reader.i32("content length")
    return Message(flags, lsn, prefix, reader.raw(length, "content"), xid)


def _stream_start(reader: Reader, in_stream: bool) -> StreamStart:
    xid = reader.u32("transaction id")
    return StreamStart(xid, reader.u8("first segment flag") == 1)


def _stream_stop(reader: Reader, in_stream: bool) -> StreamStop:
    return StreamStop()


def _stream_commit(reader: Reader, in_stream: bool) -> StreamCommit:
    xid = reader.u32("transaction id")
    flags = reader.u8("flags")
    commit_lsn = reader.u64("commit LSN")
    end_lsn = reader.u64("end LSN")
    commit_time, raw = reader.timestamp("commit timestamp")
    return StreamCommit(xid, flags, commit_lsn, end_lsn, commit_time, raw)


def _stream_abort(reader: Reader, in_stream: bool) -> StreamAbort:
    xid = reader.u32("transaction id")
    subxid = reader.u32("subtransaction id")
    if reader.remaining == 0:
        return StreamAbort(xid, subxid)
    abort_lsn = reader.u64("abort LSN")
    abort_time, raw = reader.timestamp("abort timestamp")
    return StreamAbort(xid, subxid, abort_lsn, abort_time, raw)


def _expect(reader: Reader, wanted: str, field: str) -> None:
    at = reader.offset
    got = reader.char(field)
    if got != wanted:
        raise PgOutputError(f"{reader.what}: expected {field} {wanted!r}, got {got!r}", at)


def _count(reader: Reader, field: str) -> int:
    at = reader.offset
    count = reader.i16(field)
    if count < 0:
        raise PgOutputError(f"{reader.what}: negative {field} {count}", at)
    return count


def _tuple(reader: Reader) -> TupleData:
    values: list[ColumnValue] = []
    for index in range(_count(reader, "number of tuple columns")):
        at = reader.offset
        kind = reader.char(f"kind of column {index}")
        if kind == "n":
            values.append(None)
        elif kind == "u":
            values.append(UNCHANGED_TOAST)
        elif kind == "t":
            values.append(reader.text(reader.i32(f"length of column {index}"), f"column {index}"))
        elif kind == "b":
            values.append(reader.raw(reader.i32(f"length of column {index}"), f"column {index}"))
        else:
            raise PgOutputError(
                f"{reader.what}: unknown kind {kind!r} of tuple column {index} "
                "(expected n, u, t or b)",
                at,
            )
    return TupleData(tuple(values))


_DECODERS: Final[dict[str, Callable[[Reader, bool], PgOutputMessage]]] = {
    "B": _begin,
    "C": _commit,
    "O": _origin,
    "R": _relation,
    "Y": _type,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
    "M": _message,
    "S": _stream_start,
    "E": _stream_stop,
    "c": _stream_commit,
    "A": _stream_abort,
}
