"""Change capture → the domain feed: committed transactions of WedSync tables as `DomainChange`s.

On PostgreSQL the platform writes the WedSync tables and logical replication (`cdc.capture`)
hands every committed transaction to `PostgresChanges`, which passes each batch to its
transaction listeners before acknowledging it. `DomainCapture.consume` is such a listener: it
keeps the changes of the tables the feed understands (schema ``public``), turns pgoutput's text
values into the JSON values the feed reads (by column type, as ``to_jsonb`` would give them), and
calls `ChangeFeed.apply` once per transaction, in commit order. When the batch changes a fact
the access rules read (a supplier-couple connection, a team membership, a profile, a wedding, a
form's recipients), the channels joined on this node that may depend on it are authorized again
first, and the ones no longer allowed are closed (issue 5: "A supplier never receives anything
about a couple it is not connected to").

A batch is handed on again after a crash or a lost connection (at-least-once): the router's
domain-derived message ids and the notifications' derived ids make a second pass publish and
store nothing new.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

import orjson
import psycopg

from wedsync_realtime.cdc.changes import CapturedChange, Transaction
from wedsync_realtime.cdc.messages import ColumnValue
from wedsync_realtime.cdc.relations import ChangeAction
from wedsync_realtime.timestamps import iso_millis
from wedsync_realtime.wedding.change_feed import ChangeFeed, ChangeType, DomainChange
from wedsync_realtime.wedding.channels import names_any_of
from wedsync_realtime.wedding.events import JsonValue, Reauthorize

__all__ = ["FACT_TABLES", "FEED_TABLES", "DomainCapture", "domain_change", "json_value"]

log = logging.getLogger(__name__)

#: The tables whose changes become domain events (schema ``public``).
FEED_TABLES = frozenset({"core_field_values", "form_responses", "journey_instance_steps"})

#: The tables of the facts the catalog's access rules read (schema ``public``): a change to one
#: may take a right away from members already joined, so their channels are checked again.
FACT_TABLES = frozenset(
    {
        "supplier_client_connections",
        "supplier_team_members",
        "user_profiles",
        "weddings",
        "forms",
        "form_recipients",
        "journey_instances",
    }
)
#: The columns of those rows that name what a channel may be about.
_FACT_ID_COLUMNS = ("id", "supplier_id", "couple_id", "user_id", "form_id")


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
    """A `PostgresChanges` transaction listener feeding the `ChangeFeed`, and re-checking the
    rights of joined members when the facts of the access rules change."""

    def __init__(self, feed: ChangeFeed, reauthorize: Reauthorize | None = None) -> None:
        self._feed = feed
        self._reauthorize = reauthorize

    async def consume(self, transactions: Sequence[Transaction]) -> None:
        await self._recheck(transactions)
        for transaction in transactions:
            changes = [
                domain_change(c)
                for c in transaction.changes
                if c.schema == "public" and c.table in FEED_TABLES and _has_row(c)
            ]
            if not changes:
                continue
            try:
                report = await self._feed.apply(changes)
            except psycopg.OperationalError:
                raise  # the database is away: capture reads the batch again after backoff
            except Exception:
                # One transaction the feed cannot turn into events (a row breaking a constraint
                # of ours, a value we cannot read) must not take the batch's others with it.
                log.exception(
                    "transaction %d: no domain events (it could not be read)", transaction.xid
                )
                continue
            if report.failed:
                log.error(
                    "transaction %d: %d of its domain messages were not published",
                    transaction.xid,
                    len(report.failed),
                )

    async def _recheck(self, transactions: Sequence[Transaction]) -> None:
        """Before routing: a supplier whose connection to a couple ended in this batch must
        not get the batch's events about that couple on channels joined earlier."""
        if self._reauthorize is None:
            return
        ids: set[str] = set()
        users: set[str] = set()
        by_name = False
        for transaction in transactions:
            for change in transaction.changes:
                if change.schema != "public" or change.table not in FACT_TABLES:
                    continue
                if not _may_take_a_right(change):
                    continue
                # Channels named by a form or a journey (`form:{F}`, `journey:progress:{J}`)
                # and weddings (`wedding:{W}`) do not carry the couple's or supplier's id.
                by_name |= change.table in _PAIR_TABLES
                _collect_named(change, ids, users)
        if not ids and not users:
            return

        def concerned(channel: str) -> bool:
            if by_name and channel.startswith(_INDIRECT_PREFIXES):
                return True
            return names_any_of(channel, ids)

        await self._reauthorize(concerned, frozenset(users))


def _collect_named(change: CapturedChange, ids: set[str], users: set[str]) -> None:
    """Add the ids the change's rows (new and old) name to `ids`, and, for a fact about one
    user, that user to `users`."""
    user_column = "user_id" if change.table != "user_profiles" else "id"
    for row in (change.record, change.old_record):
        values = row or {}
        for column in _FACT_ID_COLUMNS:
            value = values.get(column)
            if isinstance(value, str) and value:
                ids.add(value)
        if change.table in _USER_TABLES:
            user = values.get(user_column)
            if isinstance(user, str) and user:
                users.add(user)


#: Facts about a supplier-couple pair: channels named by a wedding, form or journey may depend
#: on them.
_PAIR_TABLES = frozenset(
    {"supplier_client_connections", "weddings", "forms", "form_recipients", "journey_instances"}
)
_INDIRECT_PREFIXES = ("wedding:", "form:", "journey:")
#: Facts about one user: every channel that user has joined may depend on them.
_USER_TABLES = frozenset({"user_profiles", "supplier_team_members"})
#: The columns whose change can take a right away (the rows are whole: REPLICA IDENTITY FULL).
_RIGHTS_COLUMNS = ("status", "supplier_id", "couple_id", "user_id", "user_type", "form_id", "id")


def _may_take_a_right(change: CapturedChange) -> bool:
    """An INSERT grants at most; an UPDATE that leaves every rights column as it was (a name,
    a timestamp) changes nothing the rules read. DELETEs and the other UPDATEs may revoke."""
    if change.type is ChangeAction.INSERT:
        return False
    if change.type is ChangeAction.UPDATE and change.old_record is not None:
        new, old = change.record or {}, change.old_record
        return any(new.get(c) != old.get(c) for c in _RIGHTS_COLUMNS if c in new or c in old)
    return True


def _has_row(change: CapturedChange) -> bool:
    return change.record is not None or change.type is ChangeAction.DELETE
