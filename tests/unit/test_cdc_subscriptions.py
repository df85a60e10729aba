"""The pure parts of Postgres Changes subscriptions: binding parsing, ids, checks against a
catalog, identities, timestamps, and the names that go into replication commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wedsync_realtime.cdc.catalog import TableInfo
from wedsync_realtime.cdc.changes import format_commit_timestamp
from wedsync_realtime.cdc.replication import quote_literal
from wedsync_realtime.cdc.rls import Identity, TableCheck
from wedsync_realtime.cdc.slot import SlotError, validate_slot_name
from wedsync_realtime.cdc.subscriptions import BindingError, _check, _parse, binding_id

COUPLES = TableInfo(
    oid=1,
    schema="public",
    table="couples",
    column_types={"id": "uuid", "venue_name": "text", "guests": "int4"},
    primary_key=("id",),
    identity_columns=frozenset({"id"}),
    replica_identity_full=False,
    rls_enabled=True,
)


def test_binding_ids_are_stable_integers_shared_by_equal_bindings() -> None:
    a = {"event": "*", "schema": "public", "table": "couples"}
    assert binding_id(a) == binding_id(dict(reversed(list(a.items()))))
    assert binding_id(a) != binding_id({**a, "filter": "id=eq.1"})
    assert 0 <= binding_id(a) < 2**27


def test_parse_echoes_the_binding_with_an_id_and_normalises_for_matching() -> None:
    raw = {"event": "insert", "schema": "public", "table": "couples", "filter": "guests=gt.10"}
    binding = _parse(0, raw)
    assert binding.echo == {**raw, "id": binding.id}
    assert binding.event == "INSERT"
    assert str(binding.filter) == "guests=gt.10"


def test_parse_defaults_schema_public_and_table_wildcard() -> None:
    binding = _parse(0, {"event": "*"})
    assert (binding.schema, binding.table) == ("public", "*")
    assert binding.echo == {"event": "*", "id": binding.id}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"event": "TRUNCATE", "table": "couples"}, "invalid `event`"),
        ({"event": "*", "table": ""}, "invalid `table`"),
        ({"event": "*", "table": "couples", "filter": 3}, "invalid `filter`"),
        ({"event": "*", "table": "couples", "filter": "guests=between.1"}, "unknown operator"),
        ({"event": "*", "table": "couples", "filter": "guests"}, "Error parsing `filter`"),
    ],
)
def test_parse_refuses_bad_bindings(raw: dict[str, object], reason: str) -> None:
    with pytest.raises(BindingError) as caught:
        _parse(3, raw)
    assert reason in str(caught.value)
    assert caught.value.index == 3


def test_check_passes_a_good_binding() -> None:
    binding = _parse(0, {"event": "INSERT", "table": "couples", "filter": "venue_name=eq.Barn"})
    _check(0, binding, [COUPLES], {1}, "authenticated", "wedsync_realtime")


@pytest.mark.parametrize(
    ("raw", "readable", "reason"),
    [
        ({"event": "*", "table": "couples"}, set(), "permission denied"),
        ({"event": "*", "table": "couples", "filter": "nope=eq.1"}, {1}, "unknown column"),
        ({"event": "*", "table": "couples", "filter": "guests=eq.many"}, {1}, "invalid value"),
        ({"event": "DELETE", "table": "couples", "filter": "venue_name=eq.x"}, {1}, "FULL"),
        ({"event": "*", "table": "couples", "filter": "venue_name=eq.x"}, {1}, "FULL"),
    ],
)
def test_check_refuses_with_a_reason(
    raw: dict[str, object], readable: set[int], reason: str
) -> None:
    with pytest.raises(BindingError, match=reason):
        _check(0, _parse(0, raw), [COUPLES], readable, "authenticated", "wedsync_realtime")


def test_check_refuses_a_table_that_is_not_published() -> None:
    with pytest.raises(BindingError) as caught:
        _check(0, _parse(0, {"event": "*", "table": "nope"}), [], set(), "anon", "pub")
    assert str(caught.value) == (
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled "
        "for the given connect parameters: [event: *, schema: public, table: nope, filters: []] "
        "(table public.nope is not enabled for Postgres Changes: it is not in publication 'pub')"
    )
    wildcard = _parse(0, {"event": "INSERT", "schema": "crm", "filter": "id=eq.1"})
    with pytest.raises(BindingError) as caught:
        _check(0, wildcard, [], set(), "anon", "pub")
    assert str(caught.value).endswith(
        "[event: INSERT, schema: crm, table: *, filters: [id=eq.1]] "
        "(no table in publication 'pub' matches crm.*)"
    )


def test_key_filter_on_default_identity_is_fine_for_deletes() -> None:
    binding = _parse(0, {"event": "DELETE", "table": "couples", "filter": f"id=eq.{'0' * 32}"})
    _check(0, binding, [COUPLES], {1}, "authenticated", "wedsync_realtime")


def test_identity_from_claims() -> None:
    a = Identity.from_claims({"sub": "u1", "role": "authenticated", "exp": 5})
    b = Identity.from_claims({"exp": 5, "role": "authenticated", "sub": "u1"})
    assert a == b and hash(a) == hash(b)
    assert a.role == "authenticated" and a.claims["sub"] == "u1"
    assert Identity.from_claims({"sub": "x"}).role == "anon"


def test_table_check_collects_rows_and_needs_once() -> None:
    check = TableCheck(7)
    row = check.add_row({"id": "1"}, ["big"])
    check.need(0, row)
    check.need(0, row)
    assert check.checks == {0: [0]} and check.drop == [["big"]]


def test_commit_timestamp_is_utc_milliseconds_with_z() -> None:
    moment = datetime(2026, 1, 1, 2, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=2)))
    assert format_commit_timestamp(moment) == "2026-01-01T00:00:00.123Z"
    assert format_commit_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"


def test_names_in_replication_commands() -> None:
    assert validate_slot_name("wedsync_realtime") == "wedsync_realtime"
    for bad in ("Upper", "with-dash", "", "x" * 64, "a; DROP"):
        with pytest.raises(SlotError):
            validate_slot_name(bad)
    assert quote_literal("it's") == "'it''s'"
    with pytest.raises(ValueError):
        quote_literal("a\x00b")
