"""The pgoutput decoder, the replication envelope and the relation cache, on hand-built bytes.

The builders below follow the PostgreSQL documentation byte by byte: "Logical Replication Message
Formats" (§55.9 in PostgreSQL 16) and "Streaming Replication Protocol" (§55.4).
"""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wedsync_realtime.cdc.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    ColumnValue,
    Commit,
    Delete,
    Insert,
    Message,
    OldTupleKind,
    Origin,
    PgOutputDecoder,
    PgOutputError,
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
    decode_message,
)
from wedsync_realtime.cdc.relations import (
    ChangeAction,
    RelationCache,
    UnknownRelationError,
)
from wedsync_realtime.cdc.replication_protocol import (
    PrimaryKeepalive,
    XLogData,
    decode_copy_data,
    encode_standby_status_update,
)
from wedsync_realtime.cdc.wire import (
    PG_EPOCH,
    datetime_to_pg_timestamp,
    format_lsn,
    parse_lsn,
    pg_timestamp_to_datetime,
)

# --- builders: the documented layouts, field by field ---------------------------------------


def u8(value: int) -> bytes:
    return struct.pack("!B", value)


def i16(value: int) -> bytes:
    return struct.pack("!h", value)


def i32(value: int) -> bytes:
    return struct.pack("!i", value)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def i64(value: int) -> bytes:
    return struct.pack("!q", value)


def u64(value: int) -> bytes:
    return struct.pack("!Q", value)


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(*values: ColumnValue) -> bytes:
    out = i16(len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED_TOAST:
            out += b"u"
        elif isinstance(value, str):
            out += b"t" + i32(len(value.encode())) + value.encode()
        else:
            assert isinstance(value, bytes)
            out += b"b" + i32(len(value)) + value
    return out


def xid_prefix(xid: int | None) -> bytes:
    return b"" if xid is None else u32(xid)


COMMIT_TIME = datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)
COMMIT_US = 820_585_815_123_456  # ((26*365 + 7 leap days) * 86400 + 45015) s, + 123456 µs
LSN = 0x16_B374D848
END_LSN = 0x16_B374D900


def begin_msg(final_lsn: int = LSN, ts: int = COMMIT_US, xid: int = 771) -> bytes:
    return b"B" + u64(final_lsn) + i64(ts) + u32(xid)


def commit_msg(flags: int = 0, ts: int = COMMIT_US) -> bytes:
    return b"C" + u8(flags) + u64(LSN) + u64(END_LSN) + i64(ts)


def origin_msg() -> bytes:
    return b"O" + u64(LSN) + cstr("node_a")


def relation_msg(
    oid: int = 16_384,
    namespace: str = "public",
    name: str = "guests",
    identity: bytes = b"d",
    columns: tuple[tuple[int, str, int, int], ...] = (
        (1, "id", 20, -1),
        (0, "name", 25, -1),
        (0, "rsvp", 16, -1),
        (0, "notes", 25, -1),
    ),
    xid: int | None = None,
) -> bytes:
    out = b"R" + xid_prefix(xid) + u32(oid) + cstr(namespace) + cstr(name) + identity
    out += i16(len(columns))
    for flags, col, type_oid, typmod in columns:
        out += u8(flags) + cstr(col) + u32(type_oid) + i32(typmod)
    return out


def type_msg(oid: int = 90_001, xid: int | None = None) -> bytes:
    return b"Y" + xid_prefix(xid) + u32(oid) + cstr("public") + cstr("meal_choice")


def insert_msg(*values: ColumnValue, oid: int = 16_384, xid: int | None = None) -> bytes:
    return b"I" + xid_prefix(xid) + u32(oid) + b"N" + tuple_data(*values)


def update_msg(
    new: tuple[ColumnValue, ...],
    old: tuple[ColumnValue, ...] | None = None,
    kind: bytes = b"O",
    oid: int = 16_384,
    xid: int | None = None,
) -> bytes:
    out = b"U" + xid_prefix(xid) + u32(oid)
    if old is not None:
        out += kind + tuple_data(*old)
    return out + b"N" + tuple_data(*new)


def delete_msg(
    old: tuple[ColumnValue, ...], kind: bytes = b"K", oid: int = 16_384, xid: int | None = None
) -> bytes:
    return b"D" + xid_prefix(xid) + u32(oid) + kind + tuple_data(*old)


def truncate_msg(oids: tuple[int, ...], options: int = 0, xid: int | None = None) -> bytes:
    return b"T" + xid_prefix(xid) + i32(len(oids)) + u8(options) + b"".join(map(u32, oids))


def message_msg(flags: int = 1, content: bytes = b"hi\x00there", xid: int | None = None) -> bytes:
    return (
        b"M" + xid_prefix(xid) + u8(flags) + u64(LSN) + cstr("wedsync") + i32(len(content))
    ) + content


def xlogdata(payload: bytes, start: int = LSN, end: int = END_LSN, ts: int = COMMIT_US) -> bytes:
    return b"w" + u64(start) + u64(end) + i64(ts) + payload


def keepalive(end: int = END_LSN, ts: int = COMMIT_US, reply: int = 1) -> bytes:
    return b"k" + u64(end) + i64(ts) + u8(reply)


ROW = ("1", "Ada Lovelace", "t", None)

# --- LSNs and timestamps --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("16/B374D848", 0x16_B374D848), ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1)],
)
def test_lsn_round_trip(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text


def test_lsn_parse_is_case_insensitive_and_formats_upper() -> None:
    assert format_lsn(parse_lsn("16/b374d848")) == "16/B374D848"
    assert format_lsn(parse_lsn("0/0001")) == "0/1"


@pytest.mark.parametrize("text", ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0", " 0/0"])
def test_lsn_parse_rejects(text: str) -> None:
    with pytest.raises(PgOutputError, match="invalid LSN"):
        parse_lsn(text)


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_lsn_format_rejects_out_of_range(value: int) -> None:
    with pytest.raises(PgOutputError, match="64-bit"):
        format_lsn(value)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_lsn_round_trip_property(value: int) -> None:
    assert parse_lsn(format_lsn(value)) == value


def test_timestamps() -> None:
    assert pg_timestamp_to_datetime(0) == PG_EPOCH == datetime(2000, 1, 1, tzinfo=UTC)
    assert pg_timestamp_to_datetime(COMMIT_US) == COMMIT_TIME
    assert pg_timestamp_to_datetime(-86_400_000_000) == datetime(1999, 12, 31, tzinfo=UTC)
    assert datetime_to_pg_timestamp(COMMIT_TIME) == COMMIT_US
    plus_two = COMMIT_TIME.astimezone(timezone(timedelta(hours=2)))
    assert datetime_to_pg_timestamp(plus_two) == COMMIT_US
    with pytest.raises(ValueError, match="naive"):
        datetime_to_pg_timestamp(datetime(2026, 1, 1))
    with pytest.raises(PgOutputError, match="out of range"):
        pg_timestamp_to_datetime((1 << 63) - 1)  # 'infinity'


# --- every message type ---------------------------------------------------------------------


def test_begin() -> None:
    assert decode_message(begin_msg()) == Begin(LSN, COMMIT_TIME, COMMIT_US, 771)


def test_commit() -> None:
    assert decode_message(commit_msg()) == Commit(0, LSN, END_LSN, COMMIT_TIME, COMMIT_US)


def test_origin() -> None:
    assert decode_message(origin_msg()) == Origin(LSN, "node_a")


def test_relation() -> None:
    relation = decode_message(relation_msg())
    assert relation == Relation(
        16_384,
        "public",
        "guests",
        ReplicaIdentity.DEFAULT,
        (
            RelationColumn(1, "id", 20, -1),
            RelationColumn(0, "name", 25, -1),
            RelationColumn(0, "rsvp", 16, -1),
            RelationColumn(0, "notes", 25, -1),
        ),
    )
    assert isinstance(relation, Relation)
    assert [c.is_key for c in relation.columns] == [True, False, False, False]


@pytest.mark.parametrize(
    ("byte", "identity"),
    [(b"d", "DEFAULT"), (b"n", "NOTHING"), (b"f", "FULL"), (b"i", "INDEX")],
)
def test_relation_replica_identities(byte: bytes, identity: str) -> None:
    relation = decode_message(relation_msg(identity=byte, columns=()))
    assert isinstance(relation, Relation)
    assert relation.replica_identity is ReplicaIdentity[identity]
    assert relation.columns == ()


def test_relation_pg_catalog_namespace_is_empty_and_names_are_utf8() -> None:
    relation = decode_message(
        relation_msg(namespace="", name="gäste", columns=((0, "ñ", 1043, 36),))
    )
    assert isinstance(relation, Relation)
    assert (relation.namespace, relation.name) == ("", "gäste")
    assert relation.columns == (RelationColumn(0, "ñ", 1043, 36),)


def test_type() -> None:
    assert decode_message(type_msg()) == Type(90_001, "public", "meal_choice")


def test_insert_with_every_tuple_kind() -> None:
    values: tuple[ColumnValue, ...] = ("42", None, UNCHANGED_TOAST, b"\x00\xff", "", "ünï")
    assert decode_message(insert_msg(*values)) == Insert(16_384, TupleData(values))


def test_insert_with_no_columns() -> None:
    assert decode_message(insert_msg()) == Insert(16_384, TupleData(()))


def test_update_without_old_tuple() -> None:
    assert decode_message(update_msg(ROW)) == Update(16_384, TupleData(ROW))


@pytest.mark.parametrize(("byte", "kind"), [(b"K", OldTupleKind.KEY), (b"O", OldTupleKind.OLD)])
def test_update_with_old_tuple(byte: bytes, kind: OldTupleKind) -> None:
    old = ("1", "Ada", "f", None)
    message = decode_message(update_msg(ROW, old, byte))
    assert message == Update(16_384, TupleData(ROW), TupleData(old), kind)


@pytest.mark.parametrize(("byte", "kind"), [(b"K", OldTupleKind.KEY), (b"O", OldTupleKind.OLD)])
def test_delete(byte: bytes, kind: OldTupleKind) -> None:
    assert decode_message(delete_msg(ROW, byte)) == Delete(16_384, TupleData(ROW), kind)


def test_truncate() -> None:
    message = decode_message(truncate_msg((16_384, 16_390), options=3))
    assert message == Truncate((16_384, 16_390), 3)
    assert isinstance(message, Truncate)
    assert message.cascade and message.restart_identity
    plain = decode_message(truncate_msg((1,)))
    assert isinstance(plain, Truncate)
    assert not plain.cascade and not plain.restart_identity


def test_message() -> None:
    message = decode_message(message_msg())
    assert message == Message(1, LSN, "wedsync", b"hi\x00there")
    assert isinstance(message, Message) and message.transactional
    other = decode_message(message_msg(flags=0, content=b""))
    assert isinstance(other, Message) and not other.transactional and other.content == b""


def test_oids_and_xids_are_unsigned() -> None:
    assert decode_message(begin_msg(xid=0xFFFF_FFFF)) == Begin(
        LSN, COMMIT_TIME, COMMIT_US, 0xFFFF_FFFF
    )
    message = decode_message(insert_msg("1", oid=0xFFFF_FFF0))
    assert isinstance(message, Insert) and message.relation_oid == 0xFFFF_FFF0


def test_input_may_be_bytearray_or_memoryview() -> None:
    data = insert_msg(*ROW)
    expected = decode_message(data)
    assert decode_message(bytearray(data)) == expected
    assert decode_message(memoryview(b"xx" + data)[2:]) == expected


# --- streaming (protocol version 2) ---------------------------------------------------------


def test_stream_messages() -> None:
    assert decode_message(b"S" + u32(900) + u8(1)) == StreamStart(900, True)
    assert decode_message(b"S" + u32(900) + u8(0)) == StreamStart(900, False)
    assert decode_message(b"E") == StreamStop()
    commit = b"c" + u32(900) + u8(0) + u64(LSN) + u64(END_LSN) + i64(COMMIT_US)
    assert decode_message(commit) == StreamCommit(900, 0, LSN, END_LSN, COMMIT_TIME, COMMIT_US)
    assert decode_message(b"A" + u32(900) + u32(901)) == StreamAbort(900, 901)
    v4 = b"A" + u32(900) + u32(901) + u64(LSN) + i64(COMMIT_US)
    assert decode_message(v4) == StreamAbort(900, 901, LSN, COMMIT_TIME, COMMIT_US)


def test_in_stream_messages_carry_the_xid() -> None:
    assert decode_message(relation_msg(columns=(), xid=900), in_stream=True) == Relation(
        16_384, "public", "guests", ReplicaIdentity.DEFAULT, (), 900
    )
    assert decode_message(type_msg(xid=900), in_stream=True) == Type(
        90_001, "public", "meal_choice", 900
    )
    assert decode_message(insert_msg("1", xid=900), in_stream=True) == Insert(
        16_384, TupleData(("1",)), 900
    )
    assert decode_message(update_msg(("1",), ("0",), xid=900), in_stream=True) == Update(
        16_384, TupleData(("1",)), TupleData(("0",)), OldTupleKind.OLD, 900
    )
    assert decode_message(delete_msg(("1",), xid=900), in_stream=True) == Delete(
        16_384, TupleData(("1",)), OldTupleKind.KEY, 900
    )
    assert decode_message(truncate_msg((5,), xid=900), in_stream=True) == Truncate((5,), 0, 900)
    assert decode_message(message_msg(xid=900), in_stream=True) == Message(
        1, LSN, "wedsync", b"hi\x00there", 900
    )


def test_the_stream_xid_is_not_read_outside_a_stream() -> None:
    # The same bytes read without in_stream see the xid as the relation OID and then fail.
    with pytest.raises(PgOutputError):
        decode_message(insert_msg("1", xid=900))


def test_decoder_tracks_stream_blocks() -> None:
    decoder = PgOutputDecoder()
    assert decoder.decode(insert_msg("1")) == Insert(16_384, TupleData(("1",)))
    decoder.decode(b"S" + u32(900) + u8(1))
    assert decoder.in_stream
    assert decoder.decode(insert_msg("2", xid=900)) == Insert(16_384, TupleData(("2",)), 900)
    decoder.decode(b"E")
    assert not decoder.in_stream
    assert decoder.decode(insert_msg("3")) == Insert(16_384, TupleData(("3",)))
    with pytest.raises(PgOutputError, match="without a Stream Start"):
        decoder.decode(b"E")
    decoder.decode(b"S" + u32(900) + u8(0))
    with pytest.raises(PgOutputError, match="inside an open stream block"):
        decoder.decode(b"S" + u32(901) + u8(0))


# --- errors: unknown and unsupported messages, bad tags, truncation -------------------------


@pytest.mark.parametrize("tag", [b"b", b"P", b"K", b"r", b"p"])
def test_two_phase_messages_are_refused_clearly(tag: bytes) -> None:
    with pytest.raises(PgOutputError, match="two-phase commit message of protocol version 3"):
        decode_message(tag + b"\x00" * 40)


@pytest.mark.parametrize("data", [b"Z", b"\x00", b"\xff\x00"])
def test_unknown_message_type(data: bytes) -> None:
    with pytest.raises(PgOutputError, match="unknown pgoutput message type") as info:
        decode_message(data)
    assert info.value.offset == 0


def test_empty_message() -> None:
    with pytest.raises(PgOutputError, match=r"truncated message type.*at offset 0"):
        decode_message(b"")


def test_bad_tuple_kind_names_column_and_offset() -> None:
    data = b"I" + u32(1) + b"N" + i16(2) + b"n" + b"x"
    with pytest.raises(PgOutputError, match=r"unknown kind 'x' of tuple column 1") as info:
        decode_message(data)
    assert info.value.offset == len(data) - 1


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"I" + u32(1) + b"X" + tuple_data(), "expected new tuple marker 'N', got 'X'"),
        (b"U" + u32(1) + b"X" + tuple_data(), "expected tuple marker K, O or N, got 'X'"),
        (b"U" + u32(1) + b"K" + tuple_data() + b"O" + tuple_data(), "expected new tuple marker"),
        (b"D" + u32(1) + b"N" + tuple_data(), "expected tuple marker K or O, got 'N'"),
        (relation_msg(identity=b"x"), "unknown replica identity 'x'"),
        (b"R" + u32(1) + cstr("") + cstr("t") + b"d" + i16(-1), "negative number of columns"),
        (b"I" + u32(1) + b"N" + i16(-2), "negative number of tuple columns"),
        (b"I" + u32(1) + b"N" + i16(1) + b"t" + i32(-1), "negative length -1 for column 0"),
        (b"I" + u32(1) + b"N" + i16(1) + b"t" + i32(2) + b"\xc3\x28", "column 0 is not valid"),
        (b"O" + u64(1) + b"\xffname\x00", "origin name is not valid UTF-8"),
        (b"O" + u64(1) + b"no terminator", "origin name string has no NUL terminator"),
        (b"T" + i32(-1) + u8(0), "negative number of relations"),
        (b"T" + i32(1_000_000) + u8(0) + u32(1), "1000000 announced, room for 1"),
        (b"M" + u8(1) + u64(1) + cstr("p") + i32(-5), "negative length -5 for content"),
        (begin_msg(ts=(1 << 63) - 1), "out of range"),
        (begin_msg() + b"\x00", "1 unexpected trailing bytes"),
        (b"E\x00", "unexpected trailing bytes"),
    ],
)
def test_malformed_messages(data: bytes, pattern: str) -> None:
    with pytest.raises(PgOutputError, match=pattern) as info:
        decode_message(data)
    assert info.value.offset is not None
    assert 0 <= info.value.offset <= len(data)
    assert "offset" in str(info.value)


VALID_MESSAGES = [
    begin_msg(),
    commit_msg(),
    origin_msg(),
    relation_msg(),
    type_msg(),
    insert_msg(*ROW, UNCHANGED_TOAST, b"\x01\x02"),
    update_msg(ROW),
    update_msg(ROW, ROW, b"K"),
    update_msg(ROW, ROW, b"O"),
    delete_msg(ROW, b"K"),
    delete_msg(ROW, b"O"),
    truncate_msg((1, 2, 3), 1),
    message_msg(),
    b"S" + u32(900) + u8(1),
    b"c" + u32(900) + u8(0) + u64(LSN) + u64(END_LSN) + i64(COMMIT_US),
]


@pytest.mark.parametrize("data", VALID_MESSAGES, ids=lambda d: chr(d[0]))
def test_truncation_at_every_byte_is_reported(data: bytes) -> None:
    decode_message(data)  # the whole message is valid
    for cut in range(len(data)):
        with pytest.raises(PgOutputError) as info:
            decode_message(data[:cut])
        assert info.value.offset is not None and info.value.offset <= cut, (cut, info.value)


def test_truncated_message_names_the_field() -> None:
    with pytest.raises(PgOutputError, match=r"'B' message: truncated commit timestamp"):
        decode_message(begin_msg()[:12])
    with pytest.raises(PgOutputError, match=r"truncated column 1: needs 12 bytes, 3 left"):
        decode_message(insert_msg("1", "Ada Lovelace")[:-9])


def test_stream_abort_truncated_inside_the_v4_fields() -> None:
    v4 = b"A" + u32(900) + u32(901) + u64(LSN) + i64(COMMIT_US)
    for cut in range(len(v4)):
        if cut == 9:
            continue  # exactly the protocol version 2 form
        with pytest.raises(PgOutputError):
            decode_message(v4[:cut])


TAGS = st.sampled_from(list(b"BCORYIUDTMSEcAbPKrp"))


@given(st.binary(max_size=64), st.booleans())
def test_random_bytes_raise_only_pgoutput_error(data: bytes, in_stream: bool) -> None:
    with contextlib.suppress(PgOutputError):
        decode_message(data, in_stream=in_stream)


@given(TAGS, st.binary(max_size=80), st.booleans())
def test_random_bodies_raise_only_pgoutput_error(tag: int, body: bytes, in_stream: bool) -> None:
    with contextlib.suppress(PgOutputError):
        decode_message(bytes([tag]) + body, in_stream=in_stream)


@given(st.sampled_from(VALID_MESSAGES), st.data())
def test_corrupted_valid_messages_raise_only_pgoutput_error(
    data: bytes, draw: st.DataObject
) -> None:
    position = draw.draw(st.integers(min_value=0, max_value=len(data) - 1))
    byte = draw.draw(st.integers(min_value=0, max_value=255))
    corrupted = data[:position] + bytes([byte]) + data[position + 1 :]
    with contextlib.suppress(PgOutputError):
        decode_message(corrupted)


COLUMN_VALUES = st.one_of(
    st.none(), st.just(UNCHANGED_TOAST), st.text(max_size=20), st.binary(max_size=20)
)


@given(st.integers(0, 0xFFFF_FFFF), st.lists(COLUMN_VALUES, max_size=12))
def test_insert_round_trip_property(oid: int, values: list[ColumnValue]) -> None:
    assert decode_message(insert_msg(*values, oid=oid)) == Insert(oid, TupleData(tuple(values)))


# --- the streaming replication envelope -----------------------------------------------------


def test_xlogdata() -> None:
    payload = insert_msg(*ROW)
    message = decode_copy_data(xlogdata(payload))
    assert message == XLogData(LSN, END_LSN, COMMIT_TIME, COMMIT_US, payload)
    assert isinstance(message, XLogData)
    assert decode_message(message.data) == Insert(16_384, TupleData(ROW))


def test_xlogdata_may_be_empty() -> None:
    assert decode_copy_data(xlogdata(b"")) == XLogData(LSN, END_LSN, COMMIT_TIME, COMMIT_US, b"")


@pytest.mark.parametrize(("flag", "reply"), [(0, False), (1, True)])
def test_primary_keepalive(flag: int, reply: bool) -> None:
    assert decode_copy_data(keepalive(reply=flag)) == PrimaryKeepalive(
        END_LSN, COMMIT_TIME, COMMIT_US, reply
    )


@pytest.mark.parametrize("data", [xlogdata(b"")[:-1], keepalive()], ids=["w", "k"])
def test_envelope_truncation_at_every_byte(data: bytes) -> None:
    for cut in range(len(data)):
        with pytest.raises(PgOutputError):
            decode_copy_data(data[:cut])


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"", "truncated message type"),
        (b"r" + b"\x00" * 33, "unknown replication CopyData type 'r'"),
        (keepalive() + b"\x00", "unexpected trailing bytes"),
        (b"w" + u64(0) + u64(0) + i64(-(1 << 63)), "out of range"),
        (b"k" + u64(0) + i64(0), "truncated reply-requested flag"),
    ],
)
def test_malformed_envelopes(data: bytes, pattern: str) -> None:
    with pytest.raises(PgOutputError, match=pattern):
        decode_copy_data(data)


@given(st.binary(max_size=40))
def test_random_envelopes_raise_only_pgoutput_error(data: bytes) -> None:
    with contextlib.suppress(PgOutputError):
        decode_copy_data(data)


def test_standby_status_update_layout() -> None:
    data = encode_standby_status_update(LSN, LSN - 1, LSN - 2, COMMIT_TIME, reply_requested=True)
    assert data == b"r" + u64(LSN) + u64(LSN - 1) + u64(LSN - 2) + i64(COMMIT_US) + u8(1)
    assert len(data) == 34
    quiet = encode_standby_status_update(0, 0, 0, PG_EPOCH)
    assert quiet == b"r" + b"\x00" * 32 + b"\x00"


@pytest.mark.parametrize(
    ("written", "flushed", "applied", "name"),
    [(-1, 0, 0, "written"), (0, 1 << 64, 0, "flushed"), (0, 0, -5, "applied")],
)
def test_standby_status_update_rejects_bad_lsns(
    written: int, flushed: int, applied: int, name: str
) -> None:
    with pytest.raises(ValueError, match=f"{name} LSN"):
        encode_standby_status_update(written, flushed, applied, COMMIT_TIME)


def test_standby_status_update_needs_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="naive"):
        encode_standby_status_update(0, 0, 0, datetime(2026, 1, 1))


# --- the relation cache ---------------------------------------------------------------------


def cache_with(*messages: bytes) -> RelationCache:
    cache = RelationCache()
    for data in messages:
        cache.observe(decode_message(data))
    return cache


def test_cache_turns_an_insert_into_a_dict() -> None:
    cache = cache_with(relation_msg(), begin_msg())
    assert 16_384 in cache and len(cache) == 1
    insert = decode_message(insert_msg(*ROW))
    assert isinstance(insert, Insert)
    change = cache.change(insert)
    assert change.action is ChangeAction.INSERT
    assert change.relation.name == "guests"
    assert change.record == {"id": "1", "name": "Ada Lovelace", "rsvp": "t", "notes": None}
    assert change.old_record is None
    assert cache.column_types(16_384) == {
        "id": "int8",
        "name": "text",
        "rsvp": "bool",
        "notes": "text",
    }


def test_cache_update_with_key_keeps_only_key_columns_of_the_old_row() -> None:
    cache = cache_with(relation_msg())
    update = decode_message(update_msg(ROW, ("7", None, None, None), b"K"))
    assert isinstance(update, Update)
    change = cache.change(update)
    assert change.action is ChangeAction.UPDATE
    assert change.record == dict(zip(("id", "name", "rsvp", "notes"), ROW, strict=True))
    assert change.old_record == {"id": "7"}


def test_cache_update_fills_unchanged_toast_from_a_full_old_row() -> None:
    cache = cache_with(relation_msg(identity=b"f"))
    new = ("1", "Ada", "t", UNCHANGED_TOAST)
    old = ("1", "Ada L", "f", "long notes")
    update = decode_message(update_msg(new, old, b"O"))
    assert isinstance(update, Update)
    change = cache.change(update)
    assert change.record == {"id": "1", "name": "Ada", "rsvp": "t", "notes": "long notes"}
    assert change.old_record == {"id": "1", "name": "Ada L", "rsvp": "f", "notes": "long notes"}


def test_cache_update_without_old_row_keeps_the_toast_marker() -> None:
    cache = cache_with(relation_msg())
    update = decode_message(update_msg(("1", "Ada", "t", UNCHANGED_TOAST)))
    assert isinstance(update, Update)
    change = cache.change(update)
    assert change.record is not None and change.record["notes"] is UNCHANGED_TOAST
    assert change.old_record is None
    assert repr(UNCHANGED_TOAST) == "UNCHANGED_TOAST"


@pytest.mark.parametrize(
    ("kind", "old_record"),
    [(b"K", {"id": "1"}), (b"O", {"id": "1", "name": "Ada", "rsvp": "t", "notes": None})],
)
def test_cache_delete(kind: bytes, old_record: dict[str, ColumnValue]) -> None:
    cache = cache_with(relation_msg())
    delete = decode_message(delete_msg(("1", "Ada", "t", None), kind))
    assert isinstance(delete, Delete)
    change = cache.change(delete)
    assert change.action is ChangeAction.DELETE
    assert change.record is None
    assert change.old_record == old_record


def test_cache_unknown_relation() -> None:
    cache = RelationCache()
    insert = decode_message(insert_msg("1", oid=777))
    assert isinstance(insert, Insert)
    with pytest.raises(UnknownRelationError, match="unknown relation OID 777"):
        cache.change(insert)
    with pytest.raises(PgOutputError, match="no Relation message"):
        cache.column_types(777)


def test_cache_column_count_mismatch() -> None:
    cache = cache_with(relation_msg())
    insert = decode_message(insert_msg("1", "Ada"))
    assert isinstance(insert, Insert)
    with pytest.raises(PgOutputError, match=r"tuple has 2 columns but relation public.guests"):
        cache.change(insert)


def test_cache_keeps_the_latest_relation_and_types() -> None:
    cache = cache_with(
        relation_msg(),
        type_msg(),
        relation_msg(columns=((1, "id", 20, -1), (0, "meal", 90_001, -1), (0, "x", 4242, -1))),
    )
    assert cache.get(16_384).columns[1].name == "meal"
    assert cache.column_types(16_384) == {"id": "int8", "meal": "meal_choice", "x": "4242"}
    assert cache.type_name(1184) == "timestamptz"
