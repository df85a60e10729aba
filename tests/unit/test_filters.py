"""Postgres Changes filters: parsing (valid and invalid), `in` lists, typed comparisons, NULLs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wedsync_realtime.cdc.filter_values import normalise_type, sort_key
from wedsync_realtime.cdc.filters import (
    MAX_IN_VALUES,
    Condition,
    Filter,
    FilterError,
    Op,
    matches,
    parse_filter,
    validate_filter,
)
from wedsync_realtime.cdc.pgoutput import UNCHANGED_TOAST

GUESTS = {
    "id": "int8",
    "party_size": "int2",
    "name": "text",
    "rsvp": "bool",
    "budget": "numeric",
    "score": "float8",
    "weight": "float4",
    "wedding_date": "date",
    "updated_at": "timestamptz",
    "created_at": "timestamp",
    "guest_uid": "uuid",
    "code": "bpchar",
}


def check(filter_text: str, record: dict[str, object], types: dict[str, str] = GUESTS) -> bool:
    flt = parse_filter(filter_text)
    validate_filter(flt, types)
    return matches(flt, record, types)


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "conditions"),
    [
        ("id=eq.1", [("id", Op.EQ, ("1",))]),
        ("name=neq.Ada", [("name", Op.NEQ, ("Ada",))]),
        ("id=lt.5", [("id", Op.LT, ("5",))]),
        ("id=lte.5", [("id", Op.LTE, ("5",))]),
        ("id=gt.5", [("id", Op.GT, ("5",))]),
        ("id=gte.5", [("id", Op.GTE, ("5",))]),
        ("id=in.(1,2,3)", [("id", Op.IN, ("1", "2", "3"))]),
        ("name=eq.", [("name", Op.EQ, ("",))]),
        ("name=eq.a.b=c", [("name", Op.EQ, ("a.b=c",))]),
        ("name=eq.f(x)", [("name", Op.EQ, ("f(x)",))]),
        ("name=eq.it's", [("name", Op.EQ, ("it's",))]),
        ("name=eq. spaced ", [("name", Op.EQ, (" spaced ",))]),
        ('name=eq."a,b"', [("name", Op.EQ, ("a,b",))]),
        ('name=eq."say \\"hi\\" \\\\ bye"', [("name", Op.EQ, ('say "hi" \\ bye',))]),
        ('name=eq.a"b', [("name", Op.EQ, ('a"b',))]),
        ('name=eq.""', [("name", Op.EQ, ("",))]),
        ('name=eq."undefined"', [("name", Op.EQ, ("undefined",))]),
        ('name=in.("a,b", c ,"d)")', [("name", Op.IN, ("a,b", "c", "d)"))]),
        ('name=in.( " x " )', [("name", Op.IN, (" x ",))]),
        (
            "id=gt.1,name=eq.Ada,rsvp=eq.true",
            [("id", Op.GT, ("1",)), ("name", Op.EQ, ("Ada",)), ("rsvp", Op.EQ, ("true",))],
        ),
        (
            'id=in.(1,2),name=eq."x,y",rsvp=eq.t',
            [("id", Op.IN, ("1", "2")), ("name", Op.EQ, ("x,y",)), ("rsvp", Op.EQ, ("t",))],
        ),
    ],
)
def test_parse_valid(text: str, conditions: list[tuple[str, Op, tuple[str, ...]]]) -> None:
    assert parse_filter(text) == Filter(tuple(Condition(*c) for c in conditions))


@pytest.mark.parametrize("text", [None, ""])
def test_empty_filter_matches_everything(text: str | None) -> None:
    flt = parse_filter(text)
    assert flt == Filter() and flt.conditions == ()
    assert matches(flt, {}, {})
    assert str(flt) == ""


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("id", "expected `column=operator.value` in `id`"),
        ("id,name=eq.1", "expected `column=operator.value` in `id`"),
        ("=eq.1", "empty column name in `=eq.1`"),
        ("i.d=eq.1", "invalid column name 'i.d'"),
        (" id=eq.1", "invalid column name ' id'"),
        ('"id"=eq.1', "invalid column name"),
        ("id=eq", "expected `.` and a value after operator 'eq'"),
        ("id=eq,name=eq.1", "expected `.` and a value after operator 'eq'"),
        ("id=.1", "unknown operator ''"),
        ("id=eqq.1", "unknown operator 'eqq' \\(supported: eq, neq, lt, lte, gt, gte, in\\)"),
        ("id=like.a%", "unknown operator 'like'"),
        ("id=not.eq.1", "unknown operator 'not'"),
        ("id=EQ.1", "unknown operator 'EQ'"),
        ("id=eq.undefined", "the value is `undefined`"),
        ("id=eq.1,", "trailing comma"),
        ("id=eq.1,,name=eq.x", "expected `column=operator.value`"),
        ('name=eq."open', "unterminated double quote"),
        ('name=eq."a"b', "expected `,` or the end after the value"),
        ("id=in.1,2", "`in` needs a list in parentheses"),
        ("id=in.", "`in` needs a list in parentheses"),
        ("id=in.()", "empty value in `in` list"),
        ("id=in.(1,,2)", "empty value in `in` list"),
        ("id=in.(1,2,)", "empty value in `in` list"),
        ("id=in.( )", "empty value in `in` list"),
        ("id=in.(1,2", "missing `\\)` in `in` list"),
        ('id=in.("a"', "missing `\\)` in `in` list"),
        ('id=in.("a" x)', "unexpected 'x' in `in` list"),
        ("id=in.(a(b))", "unexpected '\\(' in `in` list"),
        ('id=in.(a"b")', "unexpected '\"' in `in` list"),
        ('id=in.("a)', "unterminated double quote"),
        ("id=in.(1)x", "expected `,` or the end after the value"),
    ],
)
def test_parse_invalid(text: str, pattern: str) -> None:
    with pytest.raises(FilterError, match=pattern) as info:
        parse_filter(text)
    assert str(info.value).startswith("Error parsing `filter` params: ")
    assert isinstance(info.value, ValueError)


def test_error_names_the_bad_condition_not_the_good_ones() -> None:
    with pytest.raises(FilterError, match=r"in `name=eqq\.x`") as info:
        parse_filter("id=eq.1,name=eqq.x,rsvp=eq.t")
    assert "id=eq.1" not in str(info.value)


def test_in_list_limit() -> None:
    values = ",".join(str(n) for n in range(MAX_IN_VALUES))
    flt = parse_filter(f"id=in.({values})")
    assert len(flt.conditions[0].values) == MAX_IN_VALUES == 100
    with pytest.raises(FilterError, match="more than 100 values in `in` list"):
        parse_filter(f"id=in.({values},100)")


def test_condition_value_and_columns() -> None:
    flt = parse_filter("id=in.(1,2),name=eq.x,id=gt.0")
    assert flt.conditions[1].value == "x"
    assert flt.conditions[0].value == "1"
    assert flt.columns == frozenset({"id", "name"})


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("id=eq.1", "id=eq.1"),
        ('name=eq."a,b"', 'name=eq."a,b"'),
        ("id=in.( 1 , 2 )", "id=in.(1,2)"),
        ('name=in.(" x ",y)', 'name=in.(" x ",y)'),
        ('name=eq."undefined"', 'name=eq."undefined"'),
        ("name=eq.", 'name=eq.""'),
        ('name=eq.a"b', 'name=eq."a\\"b"'),
        ("id=gt.1,name=neq.z", "id=gt.1,name=neq.z"),
    ],
)
def test_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_filter(text)) == canonical
    assert parse_filter(canonical) == parse_filter(text)


COLUMNS = st.text(st.characters(blacklist_characters='=.,()"\\'), min_size=1, max_size=8).filter(
    lambda c: c == c.strip()
)
VALUES = st.text(max_size=10)
CONDITIONS = st.one_of(
    st.builds(
        Condition,
        COLUMNS,
        st.sampled_from([op for op in Op if op is not Op.IN]),
        st.tuples(VALUES),
    ),
    st.builds(
        Condition,
        COLUMNS,
        st.just(Op.IN),
        st.lists(VALUES.filter(lambda v: v.strip() == v and v != ""), min_size=1, max_size=5).map(
            tuple
        ),
    ),
)


@given(st.lists(CONDITIONS, min_size=1, max_size=4))
def test_format_then_parse_round_trips(conditions: list[Condition]) -> None:
    flt = Filter(tuple(conditions))
    assert parse_filter(str(flt)) == flt


@given(st.text(max_size=40))
def test_random_text_raises_only_filter_error(text: str) -> None:
    try:
        flt = parse_filter(text)
    except FilterError:
        return
    assert parse_filter(str(flt)) == flt


# --- validation against a table -------------------------------------------------------------


def test_validate_unknown_column_is_named() -> None:
    with pytest.raises(FilterError, match=r"unknown column `nam` \(the table has: .*name"):
        validate_filter(parse_filter("id=eq.1,nam=eq.x"), GUESTS)
    with pytest.raises(FilterError, match=r"the table has: none"):
        validate_filter(parse_filter("id=eq.1"), {})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("id=eq.abc", "invalid value 'abc' in `id=eq.abc` for column `id` of type int8"),
        ("id=eq.1.5", "invalid input syntax for type int8"),
        ("id=eq.1_000", "invalid input syntax for type int8"),
        ("id=eq.", "invalid input syntax for type int8"),
        ("party_size=eq.40000", "out of range for type int2"),
        ("id=in.(1,x,3)", "invalid value 'x'"),
        ("rsvp=eq.maybe", "invalid input syntax for type boolean"),
        ("rsvp=eq.o", "invalid input syntax for type boolean"),
        ("budget=gt.1e", "invalid input syntax for type numeric"),
        ("weight=gt.1e39", "out of range for type float4"),
        ("score=gt.1e400", "out of range for type float8"),
        ("wedding_date=eq.next week", "for column `wedding_date` of type date"),
        ("updated_at=gt.yesterday", "of type timestamptz"),
        ("guest_uid=eq.not-a-uuid", "of type uuid"),
    ],
)
def test_validate_values_against_column_types(text: str, pattern: str) -> None:
    with pytest.raises(FilterError, match=pattern):
        validate_filter(parse_filter(text), GUESTS)


def test_validate_accepts_sql_type_spellings_and_unknown_types_as_text() -> None:
    types = {"a": "INTEGER", "b": "double precision", "c": "timestamp with time zone", "d": "ltree"}
    validate_filter(parse_filter("a=eq.1,b=gt.1.5,c=lt.2026-01-01,d=eq.x.y"), types)
    with pytest.raises(FilterError, match="type int4"):
        validate_filter(parse_filter("a=eq.x"), types)
    assert normalise_type(" Bigint ") == "int8"


# --- evaluation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "record", "expected"),
    [
        # integers compare as numbers, not text ("10" > "9")
        ("id=eq.1", {"id": "1"}, True),
        ("id=eq.01", {"id": "1"}, True),
        ("id=eq.+1", {"id": "1"}, True),
        ("id=eq.2", {"id": "1"}, False),
        ("id=gt.9", {"id": "10"}, True),
        ("id=lt.9", {"id": "10"}, False),
        ("id=gte.10", {"id": "10"}, True),
        ("id=lte.9", {"id": "10"}, False),
        ("id=neq.3", {"id": "4"}, True),
        ("id=neq.4", {"id": "4"}, False),
        ("id=in.(1,2,3)", {"id": "2"}, True),
        ("id=in.(1,2,3)", {"id": "4"}, False),
        ("id=in.( 1 , 02 )", {"id": "2"}, True),
        # numeric / float
        ("budget=eq.1.50", {"budget": "1.5"}, True),
        ("budget=gt.2", {"budget": "10.25"}, True),
        ("budget=gt.1e3", {"budget": "999.99"}, False),
        ("budget=gt.100000", {"budget": "NaN"}, True),  # NaN sorts above everything
        ("budget=eq.nan", {"budget": "NaN"}, True),
        ("score=lt.Infinity", {"score": "1e308"}, True),
        ("score=gt.-Infinity", {"score": "-1e308"}, True),
        ("score=eq.0.30000000000000004", {"score": "0.3"}, False),
        ("weight=eq.0.10000000149", {"weight": "0.1"}, True),  # same single-precision value
        # booleans
        ("rsvp=eq.true", {"rsvp": "t"}, True),
        ("rsvp=eq.yes", {"rsvp": "t"}, True),
        ("rsvp=eq.off", {"rsvp": "f"}, True),
        ("rsvp=eq.TRUE", {"rsvp": "f"}, False),
        ("rsvp=gt.false", {"rsvp": "t"}, True),
        ("rsvp=in.(1,y)", {"rsvp": "t"}, True),
        # dates and timestamps
        ("wedding_date=gt.2026-05-31", {"wedding_date": "2026-06-01"}, True),
        ("wedding_date=eq.2026-06-01 18:00", {"wedding_date": "2026-06-01"}, True),
        ("wedding_date=lt.infinity", {"wedding_date": "9999-12-31"}, True),
        ("wedding_date=gt.2026-01-01", {"wedding_date": "-infinity"}, False),
        ("updated_at=eq.2026-06-01T10:00:00Z", {"updated_at": "2026-06-01 12:00:00+02"}, True),
        ("updated_at=gt.2026-06-01 10:00", {"updated_at": "2026-06-01 10:00:00.5+00"}, True),
        ("updated_at=lt.2026-06-01", {"updated_at": "2026-05-31 23:59:59.999999+00"}, True),
        ("created_at=eq.2026-06-01 10:00+05", {"created_at": "2026-06-01 10:00:00"}, True),
        ("created_at=gte.2026-06-02", {"created_at": "2026-06-01 23:00:00"}, False),
        # uuid, bpchar, text
        (
            "guest_uid=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            {"guest_uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
            True,
        ),
        ("code=eq.AB", {"code": "AB   "}, True),
        ("name=eq.Ada", {"name": "Ada"}, True),
        ("name=eq.ada", {"name": "Ada"}, False),
        ("name=gt.9", {"name": "10"}, False),  # text order: "1" < "9"
        ("name=lt.b", {"name": "a"}, True),
        ('name=in.("Lovelace, Ada",Bob)', {"name": "Lovelace, Ada"}, True),
        ("name=eq.", {"name": ""}, True),
    ],
)
def test_typed_comparisons(text: str, record: dict[str, object], expected: bool) -> None:
    assert check(text, record) is expected


@pytest.mark.parametrize("op", ["eq.1", "neq.1", "lt.1", "lte.1", "gt.1", "gte.1", "in.(1,2)"])
@pytest.mark.parametrize("value", [None, UNCHANGED_TOAST, b"\x00\x01", 1, "missing"])
def test_null_absent_and_non_text_values_never_match(op: str, value: object) -> None:
    record: dict[str, object] = {} if value == "missing" else {"id": value}
    assert check(f"id={op}", record) is False


def test_conditions_are_anded() -> None:
    text = "id=gt.1,rsvp=eq.true,name=in.(Ada,Bob)"
    assert check(text, {"id": "2", "rsvp": "t", "name": "Ada"})
    assert not check(text, {"id": "1", "rsvp": "t", "name": "Ada"})
    assert not check(text, {"id": "2", "rsvp": "f", "name": "Ada"})
    assert not check(text, {"id": "2", "rsvp": "t", "name": "Eve"})
    assert not check(text, {"id": "2", "rsvp": "t", "name": None})
    assert check("id=gt.1,id=lt.5", {"id": "3"})
    assert not check("id=gt.1,id=lt.5", {"id": "5"})


def test_a_column_without_a_known_type_compares_as_text() -> None:
    flt = parse_filter("extra=gt.9")
    assert matches(flt, {"extra": "10"}, {}) is False
    assert matches(flt, {"extra": "a"}, {}) is True


def test_a_row_value_that_is_not_of_its_type_matches_nothing() -> None:
    assert matches(parse_filter("id=neq.1"), {"id": "not a number"}, GUESTS) is False


def test_matching_an_unvalidated_bad_value_raises_filter_error() -> None:
    with pytest.raises(FilterError, match=r"invalid value in `id=eq\.x`"):
        matches(parse_filter("id=eq.x"), {"id": "1"}, GUESTS)


def test_sort_key_orders_special_values_like_postgres() -> None:
    assert sort_key("numeric", "NaN") == sort_key("numeric", "nan")
    assert sort_key("float8", "NaN") > sort_key("float8", "Infinity")
    assert sort_key("date", "-infinity") < sort_key("date", "0001-01-01")
    assert sort_key("timestamptz", "infinity") > sort_key("timestamptz", "9999-12-31 00:00+00")
    with pytest.raises(ValueError):
        sort_key("oid", "-1")
