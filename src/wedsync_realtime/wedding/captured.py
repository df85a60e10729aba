"""Change capture → the domain feed: committed transactions of WedSync tables as `DomainChange`s.

On PostgreSQL the platform writes the WedSync tables and logical replication (`cdc.capture`)
hands every committed transaction to `PostgresChanges`, which passes each batch to its
transaction listeners before acknowledging it. `DomainCapture.consume` is such a listener: it
keeps the changes of the tables the feed understands (schema ``public``), turns pgoutput's text
values into the JSON values the feed reads (by column type, as ``to_jsonb`` would give them), and
calls `ChangeFeed.apply` once per transaction, in commit order.

A batch is handed on again after a crash or a lost connection (at-least-once): the router's
domain-derived message ids and the notifications' derived ids make a second pass publish and
store nothing new.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

import orjson

from wedsync_realtime.cdc.changes import CapturedChange, Transaction
from wedsync_realtime.cdc.messages import ColumnValue
from wedsync_realtime.cdc.relations import ChangeAction
from wedsync_realtime.timestamps import iso_millis
from wedsync_realtime.wedding.change_feed import ChangeFeed, ChangeType, DomainChange
from wedsync_realtime.wedding.events import JsonValue

__all__ = ["FEED_TABLES", "DomainCapture", "domain_change", "json_value"]

log = logging.getLogger(__name__)

#: The tables whose changes become domain events (schema ``public``).
FEED_TABLES = frozenset({"core_field_values", "form_responses"})

_INTEGERS = frozenset({"int2", "int4", "int8"})
_NUMBERS = frozenset({"float4", "float8", "numeric"})
_JSON = frozenset({"json", "jsonb"})
_INSTANTS = frozenset({"timestamptz", "timestamp"})


def json_value(type_name: str, text: str | None) -> JsonValue:
    """A pgoutput text value of a column of type `type_name` as JSON (None for NULL)."""
    if text is None:
        return None
    if type_name in _INTEGERS:
        return int(text)
    if type_name in _NUMBERS:
        return float(text)
    if type_name == "bool":
        return text == "t"
    if type_name in _JSON:
        loaded: JsonValue = orjson.loads(text)
        return loaded
    if type_name in _INSTANTS:
        return iso_millis(dt.datetime.fromisoformat(text))
    return text


def _row(change: CapturedChange, row: Mapping[str, ColumnValue] | None) -> dict[str, JsonValue]:
    """The row's values as JSON; binary and unchanged-TOAST values are left out."""
    if row is None:
        return {}
    types = change.column_types
    return {
        name: json_value(types.get(name, "text"), value)
        for name, value in row.items()
        if value is None or isinstance(value, str)
    }


def domain_change(change: CapturedChange) -> DomainChange:
    record = _row(change, change.record) if change.record is not None else None
    old = _row(change, change.old_record) if change.old_record is not None else None
    return DomainChange(change.table, ChangeType(change.type.value), record, old)


class DomainCapture:
    """A `PostgresChanges` transaction listener feeding the `ChangeFeed`."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self.transactions_applied = 0

    async def consume(self, transactions: Sequence[Transaction]) -> None:
        for transaction in transactions:
            changes = [
                domain_change(c)
                for c in transaction.changes
                if c.schema == "public" and c.table in FEED_TABLES and _has_row(c)
            ]
            if not changes:
                continue
            report = await self._feed.apply(changes)
            self.transactions_applied += 1
            if report.failed:
                log.error(
                    "transaction %d: %d of its domain messages were not published",
                    transaction.xid,
                    len(report.failed),
                )


def _has_row(change: CapturedChange) -> bool:
    return change.record is not None or change.type is ChangeAction.DELETE
