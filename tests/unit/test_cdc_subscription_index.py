"""`SubscriptionIndex`: a change visits the subscriptions of its `eq` bucket and the unindexed
ones only, and the subscriptions it then matches are exactly those a full scan matches."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping

from wedsync_realtime.cdc.filters import Filter, FilterError, matches, parse_filter
from wedsync_realtime.cdc.subscription_index import SubscriptionIndex, Target, eq_condition

CORE = ("public", "core_field_values")
TYPES = {"id": "uuid", "couple_id": "uuid", "version": "int4", "field_name": "text"}

Bindings = list[tuple[Target, Filter]]


def index_of(subscriptions: Mapping[str, Bindings]) -> SubscriptionIndex[str, str]:
    index: SubscriptionIndex[str, str] = SubscriptionIndex()
    for key, bindings in subscriptions.items():
        index.add(key, key, [(target, eq_condition(flt)) for target, flt in bindings])
    return index


def one(filter_text: str, target: Target = CORE) -> Bindings:
    return [(target, parse_filter(filter_text))]


def test_a_change_visits_only_its_bucket_and_the_unindexed_subscriptions() -> None:
    couples = [uuid.uuid4() for _ in range(1_000)]
    subscriptions = {f"couple-{i}": one(f"couple_id=eq.{c}") for i, c in enumerate(couples)}
    subscriptions |= {
        "everything": one(""),
        "not-mine": one(f"couple_id=neq.{couples[0]}"),
        "recent": one("version=gt.1"),
        "any-table": one("", ("public", "*")),
        "any-schema": one(f"couple_id=eq.{couples[7]}", ("*", "core_field_values")),
        "other-table": one(f"couple_id=eq.{couples[7]}", ("public", "form_responses")),
        # Spelled in upper case: equal as a uuid, so in the same bucket.
        "upper": one(f"couple_id=eq.{str(couples[7]).upper()}"),
        # Two conditions: indexed by the eq one; the other is for `matches` to check.
        "both": one(f"version=gte.2,couple_id=eq.{couples[7]}"),
    }
    index = index_of(subscriptions)
    row = {"id": str(uuid.uuid4()), "couple_id": str(couples[7]), "version": "1"}

    found = index.candidates(*CORE, row, TYPES)

    unindexed = {"everything", "not-mine", "recent", "any-table", "any-schema"}
    assert set(found) == {"couple-7", "upper", "both"} | unindexed
    # A row of no subscribed couple visits the unindexed subscriptions alone.
    assert set(index.candidates(*CORE, {**row, "couple_id": str(uuid.uuid4())}, TYPES)) == (
        unindexed
    )
    # NULL or missing: no eq condition holds.
    assert set(index.candidates(*CORE, {**row, "couple_id": None}, TYPES)) == unindexed
    assert set(index.candidates(*CORE, {"id": row["id"]}, TYPES)) == unindexed


def test_removal_and_replacement() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    index = index_of({"s1": one(f"couple_id=eq.{a}"), "s2": one(f"couple_id=eq.{a}")})
    row = {"couple_id": a}
    assert set(index.candidates(*CORE, row, TYPES)) == {"s1", "s2"}

    index.remove("s1")
    assert set(index.candidates(*CORE, row, TYPES)) == {"s2"}
    # Adding a key again replaces what it was indexed under.
    index.add("s2", "s2", [(CORE, ("couple_id", b))])
    assert index.candidates(*CORE, row, TYPES) == {}
    assert set(index.candidates(*CORE, {"couple_id": b}, TYPES)) == {"s2"}
    # A subscription with an eq binding and an unfiltered one on the table is scanned.
    index.add("s2", "s2", [(CORE, ("couple_id", b)), (CORE, None)])
    assert set(index.candidates(*CORE, row, TYPES)) == {"s2"}
    index.remove("s2")
    index.remove("never-added")
    assert len(index) == 0 and index.candidates(*CORE, row, TYPES) == {}


def test_values_are_compared_as_the_changes_column_type() -> None:
    index = index_of({"ten": one("version=eq.10"), "word": one("version=eq.ten")})
    as_int = {"version": "int4"}
    # "010" = "10" as integers; "ten" is no integer and lands in no bucket.
    assert set(index.candidates(*CORE, {"version": "010"}, as_int)) == {"ten"}
    assert index.candidates(*CORE, {"version": "x"}, as_int) == {}
    # The column became text (ALTER COLUMN ... TYPE): the buckets follow the change's type.
    as_text = {"version": "text"}
    assert index.candidates(*CORE, {"version": "010"}, as_text) == {}
    assert set(index.candidates(*CORE, {"version": "ten"}, as_text)) == {"word"}
    index.add("eleven", "eleven", [(CORE, ("version", "11"))])
    assert set(index.candidates(*CORE, {"version": "11"}, as_text)) == {"eleven"}
    assert set(index.candidates(*CORE, {"version": "011"}, as_int)) == {"eleven"}


def _full_scan(subscriptions: Mapping[str, Bindings], row: dict[str, str | None]) -> set[str]:
    """What `PostgresChanges._plan` matched before the index: every binding of every
    subscription of the table."""
    matched = set()
    for key, bindings in subscriptions.items():
        for (schema, table), flt in bindings:
            if schema in ("*", CORE[0]) and table in ("*", CORE[1]):
                try:
                    if matches(flt, row, TYPES):
                        matched.add(key)
                except FilterError:
                    continue
    return matched


def test_candidates_then_matches_equals_a_full_scan() -> None:
    rng = random.Random(20261121)
    couples = [str(uuid.uuid4()) for _ in range(6)]
    filters = [
        "",
        *(f"couple_id=eq.{c}" for c in couples),
        *(f"version=eq.{n}" for n in range(4)),
        f"couple_id=neq.{couples[0]}",
        f"couple_id=in.({couples[1]},{couples[2]})",
        "version=gt.1",
        "field_name=eq.venue",
        f"version=eq.2,couple_id=eq.{couples[3]}",
    ]
    targets = [CORE, CORE, CORE, ("public", "*"), ("public", "forms")]
    subscriptions: dict[str, Bindings] = {}
    for n in range(400):
        bindings = [
            (rng.choice(targets), parse_filter(rng.choice(filters)))
            for _ in range(rng.choice((1, 1, 2, 3)))
        ]
        subscriptions[f"s{n}"] = bindings
    index = index_of(subscriptions)
    for _ in range(500):
        row: dict[str, str | None] = {
            "couple_id": rng.choice([*couples, str(uuid.uuid4()), None]),
            "version": rng.choice(["0", "1", "2", "3", "02", None]),
            "field_name": rng.choice(["venue", "date", None]),
        }
        found = index.candidates(*CORE, row, TYPES)
        expected = _full_scan(subscriptions, row)
        assert expected <= set(found)
        assert _full_scan({k: subscriptions[k] for k in found}, row) == expected
        # And the index is a real pre-filter: most subscriptions are not visited.
        assert len(found) < len(subscriptions)
