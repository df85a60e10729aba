"""Postgres Changes ``filter`` strings: parse, validate against a table, evaluate against a row.

A ``postgres_changes`` binding may carry ``"filter": "column=op.value"`` (Supabase Realtime,
``lib/extensions/postgres_cdc_rls/subscriptions.ex`` ``parse_subscription_params/1``; evaluated in
the database by ``realtime.check_equality_op``). Supported here:

- operators ``eq``, ``neq``, ``lt``, ``lte``, ``gt``, ``gte`` and ``in``;
- ``in.(a,b,c)`` with 1 to `MAX_IN_VALUES` values; blanks around unquoted values are dropped, as
  PostgreSQL's array input does with the ``{a, b}`` literal Supabase builds from the list;
- PostgREST quoting: a value (or list item) in double quotes may hold ``,``, ``(``, ``)``, blanks
  and, escaped by a backslash, ``"`` and ``\\``;
- several conditions separated by commas, all of which must hold (AND).

How commas are split: the string is read left to right, one condition at a time. In a condition,
the column runs to the first ``=`` and the operator to the next ``.``. For ``in`` the value must be
``(`` ... ``)``: commas inside the parentheses (outside quotes) separate list items, and the list
must be followed by a comma or the end. For every other operator an unquoted value runs to the
next comma, so a scalar value containing a comma must be quoted (``title=eq."a,b"``); a quoted
value must be followed by a comma or the end. An empty filter means "every row".

Not supported (newer servers accept them): ``like``, ``ilike``, ``is``, ``match``, ``imatch``,
``isdistinct`` and the ``not.`` prefix. They are refused as unknown operators.

Evaluation follows SQL: a NULL (or absent) column matches no condition, not even ``neq``. Values
are compared as the column's type (see `cdc.filter_values`).
"""

from __future__ import annotations

import enum
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from wedsync_realtime.cdc.filter_values import SortKey, normalise_type, sort_key

__all__ = [
    "MAX_IN_VALUES",
    "Condition",
    "Filter",
    "FilterError",
    "Op",
    "matches",
    "parse_filter",
    "validate_filter",
]

#: Supabase's ``realtime.subscription_check_filters`` allows at most 100 values for ``in``.
MAX_IN_VALUES: Final = 100

_PREFIX: Final = "Error parsing `filter` params: "
_COLUMN_FORBIDDEN: Final = frozenset('=.,()"\\')
_NEEDS_QUOTES: Final = frozenset(',()"\\')


class FilterError(ValueError):
    """A filter that cannot be parsed, or does not fit the table; the message names the part."""

    def __init__(self, detail: str) -> None:
        super().__init__(_PREFIX + detail)
        self.detail = detail


class Op(enum.StrEnum):
    """A filter operator, spelled as in PostgREST."""

    EQ = "eq"
    NEQ = "neq"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"


_COMPARE: Final[dict[Op, Callable[[SortKey, SortKey], bool]]] = {
    Op.EQ: operator.eq,
    Op.NEQ: operator.ne,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """``column=op.value``; ``values`` holds one value, or the list of an ``in``."""

    column: str
    op: Op
    values: tuple[str, ...]

    @property
    def value(self) -> str:
        """The single value of a comparison operator (for ``in``, the first list item)."""
        return self.values[0]

    def __str__(self) -> str:
        if self.op is Op.IN:
            return f"{self.column}=in.({','.join(_quote(v, strip=True) for v in self.values)})"
        return f"{self.column}={self.op}.{_quote(self.value, strip=False)}"


@dataclass(frozen=True, slots=True)
class Filter:
    """Conditions that must all hold; no conditions matches every row."""

    conditions: tuple[Condition, ...] = ()

    def __str__(self) -> str:
        """The canonical filter string; `parse_filter` reads it back to an equal `Filter`."""
        return ",".join(str(condition) for condition in self.conditions)

    @property
    def columns(self) -> frozenset[str]:
        """Every column the filter reads."""
        return frozenset(condition.column for condition in self.conditions)


def parse_filter(text: str | None) -> Filter:
    """Parse a ``filter`` param; ``None`` or ``""`` is the empty filter. Raises `FilterError`."""
    if not text:
        return Filter()
    return _Parser(text).parse()


def validate_filter(flt: Filter, column_types: Mapping[str, str]) -> None:
    """Check that each column exists and each value reads as the column's type.

    ``column_types`` maps the table's column names to type names (``pg_type.typname`` as in a
    Relation message or the payload's ``columns``, or SQL spellings such as ``integer``).
    """
    for condition in flt.conditions:
        if condition.column not in column_types:
            known = ", ".join(sorted(column_types)) or "none"
            raise FilterError(f"unknown column `{condition.column}` (the table has: {known})")
        type_name = normalise_type(column_types[condition.column])
        for value in condition.values:
            try:
                _filter_key(type_name, value)
            except ValueError as exc:
                raise FilterError(
                    f"invalid value {value!r} in `{condition}` for column "
                    f"`{condition.column}` of type {type_name}: {exc}"
                ) from None


def matches(flt: Filter, record: Mapping[str, object], column_types: Mapping[str, str]) -> bool:
    """Whether ``record`` (column → text value) satisfies every condition of ``flt``.

    A column that is absent, NULL (``None``) or not text (an unchanged TOAST marker, binary data)
    satisfies no condition. A column missing from ``column_types`` compares as text. A filter
    value that does not read as the column's type raises `FilterError`; call `validate_filter`
    when the subscription is made so that this cannot happen later.
    """
    for condition in flt.conditions:
        value = record.get(condition.column)
        if not isinstance(value, str):
            return False
        type_name = normalise_type(column_types.get(condition.column, "text"))
        try:
            wanted = [_filter_key(type_name, item) for item in condition.values]
        except ValueError as exc:
            raise FilterError(f"invalid value in `{condition}`: {exc}") from None
        try:
            actual = sort_key(type_name, value)
        except ValueError:
            return False  # a row value not of its own type: nothing sensible matches it
        if condition.op is Op.IN:
            if actual not in wanted:
                return False
        elif not _COMPARE[condition.op](actual, wanted[0]):
            return False
    return True


@functools.lru_cache(maxsize=4096)
def _filter_key(type_name: str, text: str) -> SortKey:
    # Filter values repeat for every row a subscription sees; row values mostly do not.
    return sort_key(type_name, text)


def _quote(value: str, *, strip: bool) -> str:
    plain = (
        value
        and not _NEEDS_QUOTES.intersection(value)
        and not (strip and value != value.strip())
        and value != "undefined"
    )
    if plain:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    """A left-to-right reader of one filter string (see the module docstring for the grammar)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0

    def parse(self) -> Filter:
        conditions: list[Condition] = []
        while True:
            conditions.append(self._condition())
            if self.pos == len(self.text):
                return Filter(tuple(conditions))
            self.pos += 1  # the comma that _condition stopped at
            if self.pos == len(self.text):
                raise FilterError(f"trailing comma in {self.text!r}")

    def _error(self, problem: str) -> FilterError:
        end = self.text.find(",", self.pos)
        part = self.text[self.start : len(self.text) if end < 0 else end] or self.text
        return FilterError(f"{problem} in `{part}` (at character {self.pos})")

    def _scan_to(self, stops: str) -> str:
        """Advance to the first character of ``stops`` (or the end); return what was passed."""
        begin = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            self.pos += 1
        return self.text[begin : self.pos]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _condition(self) -> Condition:
        self.start = self.pos
        column = self._scan_to("=,")
        if self._peek() != "=":
            raise self._error("expected `column=operator.value`")
        if not column:
            raise self._error("empty column name")
        if _COLUMN_FORBIDDEN.intersection(column) or column != column.strip():
            raise self._error(f"invalid column name {column!r}")
        self.pos += 1
        op_text = self._scan_to(".,")
        if self._peek() != ".":
            raise self._error(f"expected `.` and a value after operator {op_text!r}")
        try:
            op = Op(op_text)
        except ValueError:
            supported = ", ".join(o.value for o in Op)
            raise self._error(f"unknown operator {op_text!r} (supported: {supported})") from None
        self.pos += 1
        values = self._list() if op is Op.IN else (self._scalar(),)
        if self.pos < len(self.text) and self.text[self.pos] != ",":
            raise self._error("expected `,` or the end after the value")
        return Condition(column, op, values)

    def _scalar(self) -> str:
        if self._peek() == '"':
            return self._quoted()
        value = self._scan_to(",")
        if value == "undefined":
            raise self._error("the value is `undefined` (an unset variable in the client?)")
        return value

    def _list(self) -> tuple[str, ...]:
        if self._peek() != "(":
            raise self._error("`in` needs a list in parentheses, like `in.(1,2,3)`")
        self.pos += 1
        items: list[str] = []
        while True:
            self._scan_blanks()
            if self._peek() == '"':
                item = self._quoted()
                self._scan_blanks()
            else:
                item = self._scan_to(',()"').strip()
                if not item:
                    raise self._error("empty value in `in` list")
            items.append(item)
            if len(items) > MAX_IN_VALUES:
                raise self._error(f"more than {MAX_IN_VALUES} values in `in` list")
            stop = self._peek()
            self.pos += 1
            if stop == ")":
                return tuple(items)
            if stop != ",":
                self.pos -= 1
                what = f"unexpected {stop!r}" if stop else "missing `)`"
                raise self._error(f"{what} in `in` list")

    def _scan_blanks(self) -> None:
        while self._peek().isspace():
            self.pos += 1

    def _quoted(self) -> str:
        opening = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\" and self.pos < len(self.text):
                char = self.text[self.pos]
                self.pos += 1
            chars.append(char)
        self.pos = opening
        raise self._error("unterminated double quote")
