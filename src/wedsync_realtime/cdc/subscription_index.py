"""Which subscriptions a change may match, without visiting every subscription of its table.

Checking a change against each subscription of its table costs about 2.3 µs per pair
(BENCHMARKS.md, "Headroom, and a collapse"): with 1,000 subscribers that alone capped capture
near 300 changes/s. Most bindings name one row owner (``couple_id=eq.<id>``), so the index keeps,
per table, the subscriptions whose every binding on it has an ``eq`` condition in buckets keyed by
(column, value as the column's type), and the others apart:

- `SubscriptionIndex.candidates` returns the subscriptions of the buckets the row's values fall
  in, plus the unindexed ones (no ``eq`` condition, or a ``*`` schema or table);
- it is a pre-filter only: the caller still evaluates every binding of each candidate, so the
  deliveries are those of a full scan. A subscription left out has, for this table, only
  bindings whose ``eq`` condition the row fails, which a full scan would reject too.

Values are compared as `cdc.filters.matches` compares them: both sides become
`filter_values.sort_key` of the column's type *in the change* (so ``'ABC...'`` finds a uuid
bucket of ``'abc...'``); keys are rebuilt when that type differs from the one they were built for
(an ``ALTER COLUMN ... TYPE``), and a filter value that does not read as the new type lands in no
bucket, as `matches` would raise and the scan skip it. Python's equal-implies-equal-hash rule
holds for every sort key (ints, Decimals, floats, dates, UUIDs, strings), so a dictionary lookup
finds exactly the values ``==`` would.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wedsync_realtime.cdc.filter_values import SortKey, normalise_type, sort_key
from wedsync_realtime.cdc.filters import Filter, Op

__all__ = ["EqCondition", "SubscriptionIndex", "Target", "eq_condition"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: (schema, table), either of which may be ``*`` in a binding.
Target = tuple[str, str]
#: (column, filter value text) of a binding's ``eq`` condition; None when it has none.
EqCondition = tuple[str, str] | None


def eq_condition(flt: Filter) -> EqCondition:
    """The first ``eq`` condition of a filter, the one its binding is indexed by."""
    for condition in flt.conditions:
        if condition.op is Op.EQ:
            return condition.column, condition.value
    return None


@dataclass(slots=True)
class _Column(Generic[K, V]):
    """The subscriptions indexed by one column of one table."""

    #: Each subscription's filter values for the column (raw text), and the subscription.
    values: dict[K, tuple[V, tuple[str, ...]]] = field(default_factory=dict)
    #: The (normalised) column type the buckets were keyed with; None: not built yet.
    type_name: str | None = None
    buckets: dict[SortKey, dict[K, V]] = field(default_factory=dict)

    def add(self, key: K, value: V, texts: tuple[str, ...]) -> None:
        self.values[key] = (value, texts)
        if self.type_name is not None:
            self._bucket(self.type_name, key, value, texts)

    def remove(self, key: K) -> None:
        entry = self.values.pop(key, None)
        if entry is None or self.type_name is None:
            return
        for text in entry[1]:
            try:
                bucket_key = sort_key(self.type_name, text)
            except ValueError:
                continue
            bucket = self.buckets.get(bucket_key)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.buckets[bucket_key]

    def lookup(self, type_name: str, text: str) -> Mapping[K, V]:
        """The subscriptions with a value equal to ``text`` read as ``type_name``."""
        if type_name != self.type_name:
            self.type_name = type_name
            self.buckets = {}
            for key, (value, texts) in self.values.items():
                self._bucket(type_name, key, value, texts)
        try:
            return self.buckets.get(sort_key(type_name, text), {})
        except ValueError:
            return {}  # a row value not of its own type: `matches` matches nothing either

    def _bucket(self, type_name: str, key: K, value: V, texts: tuple[str, ...]) -> None:
        for text in texts:
            try:
                bucket_key = sort_key(type_name, text)
            except ValueError:
                continue  # not a value of the column's (new) type: it can match no row
            self.buckets.setdefault(bucket_key, {})[key] = value


@dataclass(slots=True)
class _Target(Generic[K, V]):
    """The subscriptions of one (schema, table) target."""

    scan: dict[K, V] = field(default_factory=dict)
    columns: dict[str, _Column[K, V]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.scan) or any(column.values for column in self.columns.values())


class SubscriptionIndex(Generic[K, V]):
    """Subscriptions (``key`` → ``value``) by target table, and by ``eq`` filter value."""

    def __init__(self) -> None:
        self._targets: dict[Target, _Target[K, V]] = {}
        self._placed: dict[K, list[tuple[Target, str | None]]] = {}

    def __len__(self) -> int:
        return len(self._placed)

    def add(self, key: K, value: V, bindings: Iterable[tuple[Target, EqCondition]]) -> None:
        """Index ``value`` under each binding's target (replacing an earlier ``key``).

        A subscription is bucketed on a target only if every one of its bindings there has an
        ``eq`` condition; otherwise (and on wildcard targets) it is scanned for every change.
        """
        self.remove(key)
        by_target: dict[Target, list[EqCondition]] = {}
        for target, condition in bindings:
            by_target.setdefault(target, []).append(condition)
        placed: list[tuple[Target, str | None]] = []
        for target, conditions in by_target.items():
            entry = self._targets.setdefault(target, _Target())
            eq = [condition for condition in conditions if condition is not None]
            if "*" in target or len(eq) < len(conditions):
                entry.scan[key] = value
                placed.append((target, None))
                continue
            texts: dict[str, list[str]] = {}
            for column, text in eq:
                texts.setdefault(column, []).append(text)
            for column, values in texts.items():
                entry.columns.setdefault(column, _Column()).add(key, value, tuple(values))
                placed.append((target, column))
        self._placed[key] = placed

    def remove(self, key: K) -> None:
        """Forget ``key`` (nothing happens if it is not indexed)."""
        for target, column in self._placed.pop(key, ()):
            entry = self._targets.get(target)
            if entry is None:
                continue
            if column is None:
                entry.scan.pop(key, None)
            else:
                found = entry.columns.get(column)
                if found is not None:
                    found.remove(key)
                    if not found.values:
                        del entry.columns[column]
            if not entry:
                del self._targets[target]

    def candidates(
        self,
        schema: str,
        table: str,
        row: Mapping[str, object],
        column_types: Mapping[str, str],
    ) -> dict[K, V]:
        """The subscriptions a change of ``schema.table`` with filter image ``row`` may match."""
        found: dict[K, V] = {}
        for target in ((schema, table), (schema, "*"), ("*", table), ("*", "*")):
            entry = self._targets.get(target)
            if entry is None:
                continue
            found.update(entry.scan)
            for column, index in entry.columns.items():
                text = row.get(column)
                if isinstance(text, str):  # NULL, absent, unchanged TOAST: no eq holds
                    type_name = normalise_type(column_types.get(column, "text"))
                    found.update(index.lookup(type_name, text))
        return found
