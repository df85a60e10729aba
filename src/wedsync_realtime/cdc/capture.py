"""`ChangeCapture`: stream committed row changes from PostgreSQL and hand them on, durably.

The loop: make sure the publication exists (or holds exactly the enabled tables when
`CaptureConfig.tables` names them: `cdc.publication`) and the durable ``pgoutput`` slot too
(`cdc.slot`), stream from the slot (`cdc.replication`), decode (`PgOutputDecoder` +
`RelationCache`), gather each transaction from Begin to Commit, and give the committed
transactions to an async consumer. Only when the consumer has returned is the transaction's end
LSN acknowledged, so the slot's ``confirmed_flush_lsn`` never passes a change that has not reached
fan-out: a crash or a PostgreSQL restart before that point means the change is streamed again
(at-least-once; Supabase's temporary slot loses it).

Transactions that are already buffered when one completes are handed on together (one consumer
call, hence one row-level security round trip, per burst), up to `CaptureConfig.max_batch_changes`.

Failures (PostgreSQL restarted, connection lost, the consumer raising) end the session: the
status callback hears ``reconnecting`` with the reason, the loop waits with exponential backoff
and jitter (`CaptureConfig.backoff_min_s` .. `backoff_max_s`) and starts a new session from the
slot's confirmed position. A keepalive while nothing is pending acknowledges the server's WAL
end, so changes to unpublished tables do not pin WAL in the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from wedsync_realtime.cdc.changes import CapturedChange, ChangeColumn, Transaction
from wedsync_realtime.cdc.messages import Begin, Commit, Delete, Insert, Relation, Type, Update
from wedsync_realtime.cdc.pgoutput import PgOutputDecoder
from wedsync_realtime.cdc.publication import TableName, ensure_publication, qualified
from wedsync_realtime.cdc.relations import RelationCache
from wedsync_realtime.cdc.replication import ReplicationError, ReplicationStream
from wedsync_realtime.cdc.replication_protocol import PrimaryKeepalive
from wedsync_realtime.cdc.slot import create_slot, validate_slot_name

__all__ = [
    "CaptureConfig",
    "CaptureState",
    "CaptureStatus",
    "ChangeCapture",
    "Consumer",
    "StatusListener",
]

logger = logging.getLogger(__name__)

#: Receives committed transactions (at least one change each) in commit order.
Consumer = Callable[[Sequence[Transaction]], Awaitable[None]]


class CaptureState(enum.StrEnum):
    """Where capture is: subscribers are told ``ok`` only in STREAMING."""

    STARTING = "starting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class CaptureStatus:
    """A state change; ``error`` says why capture is not streaming (None when it is)."""

    state: CaptureState
    error: str | None = None


StatusListener = Callable[[CaptureStatus], None]


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """Change capture settings (the lead maps `Settings` onto these).

    ``dsn`` is an ordinary ``postgresql://`` URL; the replication connection adds
    ``replication=database`` itself. The role needs the REPLICATION attribute (or superuser).
    """

    dsn: str
    slot_name: str = "wedsync_realtime"
    publication: str = "wedsync_realtime"
    #: The enabled tables, (schema, table) pairs: when given, `ChangeCapture.start` makes the
    #: publication hold exactly these (`cdc.publication`); empty leaves the publication alone.
    tables: tuple[TableName, ...] = ()
    backoff_min_s: float = 0.1
    backoff_max_s: float = 5.0
    status_interval_s: float = 10.0
    #: Changes handed on per consumer call at most. Small on purpose: one RLS check of k changes
    #: costs more than k times one of a single change (benchmarks/cdc.py: 3.7 ms for 10, 89 ms for
    #: 100, 5.4 s for 1,000), so large batches after a backlog would fall further behind.
    max_batch_changes: int = 50
    application_name: str = "wedsync_realtime_cdc"

    def __post_init__(self) -> None:
        validate_slot_name(self.slot_name)
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_min_s <= backoff_max_s")
        if self.status_interval_s <= 0 or self.max_batch_changes <= 0:
            raise ValueError("status_interval_s and max_batch_changes must be positive")


@dataclass(slots=True)
class _OpenTransaction:
    begin: Begin
    changes: list[CapturedChange] = field(default_factory=list)


class ChangeCapture:
    """Streams committed changes to ``consumer``; reconnects by itself until `stop`."""

    def __init__(
        self,
        config: CaptureConfig,
        consumer: Consumer,
        on_status: StatusListener | None = None,
    ) -> None:
        self.config = config
        self._consumer = consumer
        self._on_status = on_status
        self._status = CaptureStatus(CaptureState.STOPPED)
        self._task: asyncio.Task[None] | None = None
        self._stream: ReplicationStream | None = None
        self._streaming = asyncio.Event()
        self._acked = asyncio.Condition()
        self._acked_lsn = 0
        self.transactions_delivered = 0
        self.reconnects = 0

    # -- public surface ---------------------------------------------------------------------

    @property
    def status(self) -> CaptureStatus:
        """The current state."""
        return self._status

    @property
    def lag_bytes(self) -> int:
        """WAL the server has sent or announced beyond what is acknowledged (0 if unknown).

        The authoritative figure is the slot's (`cdc.slot.slot_status`); this one needs no query.
        """
        stream = self._stream
        if stream is None or stream.acked_lsn == 0:
            return 0
        return max(0, stream.received_lsn - stream.acked_lsn)

    @property
    def acked_lsn(self) -> int:
        """The highest LSN acknowledged to the slot by this capture (0 before the first)."""
        return self._acked_lsn

    async def wait_acked(self, lsn: int, timeout: float | None = None) -> None:
        """Return once everything before ``lsn`` is handed on and acknowledged.

        Since acknowledging follows the consumer, this also means every change committed
        before ``lsn`` has been delivered (TimeoutError after ``timeout`` seconds).
        """

        async with asyncio.timeout(timeout), self._acked:
            await self._acked.wait_for(lambda: self._acked_lsn >= lsn)

    async def start(self) -> None:
        """Start the capture task (idempotent).

        With `CaptureConfig.tables`, the publication is first made to hold them, so that a
        misconfiguration stops start-up: `PublicationError` names a table that does not exist.
        When PostgreSQL is unreachable, each session applies them once it is.
        """
        if self._task is None or self._task.done():
            if self.config.tables:
                await self._prepare_publication()
            self._set_status(CaptureStatus(CaptureState.STARTING))
            self._task = asyncio.create_task(self._run(), name="wedsync-change-capture")

    async def _prepare_publication(self) -> None:
        config = self.config
        try:
            async with await psycopg.AsyncConnection.connect(
                config.dsn, autocommit=True, connect_timeout=10
            ) as conn:
                await self._apply_tables(conn)
        except psycopg.OperationalError as exc:
            logger.warning(
                "change capture: cannot reach PostgreSQL to enable tables %s in publication %s "
                "(%s); retrying in the background",
                ", ".join(qualified(t) for t in config.tables),
                config.publication,
                exc,
            )

    async def _apply_tables(self, conn: psycopg.AsyncConnection[Any]) -> None:
        config = self.config
        if await ensure_publication(conn, config.publication, config.tables):
            logger.info(
                "publication %s now holds the enabled tables: %s",
                config.publication,
                ", ".join(qualified(t) for t in config.tables),
            )

    async def wait_streaming(self, timeout: float | None = None) -> None:
        """Return once a session streams (TimeoutError after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            await self._streaming.wait()

    async def stop(self) -> None:
        """Stop streaming; what was not acknowledged is streamed again by the next start."""
        task, self._task = self._task, None
        if task is not None:
            while not task.done():  # cancel again should a cancellation ever be swallowed
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_status(CaptureStatus(CaptureState.STOPPED))

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
                error = "the replication session ended"
            except (ReplicationError, psycopg.Error, OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # the consumer failed: do not ack, stream it again
                logger.exception("change capture consumer failed")
                error = f"consumer failed: {type(exc).__name__}: {exc}"
            if self._status.state is CaptureState.STREAMING:
                failures = 0
            self._streaming.clear()
            self.reconnects += 1
            self._set_status(CaptureStatus(CaptureState.RECONNECTING, error))
            delay = min(self.config.backoff_max_s, self.config.backoff_min_s * 2**failures)
            failures = min(failures + 1, 30)
            logger.warning("change capture: %s; reconnecting in %.2fs", error, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _session(self) -> None:
        config = self.config
        async with await psycopg.AsyncConnection.connect(
            config.dsn, autocommit=True, connect_timeout=10
        ) as conn:
            if config.tables:
                await self._apply_tables(conn)
            else:
                await _check_publication(conn, config.publication)
            if await create_slot(conn, config.slot_name):
                logger.info("created replication slot %s", config.slot_name)
        stream = await ReplicationStream.open(
            config.dsn,
            config.slot_name,
            config.publication,
            status_interval_s=config.status_interval_s,
            application_name=config.application_name,
        )
        self._stream = stream
        try:
            self._streaming.set()
            self._set_status(CaptureStatus(CaptureState.STREAMING))
            await self._stream_loop(stream)
        finally:
            self._stream = None
            await asyncio.shield(stream.close())

    async def _stream_loop(self, stream: ReplicationStream) -> None:
        decoder = PgOutputDecoder()
        relations = RelationCache()
        current: _OpenTransaction | None = None
        ready: list[Transaction] = []
        ready_changes = 0
        ack_to = 0  # end LSN of the last transaction in `ready` (even an empty one)
        while True:
            message = await stream.read(timeout=self.config.status_interval_s)
            while message is not None:
                if isinstance(message, PrimaryKeepalive):
                    if current is None and not ready:
                        # Nothing in flight: all WAL up to here was sent and handled.
                        await self._ack(stream, message.wal_end)
                    if message.reply_requested:
                        await stream.send_status()
                else:
                    decoded = decoder.decode(message.data)
                    if isinstance(decoded, Relation | Type):
                        relations.observe(decoded)
                    elif isinstance(decoded, Begin):
                        current = _OpenTransaction(decoded)
                    elif isinstance(decoded, Insert | Update | Delete):
                        if current is None:
                            raise ReplicationError("a row change outside a transaction")
                        current.changes.append(_captured(relations, decoded, current.begin))
                    elif isinstance(decoded, Commit):
                        if current is None:
                            raise ReplicationError("Commit without Begin")
                        ack_to = decoded.end_lsn
                        if current.changes:
                            ready.append(_transaction(current, decoded))
                            ready_changes += len(current.changes)
                        current = None
                    # Truncate, Origin, logical Message: not Postgres Changes events.
                if ready_changes >= self.config.max_batch_changes:
                    break
                message = stream.try_read()
            if (ack_to and current is None) or ready_changes >= self.config.max_batch_changes:
                if ready:
                    await self._consumer(ready)
                    self.transactions_delivered += len(ready)
                if ack_to:
                    await self._ack(stream, ack_to)
                ready, ready_changes, ack_to = [], 0, 0

    async def _ack(self, stream: ReplicationStream, lsn: int) -> None:
        await stream.ack(lsn)
        if lsn > self._acked_lsn:
            async with self._acked:
                self._acked_lsn = lsn
                self._acked.notify_all()

    def _set_status(self, status: CaptureStatus) -> None:
        if status == self._status:
            return
        self._status = status
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:
            logger.exception("capture status listener failed")


async def _check_publication(conn: psycopg.AsyncConnection[Any], publication: str) -> None:
    cursor = await conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
    if await cursor.fetchone() is None:
        raise ReplicationError(
            f"publication {publication!r} does not exist (run `wedsync-realtime migrate`)"
        )


def _captured(
    relations: RelationCache, message: Insert | Update | Delete, begin: Begin
) -> CapturedChange:
    change = relations.change(message)
    relation = change.relation
    columns = tuple(
        ChangeColumn(column.name, relations.type_name(column.type_oid), column.is_key)
        for column in relation.columns
    )
    return CapturedChange(
        relation_oid=relation.oid,
        schema=relation.namespace or "pg_catalog",
        table=relation.name,
        type=change.action,
        columns=columns,
        record=change.record,
        old_record=change.old_record,
        replica_identity=relation.replica_identity,
        commit_timestamp=begin.commit_time,
        commit_lsn=begin.final_lsn,
    )


def _transaction(open_transaction: _OpenTransaction, commit: Commit) -> Transaction:
    return Transaction(
        xid=open_transaction.begin.xid,
        commit_lsn=commit.commit_lsn,
        end_lsn=commit.end_lsn,
        commit_time=commit.commit_time,
        changes=tuple(open_transaction.changes),
    )
