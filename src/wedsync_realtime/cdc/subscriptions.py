"""`PostgresChanges`: the engine-facing registry of ``postgres_changes`` subscriptions.

It owns change capture (`cdc.capture`), the batched row-level security check (`cdc.rls`) and
the binding catalog (`cdc.catalog`), and turns each captured transaction into one
``postgres_changes`` payload per channel (Supabase Realtime ``message_dispatcher.ex``,
``lib/realtime/adapters/changes.ex``)::

    {"ids": [<every matching binding id of this channel>],
     "data": {"schema", "table", "commit_timestamp", "type", "columns",
              "record" (INSERT, UPDATE), "old_record" (UPDATE, DELETE), "errors"}}

API (all on one event loop)::

    changes = PostgresChanges(CaptureConfig(dsn=...))
    await changes.start()                      # capture runs and reconnects in the background
    echo = await changes.subscribe(key, topic, bindings, identity, deliver, on_system)
    changes.update_identity(key, identity, topic=None)
    changes.unsubscribe(key, topic)            # or unsubscribe_all(key) when a socket closes
    await changes.stop()

- ``bindings`` is the join's ``config.postgres_changes`` list of ``{event, schema, table,
  filter}``; `subscribe` checks them against the catalog and the identity's privileges and
  returns them echoed, in order, each with an integer ``id`` (a hash of the binding, so equal
  bindings share an id, as Supabase's ``:erlang.phash2``), or raises `BindingError` with a
  reason for the join error reply. ``validate`` does the same without subscribing.
- ``identity`` is an `Identity` (`Identity.from_claims(verified_claims)`): the role and claims
  the visibility check applies. Deliveries stop while its ``exp`` claim is in the past.
- ``deliver(payload)`` is called once per (subscriber, topic) and change, in commit order,
  synchronously from the capture task: it must enqueue, never block. Payload dicts share their
  ``data`` object between channels: do not mutate them.
- ``on_system(payload)`` gets ``{"extension": "postgres_changes", "status": "ok"|"error",
  "message": ...}`` (the engine adds ``"channel"``): "Subscribed to PostgreSQL" once capture
  streams (scheduled with ``call_soon`` when it already does, so a reply the engine sends right
  after `subscribe` returns, without awaiting, goes first), an error when PostgreSQL is lost,
  "Subscribed to PostgreSQL" again after recovery.

Delivery is acknowledged to the slot only after every ``deliver`` call of a transaction has
returned. A row over ``max_record_bytes`` (default 1 MiB, Supabase's ``poll_max_record_bytes``)
is sent with only its values of at most 64 bytes and ``errors: ["Error 413: Payload Too
Large"]``, as Supabase does; the stream goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from wedsync_realtime.cdc.capture import (
    CaptureConfig,
    CaptureState,
    CaptureStatus,
    ChangeCapture,
    Consumer,
)
from wedsync_realtime.cdc.catalog import Catalog, TableInfo
from wedsync_realtime.cdc.changes import (
    CapturedChange,
    ChangeAction,
    Transaction,
    format_commit_timestamp,
)
from wedsync_realtime.cdc.filters import Filter, FilterError, matches, parse_filter, validate_filter
from wedsync_realtime.cdc.messages import ColumnValue
from wedsync_realtime.cdc.rls import Identity, RlsChecker, TableCheck, TableVerdict
from wedsync_realtime.cdc.subscription_index import SubscriptionIndex, eq_condition

__all__ = [
    "SUBSCRIBED_MESSAGE",
    "Binding",
    "BindingError",
    "Deliver",
    "Identity",
    "PostgresChanges",
    "binding_id",
]

logger = logging.getLogger(__name__)

Deliver = Callable[[dict[str, Any]], None]

SUBSCRIBED_MESSAGE: Final = "Subscribed to PostgreSQL"
PAYLOAD_TOO_LARGE: Final = "Error 413: Payload Too Large"
#: Supabase keeps values of at most this many bytes of an oversized row.
SMALL_VALUE_BYTES: Final = 64
_EVENTS: Final = ("INSERT", "UPDATE", "DELETE", "*")


class BindingError(ValueError):
    """A binding that cannot be subscribed; ``str()`` is the reason for the join reply."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Binding:
    """A checked binding: ``event`` is upper case, ``schema``/``table`` may be ``*``."""

    id: int
    event: str
    schema: str
    table: str
    filter: Filter
    echo: dict[str, Any]

    def wants(self, change: CapturedChange) -> bool:
        """Event, schema and table match (the filter is checked separately)."""
        return (
            (self.event == "*" or self.event == change.type.value)
            and self.schema in ("*", change.schema)
            and self.table in ("*", change.table)
        )


def binding_id(binding: Mapping[str, Any]) -> int:
    """A stable integer id for a binding: equal bindings, equal ids (27 bits, as phash2)."""
    canonical = json.dumps(binding, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FF_FFFF


@dataclass(slots=True)
class _Subscription:
    key: str
    topic: str
    bindings: tuple[Binding, ...]
    identity: Identity
    expires_at: float | None
    deliver: Deliver
    on_system: Deliver | None
    announced: str | None = None  # the last system status sent: "ok" or "error"

    def system(self, status: str, message: str) -> None:
        if self.on_system is None or self.announced == status:
            return
        self.announced = status
        try:
            self.on_system({"extension": "postgres_changes", "status": status, "message": message})
        except Exception:
            logger.exception("postgres_changes system callback failed for %s", self.topic)


@dataclass(slots=True)
class _Planned:
    """A change, the channels it goes to, and where its images sit in the RLS batch."""

    change: CapturedChange
    table: TableCheck
    matched: list[tuple[_Subscription, list[int], int]]  # subscription, ids, identity index
    new_row: int | None = None
    old_row: int | None = None
    oversized: bool = False
    dropped: frozenset[str] = field(default_factory=frozenset)


class PostgresChanges:
    """Subscriptions, capture and visibility checks for ``postgres_changes``."""

    def __init__(
        self,
        config: CaptureConfig,
        *,
        max_record_bytes: int = 1_048_576,
        catalog_ttl_s: float = 5.0,
        enabled_tables: frozenset[tuple[str, str]] | None = None,
    ) -> None:
        self.config = config
        #: The tables subscribers may bind (`WEDSYNC_CDC_TABLES`); None: every published one.
        #: The publication may hold more: tables other consumers of capture read (the WedSync
        #: domain feed), whose changes are not Postgres Changes.
        self.enabled_tables = enabled_tables
        self.max_record_bytes = max_record_bytes
        self.capture = ChangeCapture(config, self._consume, self._on_capture_status)
        self.rls = RlsChecker(config.dsn)
        self.catalog = Catalog(config.publication, catalog_ttl_s)
        self._catalog_conn: psycopg.AsyncConnection[Any] | None = None
        self._catalog_lock = asyncio.Lock()
        self._subs: dict[tuple[str, str], _Subscription] = {}
        # Subscriptions by table and `eq` filter value: a change visits only those it may match.
        self._index: SubscriptionIndex[tuple[str, str], _Subscription] = SubscriptionIndex()
        self.changes_delivered = 0
        self.changes_withheld = 0
        self._transaction_listeners: list[Consumer] = []

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start capture in the background (it retries until PostgreSQL is reachable)."""
        await self.capture.start()

    async def stop(self) -> None:
        """Stop capture and close the connections."""
        await self.capture.stop()
        await self.rls.close()
        if self._catalog_conn is not None:
            await self._catalog_conn.close()
            self._catalog_conn = None

    @property
    def ready(self) -> bool:
        """Whether capture is streaming (new subscribers get "Subscribed to PostgreSQL")."""
        return self.capture.status.state is CaptureState.STREAMING

    @property
    def lag_bytes(self) -> int:
        """WAL received or announced but not yet acknowledged (see `ChangeCapture.lag_bytes`)."""
        return self.capture.lag_bytes

    def add_transaction_listener(self, listener: Consumer) -> None:
        """Also hand every captured batch of transactions to `listener` (the WedSync domain
        feed). It runs before the batch is acknowledged, so a crash re-reads the batch: a
        listener must tolerate seeing a transaction twice."""
        self._transaction_listeners.append(listener)

    # -- subscriptions ------------------------------------------------------------------------

    async def validate(
        self, bindings: Sequence[Mapping[str, Any]], identity: Identity
    ) -> list[Binding]:
        """Check bindings against the catalog and the identity's privileges (`BindingError`)."""
        async with self._catalog_lock:
            for attempt in (1, 2):
                conn = await self._catalog_connection()
                try:
                    tables = self._enabled(await self.catalog.tables(conn))
                    parsed = [_parse(i, b) for i, b in enumerate(bindings)]
                    if any(not _targets(b, tables) for b in parsed):
                        tables = self._enabled(await self.catalog.tables(conn, fresh=True))
                    targets = [_targets(b, tables) for b in parsed]
                    oids = sorted({t.oid for found in targets for t in found})
                    readable = await Catalog.readable(conn, identity.role, oids)
                    break
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
        for index, (binding, found) in enumerate(zip(parsed, targets, strict=True)):
            _check(
                index,
                binding,
                found,
                readable,
                identity.role,
                self.config.publication,
                by_setting=self.enabled_tables is not None,
            )
        return parsed

    def _enabled(
        self, tables: Mapping[tuple[str, str], TableInfo]
    ) -> Mapping[tuple[str, str], TableInfo]:
        if self.enabled_tables is None:
            return tables
        return {k: v for k, v in tables.items() if k in self.enabled_tables}

    async def subscribe(
        self,
        subscriber_key: str,
        topic: str,
        bindings: Sequence[Mapping[str, Any]],
        identity: Identity,
        deliver: Deliver,
        on_system: Deliver | None = None,
    ) -> list[dict[str, Any]]:
        """Check and register; the bindings echoed with ids, for the join reply.

        Replaces an earlier subscription of the same (subscriber_key, topic). With no bindings,
        nothing is registered and ``[]`` is returned.
        """
        checked = await self.validate(bindings, identity) if bindings else []
        self.unsubscribe(subscriber_key, topic)
        if not checked:
            return []
        sub = _Subscription(
            subscriber_key,
            topic,
            tuple(checked),
            identity,
            _expiry(identity),
            deliver,
            on_system,
        )
        self._subs[(subscriber_key, topic)] = sub
        self._index.add(
            (subscriber_key, topic),
            sub,
            [((b.schema, b.table), eq_condition(b.filter)) for b in checked],
        )
        if self.ready:
            asyncio.get_running_loop().call_soon(self._announce_ok, sub)
        return [b.echo for b in checked]

    def unsubscribe(self, subscriber_key: str, topic: str) -> None:
        """Stop deliveries to this channel (leave, close, rejoin)."""
        if self._subs.pop((subscriber_key, topic), None) is not None:
            self._index.remove((subscriber_key, topic))

    def unsubscribe_all(self, subscriber_key: str) -> None:
        """Every channel of a socket (it closed)."""
        for key, topic in [k for k in self._subs if k[0] == subscriber_key]:
            self.unsubscribe(key, topic)

    def update_identity(
        self, subscriber_key: str, identity: Identity, topic: str | None = None
    ) -> None:
        """Later checks use ``identity`` (an ``access_token`` refresh) for one or every topic."""
        for (key, sub_topic), sub in self._subs.items():
            if key == subscriber_key and (topic is None or topic == sub_topic):
                sub.identity = identity
                sub.expires_at = _expiry(identity)

    def subscription_count(self) -> int:
        """Registered (subscriber, topic) pairs."""
        return len(self._subs)

    # -- status -------------------------------------------------------------------------------

    def _announce_ok(self, sub: _Subscription) -> None:
        if self._subs.get((sub.key, sub.topic)) is sub and self.ready:
            sub.system("ok", SUBSCRIBED_MESSAGE)

    def _on_capture_status(self, status: CaptureStatus) -> None:
        if status.state is CaptureState.STREAMING:
            for sub in list(self._subs.values()):
                sub.system("ok", SUBSCRIBED_MESSAGE)
        elif status.state is CaptureState.RECONNECTING:
            message = (
                "Realtime lost its connection to PostgreSQL and is reconnecting; changes "
                f"committed meanwhile will be delivered after recovery ({status.error})"
            )
            for sub in list(self._subs.values()):
                if sub.announced == "ok":
                    sub.system("error", message)

    # -- the consumer -------------------------------------------------------------------------

    async def _consume(self, transactions: Sequence[Transaction]) -> None:
        """Deliver to the subscribers, then hand the batch to the transaction listeners;
        capture acknowledges it after this returns.

        Subscribers first: their latency must not include the listeners' work (the domain
        feed reads the directory and writes notifications for each change)."""
        await self._deliver_batch(transactions)
        for listener in self._transaction_listeners:
            try:
                await listener(transactions)
            except psycopg.OperationalError:
                raise  # the database is away: capture retries the batch after backoff
            except Exception:
                # A listener's bug must not stall every subscriber's stream behind one batch.
                logger.exception(
                    "a transaction listener failed; its events for this batch are lost"
                )

    async def _deliver_batch(self, transactions: Sequence[Transaction]) -> None:
        """Match, check visibility in one round trip, deliver."""
        identities: dict[Identity, int] = {}
        tables: dict[int, TableCheck] = {}
        planned: list[_Planned] = []
        now = time.time()
        for transaction in transactions:
            for change in transaction.changes:
                if (
                    self.enabled_tables is not None
                    and (change.schema, change.table) not in self.enabled_tables
                ):
                    continue  # captured for another consumer, not enabled for subscribers
                plan = self._plan(change, identities, tables, now)
                if plan is not None:
                    planned.append(plan)
        if not planned:
            return
        table_list = list(tables.values())
        verdicts = await self.rls.check(list(identities), table_list)
        by_oid = {t.relation_oid: v for t, v in zip(table_list, verdicts, strict=True)}
        for plan in planned:
            self._deliver(plan, by_oid[plan.change.relation_oid])

    def _plan(
        self,
        change: CapturedChange,
        identities: dict[Identity, int],
        tables: dict[int, TableCheck],
        now: float,
    ) -> _Planned | None:
        image = change.filter_image
        types = change.column_types
        candidates = self._index.candidates(change.schema, change.table, image, types)
        if not candidates:
            return None
        matched: list[tuple[_Subscription, list[int], int]] = []
        for sub in candidates.values():
            if sub.expires_at is not None and sub.expires_at <= now:
                continue  # an expired token stops delivery until it is refreshed
            ids: list[int] = []
            for binding in sub.bindings:
                if binding.id in ids or not binding.wants(change):
                    continue
                try:
                    if matches(binding.filter, image, types):
                        ids.append(binding.id)
                except FilterError:
                    continue  # the column's type changed since the join: match nothing
            if ids:
                ident = identities.setdefault(sub.identity, len(identities))
                matched.append((sub, ids, ident))
        if not matched:
            return None
        table = tables.get(change.relation_oid)
        if table is None:
            table = tables[change.relation_oid] = TableCheck(change.relation_oid)
        size = _size(change.record) + _size(change.old_record)
        oversized = size > self.max_record_bytes
        dropped = _large_columns(change) if oversized else frozenset()
        plan = _Planned(change, table, matched, oversized=oversized, dropped=dropped)
        if change.record is not None:
            plan.new_row = table.add_row(change.record, sorted(dropped))
        if change.old_record is not None:
            plan.old_row = table.add_row(change.old_record, sorted(dropped))
        for _, _, ident in matched:
            if change.type is ChangeAction.DELETE:
                if plan.old_row is not None:
                    table.need(ident, plan.old_row)
            else:
                if plan.new_row is not None:
                    table.need(ident, plan.new_row)
                if change.type is ChangeAction.UPDATE and plan.old_row is not None:
                    table.need(ident, plan.old_row)
        return plan

    def _deliver(self, plan: _Planned, verdict: TableVerdict) -> None:
        change = plan.change
        if not verdict.exists:
            return
        shared: dict[tuple[tuple[str, ...], bool], dict[str, Any]] = {}
        old_row = plan.old_row
        main_row = old_row if change.type is ChangeAction.DELETE else plan.new_row
        for sub, ids, ident in plan.matched:
            visible = verdict.visible.get(ident, frozenset())
            if main_row is None or main_row not in visible:
                self.changes_withheld += 1
                continue
            old_visible = old_row is not None and old_row in visible
            columns = verdict.columns.get(ident, ())
            key = (columns, old_visible)
            data = shared.get(key)
            if data is None:
                data = _payload(plan, verdict, set(columns), old_visible)
                if data is None:
                    self.changes_withheld += 1
                    continue
                shared[key] = data
            try:
                sub.deliver({"ids": ids, "data": data})
                self.changes_delivered += 1
            except Exception:
                logger.exception("postgres_changes delivery failed for %s", sub.topic)

    async def _catalog_connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._catalog_conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                await conn.close()
            conn = await psycopg.AsyncConnection.connect(
                self.config.dsn,
                autocommit=True,
                application_name="wedsync_realtime_catalog",
                connect_timeout=10,
            )
            self._catalog_conn = conn
        return conn


# -- binding checks ---------------------------------------------------------------------------


def _parse(index: int, raw: Mapping[str, Any]) -> Binding:
    if not isinstance(raw, Mapping):
        raise BindingError(index, "each postgres_changes binding must be an object")
    event = raw.get("event", "*")
    schema = raw.get("schema", "public")
    table = raw.get("table", "*")
    text = raw.get("filter")
    if not isinstance(event, str) or event.upper() not in _EVENTS:
        raise BindingError(
            index, f"invalid `event` {event!r}: expected INSERT, UPDATE, DELETE or *"
        )
    for name, value in (("schema", schema), ("table", table)):
        if not isinstance(value, str) or not value:
            raise BindingError(index, f"invalid `{name}` {value!r}: expected a non-empty string")
    if text is not None and not isinstance(text, str):
        raise BindingError(index, f"invalid `filter` {text!r}: expected a string")
    try:
        flt = parse_filter(text)
    except FilterError as exc:
        raise BindingError(index, str(exc)) from None
    echo = dict(raw)
    params = {k: v for k, v in raw.items() if k != "id"}
    echo["id"] = binding_id(params)
    return Binding(echo["id"], event.upper(), schema, table, flt, echo)


def _targets(binding: Binding, tables: Mapping[tuple[str, str], TableInfo]) -> list[TableInfo]:
    return [
        info
        for (schema, table), info in tables.items()
        if binding.schema in ("*", schema) and binding.table in ("*", table)
    ]


def _check(
    index: int,
    binding: Binding,
    found: list[TableInfo],
    readable: set[int],
    role: str,
    publication: str,
    *,
    by_setting: bool = False,
) -> None:
    where = f"{binding.schema}.{binding.table}"
    if not found:
        # Supabase's words, then why: a table outside the publication (the enabled tables,
        # `WEDSYNC_CDC_TABLES`) and a table that does not exist are not told apart, so a
        # client cannot probe the schema.
        if by_setting:  # WEDSYNC_CDC_TABLES names the enabled tables
            why = (
                f"no table enabled for Postgres Changes matches {where}"
                if "*" in (binding.schema, binding.table)
                else f"table {where} is not enabled for Postgres Changes"
            )
        elif "*" in (binding.schema, binding.table):
            why = f"no table in publication {publication!r} matches {where}"
        else:
            why = (
                f"table {where} is not enabled for Postgres Changes: it is not in publication "
                f"{publication!r}"
            )
        raise BindingError(
            index,
            "Unable to subscribe to changes with given parameters. Please check Realtime is "
            f"enabled for the given connect parameters: [event: {binding.event}, schema: "
            f"{binding.schema}, table: {binding.table}, filters: [{binding.filter}]] ({why})",
        )
    for info in found:
        name = f"{info.schema}.{info.table}"
        if not info.primary_key:
            raise BindingError(index, f"table {name} has no primary key")
        if info.oid not in readable:
            raise BindingError(
                index, f"permission denied: role {role!r} may not select from table {name}"
            )
        try:
            validate_filter(binding.filter, info.column_types)
        except FilterError as exc:
            raise BindingError(index, f"{exc} (table {name})") from None
        if binding.event in ("DELETE", "*"):
            missing = sorted(binding.filter.columns - info.identity_columns)
            if missing:
                raise BindingError(
                    index,
                    f"filter on column `{missing[0]}` of {name} cannot match DELETE events: a "
                    "deleted row carries only its replica identity columns. Run "
                    f"`ALTER TABLE {name} REPLICA IDENTITY FULL`, or subscribe to INSERT or "
                    f"UPDATE only (binding {where})",
                )


# -- payloads ---------------------------------------------------------------------------------


def _expiry(identity: Identity) -> float | None:
    exp = identity.claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _size(row: Mapping[str, ColumnValue] | None) -> int:
    if not row:
        return 0
    return sum(len(v.encode()) for v in row.values() if isinstance(v, str))


def _large_columns(change: CapturedChange) -> frozenset[str]:
    names: set[str] = set()
    for row in (change.record, change.old_record):
        for name, value in (row or {}).items():
            if isinstance(value, str) and len(value.encode()) > SMALL_VALUE_BYTES:
                names.add(name)
    return frozenset(names)


def _payload(
    plan: _Planned, verdict: TableVerdict, selectable: set[str], old_visible: bool
) -> dict[str, Any] | None:
    change = plan.change
    keep = selectable - plan.dropped
    primary_key = set(verdict.primary_key)
    data: dict[str, Any] = {
        "schema": change.schema,
        "table": change.table,
        "commit_timestamp": format_commit_timestamp(change.commit_timestamp),
        "type": change.type.value,
        "columns": [
            {"name": c.name, "type": c.type} for c in change.columns if c.name in selectable
        ],
    }
    record: dict[str, Any] | None = None
    if change.record is not None and plan.new_row is not None:
        record = _json_row(verdict, plan.new_row, change.record, keep)
        if record is None:
            return None
    old: dict[str, Any] | None = None
    if change.old_record is not None and plan.old_row is not None:
        old_keep = keep
        if verdict.rls_enabled and (change.type is ChangeAction.DELETE or not old_visible):
            old_keep = keep & primary_key
        old = _json_row(verdict, plan.old_row, change.old_record, old_keep)
        if old is None:
            return None
    if change.type is ChangeAction.INSERT:
        data["record"] = record
    elif change.type is ChangeAction.UPDATE:
        data["record"] = record
        if old is None and record is not None:  # no old tuple: the key, as wal2json's identity
            old = {k: v for k, v in record.items() if k in primary_key}
        data["old_record"] = old
    else:
        data["old_record"] = old
    data["errors"] = [PAYLOAD_TOO_LARGE] if plan.oversized else None
    return data


def _json_row(
    verdict: TableVerdict, index: int, image: Mapping[str, ColumnValue], keep: set[str]
) -> dict[str, Any] | None:
    """The typed JSON values of an image, for the kept columns the image really has."""
    typed = verdict.records[index] if index < len(verdict.records) else None
    if typed is None:
        return None
    return {
        name: typed.get(name)
        for name, value in image.items()
        if name in keep and (value is None or isinstance(value, str))
    }
