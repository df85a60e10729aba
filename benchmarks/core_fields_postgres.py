"""The Core Fields benchmark on PostgreSQL (``--backend postgres``): the platform writes rows,
change capture announces them.

* `seed`: a fresh database (``wedsync_bench_cf_<hex>`` on ``--pg-server``, default the machine's
  127.0.0.1:5432), migrated with the project's migrations, holding the same `SeedPlan` as the
  embedded run (couples, suppliers, users, connections, weddings, the venue directory and the
  initial core fields at version 1). Databases and slots of earlier runs are dropped first.
* `server_env`: ``WEDSYNC_DATABASE_URL`` and a slot of the run's own.
* each change is what the platform would commit: one transaction updating the field where its
  version is the one the writer saw (``version = version + 1``), and for a venue change the
  venue's address and capacity from the directory, in the same transaction. ``sent_ns`` is
  stamped just before the first statement leaves, so latency includes the commit, logical
  replication, the domain feed and the fan-out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from benchmarks.core_fields_backends import Change
from benchmarks.fanout import ServerProcess
from benchmarks.wedsync_seed import INITIAL_FIELDS, VENUES, SeedPlan
from wedsync_realtime.store.migrate import migrate

__all__ = ["PostgresBackend", "PostgresWriter"]

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
PREFIX = "wedsync_bench_cf_"

_UPDATE = (
    "UPDATE core_field_values SET value = %s, version = version + 1, updated_by = %s,"
    " updated_at = now() WHERE couple_id = %s AND field_name = %s{check}"
    " RETURNING field_name, value, version"
)
_VENUES = {name: (address, capacity) for _, name, address, capacity in VENUES}


def _drop_earlier(admin: psycopg.Connection[Any]) -> None:
    for (name,) in admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
    ).fetchall():
        admin.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE database = %s AND active_pid IS NOT NULL",
            (name,),
        )
        admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = %s AND NOT active",
            (name,),
        )
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _seed(url: str, plan: SeedPlan) -> None:
    with psycopg.connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO venues (name, address, capacity) VALUES (%s, %s, %s)",
            [(name, address, capacity) for _, name, address, capacity in VENUES],
        )
        cur.executemany(
            "INSERT INTO suppliers (id, business_name, category, tier)"
            " VALUES (%s, %s, %s, 'professional')",
            [
                (s.supplier_id, f"Bench {s.category.title()} {s.index}", s.category)
                for s in plan.suppliers
            ],
        )
        cur.executemany(
            "INSERT INTO couples (id, partner1_name, partner2_name) VALUES (%s, %s, %s)",
            [(c.couple_id, f"Partner A{c.index}", f"B{c.index}") for c in plan.couples],
        )
        cur.executemany(
            "INSERT INTO user_profiles (id, user_type, display_name, supplier_id, couple_id)"
            " VALUES (%s, %s, %s, %s, %s)",
            [
                (u, "supplier", f"Supplier {s.index}.{n}", s.supplier_id, None)
                for s in plan.suppliers
                for n, u in enumerate(s.user_ids)
            ]
            + [
                (c.user_id, "couple", f"Partner A{c.index}", None, c.couple_id)
                for c in plan.couples
            ],
        )
        cur.executemany(
            "INSERT INTO weddings (id, couple_id) VALUES (%s, %s)",
            [(c.wedding_id, c.couple_id) for c in plan.couples],
        )
        cur.executemany(
            "INSERT INTO supplier_client_connections (supplier_id, couple_id, status)"
            " VALUES (%s, %s, 'active')",
            [(s, c.couple_id) for c in plan.couples for s in c.supplier_ids],
        )
        cur.executemany(
            "INSERT INTO core_field_values (couple_id, field_name, value, version, updated_by)"
            " VALUES (%s, %s, %s, 1, %s)",
            [
                (c.couple_id, name, Jsonb(value), c.user_id)
                for c in plan.couples
                for name, value in INITIAL_FIELDS.items()
            ],
        )


class PostgresWriter:
    """Changes as committed transactions, over a pool of connections that grows on demand."""

    def __init__(self, url: str, plan: SeedPlan, max_size: int) -> None:
        self.url = url
        self.plan = plan
        self.max_size = max_size
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self._all: list[psycopg.AsyncConnection[Any]] = []

    async def open(self, size: int) -> None:
        for _ in range(size):
            self._idle.put_nowait(await self._connect())

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.url)
        self._all.append(conn)
        return conn

    async def write(self, change: Change) -> None:
        if self._idle.empty() and len(self._all) < self.max_size:
            self._idle.put_nowait(await self._connect())
        conn = await self._idle.get()
        couple = self.plan.couples[change.couple]
        try:
            change.sent_ns = time.perf_counter_ns()
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute(
                    _UPDATE.format(check=" AND version = %s"),
                    (
                        Jsonb(change.value),
                        couple.user_id,
                        couple.couple_id,
                        change.field_name,
                        change.expected_version,
                    ),
                )
                rows = await cur.fetchall()
                if rows and change.field_name == "venue_name":
                    address, capacity = _VENUES.get(str(change.value), (None, None))
                    for name, value in (("venue_address", address), ("venue_capacity", capacity)):
                        await cur.execute(
                            _UPDATE.format(check=""),
                            (Jsonb(value), couple.user_id, couple.couple_id, name),
                        )
                        rows += await cur.fetchall()
            change.done_ns = time.perf_counter_ns()
            if rows:
                change.status = 200
                change.updated = {str(r[0]): (r[1], int(r[2])) for r in rows}
            else:
                change.status = 409
                change.error = "the field's version moved on"
        except psycopg.Error as exc:
            change.done_ns = time.perf_counter_ns()
            change.status = -1
            change.error = f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()


class PostgresBackend:
    name = "postgres"

    def __init__(self, server_url: str = DEFAULT_SERVER) -> None:
        self.server_url = server_url
        self.url = ""
        self.slot = ""

    async def seed(self, plan: SeedPlan, workdir: Path) -> None:
        name = PREFIX + uuid.uuid4().hex[:10]
        self.slot = "bench_cf_" + uuid.uuid4().hex[:10]
        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as admin:
            _drop_earlier(admin)
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.url = f"{self.server_url}/{name}"
        await asyncio.to_thread(migrate, self.url)
        await asyncio.to_thread(_seed, self.url, plan)

    def server_env(self, workdir: Path) -> dict[str, str]:
        return {"WEDSYNC_DATABASE_URL": self.url, "WEDSYNC_CDC_SLOT_NAME": self.slot}

    async def open_writer(
        self, server: ServerProcess, plan: SeedPlan, couple_tokens: Sequence[str], size: int
    ) -> PostgresWriter:
        writer = PostgresWriter(self.url, plan, max_size=size)
        await writer.open(min(size, 8))
        return writer
