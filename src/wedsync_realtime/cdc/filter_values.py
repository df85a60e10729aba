"""Text values of a row, read as PostgreSQL would compare them, for `cdc.filters`.

A Postgres Changes filter compares a column's text value (as pgoutput sends it) with the filter's
text value *as the column's type*: Supabase's ``realtime.check_equality_op`` casts both to the
column type (``format('%L::%s = %L::%s', ...)``, ``priv/repo/tenant_schema/realtime``). Here both
sides become a sort key, so ``=`` and ``<`` behave as in PostgreSQL for:

- ``int2``/``int4``/``int8``/``oid``: integers (range-checked, PostgreSQL's ``int8in`` syntax);
- ``float4``/``float8``/``numeric``: numbers, where ``NaN`` equals itself and sorts above all
  others (PostgreSQL's rule, unlike IEEE); ``float4`` is rounded to single precision;
- ``bool``: PostgreSQL's ``boolin`` spellings (``t``, ``true``, ``yes``, ``on``, ``1``, prefixes);
- ``date``/``timestamp``/``timestamptz``: ISO 8601 (PostgreSQL's default ``DateStyle`` output),
  ``infinity``/``-infinity``; a naive ``timestamptz`` is UTC (the server session's time zone),
  and a ``timestamp`` ignores a given offset, as its input function does;
- ``uuid``: the 128-bit value; ``bpchar``: text without trailing blanks;
- anything else: text in code point order (the "C" collation; database collations are not known).

A value that does not read as its type raises `ValueError`.
"""

from __future__ import annotations

import math
import re
import struct
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final
from uuid import UUID

__all__ = ["SortKey", "normalise_type", "sort_key"]

SortKey = tuple[int, int | float | Decimal | bool | date | datetime | UUID | str]

_ALIASES: Final = {
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "decimal": "numeric",
    "boolean": "bool",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "character": "bpchar",
    "character varying": "varchar",
}
_INT_RANGES: Final = {
    "int2": (-(1 << 15), (1 << 15) - 1),
    "int4": (-(1 << 31), (1 << 31) - 1),
    "int8": (-(1 << 63), (1 << 63) - 1),
    "oid": (0, (1 << 32) - 1),
}
_INT_RE: Final = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER_RE: Final = re.compile(
    r"\s*(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|[+-]?inf(?:inity)?)\s*", re.IGNORECASE
)
_TRUE: Final = ("true", "yes", "on")
_FALSE: Final = ("false", "no", "off")
_FLOAT4: Final = struct.Struct("f")
# Sort ranks: -infinity < ordinary values < infinity < NaN.
_BELOW, _VALUE, _ABOVE, _NAN = -1, 0, 1, 2


def normalise_type(type_name: str) -> str:
    """``"integer"`` → ``"int4"``: SQL spellings to the ``pg_type.typname`` the payload uses."""
    name = type_name.strip().lower()
    return _ALIASES.get(name, name)


def sort_key(type_name: str, text: str) -> SortKey:
    """A key that compares like ``text::type`` does in PostgreSQL; `ValueError` if it is not one.

    ``type_name`` must already be normalised (`normalise_type`).
    """
    if type_name in _INT_RANGES:
        return _VALUE, _integer(type_name, text)
    if type_name in ("float4", "float8", "numeric"):
        return _number(type_name, text)
    if type_name == "bool":
        return _VALUE, _boolean(text)
    if type_name in ("date", "timestamp", "timestamptz"):
        return _moment(type_name, text)
    if type_name == "uuid":
        return _VALUE, UUID(text.strip())
    if type_name == "bpchar":
        return _VALUE, text.rstrip(" ")
    return _VALUE, text


def _integer(type_name: str, text: str) -> int:
    if _INT_RE.fullmatch(text) is None:
        raise ValueError(f"invalid input syntax for type {type_name}: {text!r}")
    value = int(text)
    low, high = _INT_RANGES[type_name]
    if not low <= value <= high:
        raise ValueError(f"value {text!r} is out of range for type {type_name}")
    return value


def _number(type_name: str, text: str) -> SortKey:
    if _NUMBER_RE.fullmatch(text) is None:
        raise ValueError(f"invalid input syntax for type {type_name}: {text!r}")
    if text.strip().lower() == "nan":
        return _NAN, 0
    if type_name == "numeric":
        try:
            return _VALUE, Decimal(text.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise ValueError(f"invalid input syntax for type numeric: {text!r}") from None
    value = float(text)
    if type_name == "float4":
        value = float(_FLOAT4.unpack(_FLOAT4.pack(value))[0])
    if math.isinf(value) and "inf" not in text.lower():  # overflowed, as in float4in/float8in
        raise ValueError(f"value {text!r} is out of range for type {type_name}")
    return _VALUE, value


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "0"):
        return word == "1"
    # boolin: any unique prefix of true/false/yes/no/on/off; "o" alone could be on or off.
    if word and word != "o":
        if any(spelling.startswith(word) for spelling in _TRUE):
            return True
        if any(spelling.startswith(word) for spelling in _FALSE):
            return False
    raise ValueError(f"invalid input syntax for type boolean: {text!r}")


def _moment(type_name: str, text: str) -> SortKey:
    word = text.strip()
    if word.lower() in ("infinity", "+infinity"):
        return _ABOVE, 0
    if word.lower() == "-infinity":
        return _BELOW, 0
    if type_name == "date":
        try:
            return _VALUE, date.fromisoformat(word)
        except ValueError:
            return _VALUE, datetime.fromisoformat(word).date()
    moment = datetime.fromisoformat(word)
    if type_name == "timestamp":
        return _VALUE, moment.replace(tzinfo=None)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _VALUE, moment
