"""Postgres Changes benchmark: commit → delivery latency with row-level security on.

    .venv/bin/python -m benchmarks.cdc          # 1,000 subscribers, 200 commits/s, 30 s
    .venv/bin/python -m benchmarks.cdc --repeat 3 --json-out /tmp/cdc.jsonl

For each run it:

1. creates a throw-away database on the machine's PostgreSQL (127.0.0.1:5432, user postgres),
   migrated with `wedsync_realtime.store.migrate.migrate` (`tests.support.cdc.migrated_database`,
   which drops the database and its replication slots afterwards, also on failure), and seeds
   `--subscribers` couples, each with one couple user (`user_profiles.user_type = 'couple'`), so
   that the example schema's RLS policy on `core_field_values` lets that user see exactly its
   couple's rows;
2. starts the server (`benchmarks.fanout.spawn`: pinned with `taskset -c 0`, the fan-out
   benchmark's settings) with `WEDSYNC_DATABASE_URL` on that database and a slot name of its own
   (`WEDSYNC_CDC_SLOT_NAME`), pins itself to core 1;
3. opens one raw WebSocket connection (`benchmarks.wsclient`) per couple user (token: `sub` =
   the user's id, `role` = authenticated), each joining its own channel with one binding
   `{event: "*", schema: "public", table: "core_field_values", filter: "couple_id=eq.<its
   couple>"}` and waiting for the `system` message "Subscribed to PostgreSQL";
4. commits `--rate` changes per second for `--duration` seconds, each its own transaction (an
   autocommit UPSERT, `--writers` connections so that one commit's fsync does not hold back the
   next), each on a random couple: `INSERT ... ON CONFLICT (couple_id, field_name) DO UPDATE`
   over `--fields` field names per couple, so the stream mixes INSERTs and UPDATEs. The row's
   `value` is `{"s": <sequence number>, "t": <clock_timestamp() in µs since the epoch>}`: the
   time PostgreSQL executed the statement, just before its commit;
5. waits up to `--drain` seconds for the deliveries still in flight and prints: commits (made,
   failed), deliveries, **lost** (committed but never delivered to its couple's subscriber),
   **wrongly delivered** (a row delivered to another couple's subscriber: RLS and the filter
   must both prevent it), duplicates, commit → delivery latency (receive time `time.time_ns()`
   minus the row's stamp: both read this machine's CLOCK_REALTIME), server CPU and RSS, the CPU
   of the PostgreSQL backends (the server's walsender and RLS connection apart from the
   writers'), and this generator's CPU and event-loop lag.

Exit status 1 on any loss, wrong delivery or subscriber that never subscribed. PostgreSQL is not
pinned: its backends run on either core (see BENCHMARKS.md). Nothing here dials anything but
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import random
import shlex
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from benchmarks.fanout import (
    BENCH_SECRET,
    Clients,
    ServerProcess,
    _lag_monitor,
    append_json,
    cpu_seconds,
    raise_nofile,
    rss_kb,
    self_cpu_seconds,
    sign_tokens,
    spawn,
    start_profiler,
    stop,
    wait_listening,
    ws_path,
)
from benchmarks.stats import field_medians, percentile
from benchmarks.wsclient import Stats, WsClient, open_ws
from tests.support.cdc import migrated_database, unique_slot

TABLE = "core_field_values"
WRITER_APP = "wedsync_bench_writer"
UPSERT = (
    "INSERT INTO public.core_field_values (couple_id, field_name, value)"
    " VALUES (%s, %s, jsonb_build_object('s', %s::bigint,"
    " 't', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint))"
    " ON CONFLICT (couple_id, field_name) DO UPDATE"
    " SET value = EXCLUDED.value, version = core_field_values.version + 1, updated_at = now()"
)
SUBSCRIBED = "Subscribed to PostgreSQL"
PG_GROUPS = ("walsender", "rls", "other", "writers")


# -- subscribers ---------------------------------------------------------------------------------


class Deliveries:
    """What every subscriber received, keyed by the writer's sequence numbers."""

    def __init__(self) -> None:
        #: seq -> index of the couple it was committed for (filled by the writer).
        self.couple_of: list[int] = []
        #: seq -> deliveries to that couple's subscriber.
        self.counts: list[int] = []
        #: seq -> commit -> delivery latency (ns) of its first delivery (0 = none yet).
        self.latency_of: list[int] = []
        #: commit -> delivery latency (ns), one per first delivery to the right subscriber.
        self.latencies: array[int] = array("q")
        self.delivered = 0
        self.wrong = 0
        self.duplicates = 0
        #: postgres_changes whose value carried no sequence number of this run.
        self.stray = 0
        self.types: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.system: Counter[str] = Counter()
        self.last_ns = 0

    def grow(self, seq: int, couple: int) -> None:
        while len(self.couple_of) <= seq:
            self.couple_of.append(-1)
            self.counts.append(0)
            self.latency_of.append(0)
        self.couple_of[seq] = couple

    def record(self, client: CdcClient, payload: dict[str, Any], now_ns: int) -> None:
        data = payload.get("data") or {}
        record = data.get("record") or {}
        value = record.get("value")
        if not isinstance(value, dict) or not isinstance(value.get("s"), int):
            self.stray += 1
            return
        seq: int = value["s"]
        if data.get("errors"):
            self.errors[str(data["errors"])[:80]] += 1
        self.types[str(data.get("type"))] += 1
        if (
            seq >= len(self.couple_of)
            or self.couple_of[seq] != client.couple_index
            or record.get("couple_id") != client.couple_id
        ):
            self.wrong += 1
            return
        self.counts[seq] += 1
        if self.counts[seq] > 1:
            self.duplicates += 1
            return
        self.delivered += 1
        latency = now_ns - int(value["t"]) * 1000
        self.latencies.append(latency)
        self.latency_of[seq] = latency
        self.last_ns = now_ns


class CdcClient(WsClient):
    """A `WsClient` that also understands `postgres_changes` and `system` messages."""

    def __init__(
        self,
        path: str,
        port: int,
        stats: Stats,
        deliveries: Deliveries,
        couple_index: int,
        couple_id: str,
    ) -> None:
        super().__init__(path, port, stats)
        self.deliveries = deliveries
        self.couple_index = couple_index
        self.couple_id = couple_id
        #: Resolves with the first `system` payload of the postgres_changes extension.
        self.system: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def _text(self, frame: bytes, now: int) -> None:
        if b'"postgres_changes"' not in frame and b'"system"' not in frame:
            super()._text(frame, now)  # replies, and anything else, the base way
            return
        received_ns = time.time_ns()
        message = orjson.loads(frame)
        if self.v2:
            _join_ref, _ref, _topic, event, payload = message
        else:
            event, payload = message["event"], message["payload"]
        if event == "postgres_changes":
            self.deliveries.record(self, payload, received_ns)
        elif event == "system":
            self.deliveries.system[f"{payload.get('status')}: {payload.get('message')}"] += 1
            if not self.system.done():
                self.system.set_result(payload)
        else:
            super()._text(frame, now)


async def open_cdc_client(
    port: int,
    path: str,
    stats: Stats,
    deliveries: Deliveries,
    couple_index: int,
    couple_id: str,
    timeout: float = 30.0,
) -> CdcClient:
    """`benchmarks.wsclient.open_ws` for a `CdcClient`."""
    return await open_ws(
        port,
        lambda: CdcClient(path, port, stats, deliveries, couple_index, couple_id),
        timeout=timeout,
    )


def join_config(couple_id: str) -> dict[str, Any]:
    return {
        "config": {
            "broadcast": {"self": False, "ack": False},
            "presence": {"key": "", "enabled": False},
            "postgres_changes": [
                {
                    "event": "*",
                    "schema": "public",
                    "table": TABLE,
                    "filter": f"couple_id=eq.{couple_id}",
                }
            ],
            "private": False,
        }
    }


async def connect_subscribers(
    server: ServerProcess,
    tokens: list[str],
    couples: list[str],
    vsn: str,
    stats: Stats,
    deliveries: Deliveries,
    clients: Clients,
    concurrency: int,
    errors: Counter[str],
) -> int:
    """Open, join and wait for "Subscribed to PostgreSQL" on every subscriber; how many did."""
    sem = asyncio.Semaphore(concurrency)
    subscribed = 0

    async def one(index: int) -> None:
        nonlocal subscribed
        async with sem:
            path = ws_path(server.path, tokens[index], vsn)
            try:
                client = await open_cdc_client(
                    server.port, path, stats, deliveries, index, couples[index]
                )
            except (OSError, TimeoutError) as exc:
                errors[f"connect: {type(exc).__name__}: {str(exc)[:80]}"] += 1
                return
            clients.all.append(client)
            try:
                _, reply = client.request(
                    f"realtime:cdc-{index}", "phx_join", join_config(couples[index])
                )
                status, response = await asyncio.wait_for(reply, 30)
            except (OSError, TimeoutError) as exc:
                errors[f"join: {type(exc).__name__}"] += 1
                return
            if status != "ok":
                errors[f"join: {status} {str(response)[:100]}"] += 1
                return
        # Outside the semaphore: "Subscribed" may take a while and must not hold connects back.
        try:
            system = await asyncio.wait_for(client.system, 60)
        except (OSError, TimeoutError) as exc:
            errors[f"subscribe: {type(exc).__name__}"] += 1
            return
        if system.get("status") != "ok" or system.get("message") != SUBSCRIBED:
            errors[f"subscribe: {system.get('status')} {str(system.get('message'))[:80]}"] += 1
            return
        subscribed += 1

    await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return subscribed


# -- the database ---------------------------------------------------------------------------------


def seed(url: str, n: int) -> tuple[list[str], list[str]]:
    """`n` couples with one couple user each; (couple ids, user ids)."""
    couples = [str(uuid.uuid4()) for _ in range(n)]
    users = [str(uuid.uuid4()) for _ in range(n)]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.couples (id, partner1_name) VALUES (%s, %s)",
            [(c, f"Couple {i}") for i, c in enumerate(couples)],
        )
        cur.executemany(
            "INSERT INTO public.user_profiles (id, user_type, display_name, couple_id)"
            " VALUES (%s, 'couple', %s, %s)",
            [(u, f"User {i}", c) for i, (u, c) in enumerate(zip(users, couples, strict=True))],
        )
    return couples, users


def backend_pids(url: str, database: str) -> dict[int, str]:
    """pid -> group of the PostgreSQL backends of `database`: "writers" (this benchmark's),
    "walsender", "rls" (the server's visibility checks), "other" (its catalog connection)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, application_name, backend_type FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    groups = {WRITER_APP: "writers", "wedsync_realtime_rls": "rls"}
    return {
        pid: "walsender" if kind == "walsender" else groups.get(app, "other")
        for pid, app, kind in rows
    }


def backends_cpu(pids: dict[int, str]) -> dict[str, float]:
    """CPU seconds so far per group of backends (a backend that has exited counts 0)."""
    out: dict[str, float] = dict.fromkeys(PG_GROUPS, 0.0)
    for pid, group in pids.items():
        with contextlib.suppress(OSError):
            out[group] += cpu_seconds(pid)
    return out


@dataclass
class WriterStats:
    committed: list[int] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    max_backlog: int = 0
    #: Statement round trips (execute → return) in ns.
    round_trips: array[int] = field(default_factory=lambda: array("q"))


async def run_writers(
    conns: list[psycopg.AsyncConnection[Any]],
    couples: list[str],
    deliveries: Deliveries,
    rate: float,
    duration: float,
    fields: int,
    rng: random.Random,
) -> tuple[WriterStats, float]:
    """Commit `rate` UPSERTs per second for `duration` s on `conns`; (stats, seconds taken)."""
    ws = WriterStats()
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def worker(conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            seq = await queue.get()
            couple = deliveries.couple_of[seq]
            t0 = time.perf_counter_ns()
            try:
                await conn.execute(UPSERT, (couples[couple], f"bench_{seq % fields}", seq))
            except psycopg.Error as exc:
                ws.failed[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            else:
                ws.committed.append(seq)
                ws.round_trips.append(time.perf_counter_ns() - t0)
            finally:
                queue.task_done()

    workers = [asyncio.create_task(worker(c)) for c in conns]
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    tick = min(1.0 / rate, 0.01)
    next_tick = loop.time()
    sent = 0
    total = int(rate * duration)
    try:
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            for seq in range(sent, due):
                deliveries.grow(seq, rng.randrange(len(couples)))
                queue.put_nowait(seq)
            sent = due
            ws.max_backlog = max(ws.max_backlog, queue.qsize())
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
        await queue.join()
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return ws, time.perf_counter() - start


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Result:
    subscribers: int
    rate: float
    duration_s: float
    subscribed: int = 0
    subscribe_s: float = 0.0
    connect_errors: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    commit_failures: dict[str, int] = field(default_factory=dict)
    write_s: float = 0.0
    achieved_rate: float = 0.0
    writer_backlog_max: int = 0
    writer_rtt_p50_ms: float = math.nan
    writer_rtt_p99_ms: float = math.nan
    delivered: int = 0
    lost: int = 0
    wrong: int = 0
    duplicates: int = 0
    stray: int = 0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    min_ms: float = math.nan
    drain_s: float = 0.0
    server_cpu_pct: float = math.nan
    #: CPU % of the server's PostgreSQL backends (walsender + RLS + catalog) ...
    pg_server_cpu_pct: float = math.nan
    #: ... the RLS backend alone ...
    pg_rls_cpu_pct: float = math.nan
    #: ... the walsender alone, and the writers' backends.
    pg_walsender_cpu_pct: float = math.nan
    pg_writers_cpu_pct: float = math.nan
    generator_cpu_pct: float = math.nan
    #: PostgreSQL backends of the benchmark database measured, per group.
    pg_backends: dict[str, int] = field(default_factory=dict)
    generator_lag_max_ms: float = 0.0
    rss_idle_kb: int = 0
    rss_end_kb: int = 0
    #: Per second of writing: the slowest commit → delivery latency of rows committed then (ms).
    slowest_by_second_ms: list[float] = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    system: dict[str, int] = field(default_factory=dict)
    lost_connections: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    other_events: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.wrong or self.subscribed < self.subscribers)


def server_options(opts: argparse.Namespace, url: str, slot: str) -> argparse.Namespace:
    """`fanout.spawn`'s options with the server command prefixed by the CDC environment."""
    bindir = Path(sys.executable).parent
    command = opts.server_cmd or f"{bindir}/wedsync-realtime serve --host 127.0.0.1 --port {{port}}"
    env = f"env WEDSYNC_DATABASE_URL={shlex.quote(url)} WEDSYNC_CDC_SLOT_NAME={shlex.quote(slot)}"
    return argparse.Namespace(
        server_cmd=f"{env} {command}",
        peer_cmd=None,
        cpu_server=opts.cpu_server,
        jwt_secret=opts.jwt_secret,
        server_log_level=opts.server_log_level,
    )


async def run_once(opts: argparse.Namespace, url: str, workdir: Path, run: int) -> Result:
    n = opts.subscribers
    result = Result(subscribers=n, rate=opts.rate, duration_s=opts.duration)
    couples, users = await asyncio.to_thread(seed, url, n)
    secret = opts.jwt_secret or BENCH_SECRET
    tokens = sign_tokens(secret, users, {"role": "authenticated"})
    database = url.rsplit("/", 1)[1]
    slot = unique_slot("wedsync_bench_cdc")
    server = spawn("wedsync", server_options(opts, url, slot), workdir)
    stats = Stats(1)
    deliveries = Deliveries()
    clients = Clients()
    heartbeat_task: asyncio.Task[None] | None = None
    writer_conns: list[psycopg.AsyncConnection[Any]] = []
    try:
        await wait_listening(server)
        errors: Counter[str] = Counter()
        t0 = time.perf_counter()
        result.subscribed = await connect_subscribers(
            server, tokens, couples, opts.vsn, stats, deliveries, clients, opts.concurrency, errors
        )
        result.subscribe_s = time.perf_counter() - t0
        result.connect_errors = dict(errors)
        heartbeat_task = asyncio.create_task(clients.heartbeats())
        for _ in range(opts.writers):
            writer_conns.append(
                await psycopg.AsyncConnection.connect(
                    url, autocommit=True, application_name=WRITER_APP
                )
            )
        await asyncio.sleep(opts.settle)
        result.rss_idle_kb = rss_kb(server.pid)
        pids = await asyncio.to_thread(backend_pids, url, database)

        # -- write ---------------------------------------------------------------------------
        lag: list[float] = []
        lag_task = asyncio.create_task(_lag_monitor(lag))
        profiler = None
        if opts.py_spy:
            profiler = start_profiler(
                argparse.Namespace(
                    py_spy=opts.py_spy,
                    duration=opts.duration,
                    py_spy_rate=opts.py_spy_rate,
                    py_spy_native=False,
                    cpu_client=opts.cpu_client,
                ),
                server.pid,
            )
        cpu_server0 = cpu_seconds(server.pid)
        cpu_pg0 = backends_cpu(pids)
        cpu_self0 = self_cpu_seconds()
        start = time.perf_counter()
        rng = random.Random(opts.seed + run)
        ws, result.write_s = await run_writers(
            writer_conns, couples, deliveries, opts.rate, opts.duration, opts.fields, rng
        )
        result.commits = len(ws.committed)
        result.commit_failures = dict(ws.failed)
        result.achieved_rate = result.commits / result.write_s if result.write_s else 0.0
        result.writer_backlog_max = ws.max_backlog
        rtt = sorted(ws.round_trips)
        result.writer_rtt_p50_ms = percentile(rtt, 0.5)
        result.writer_rtt_p99_ms = percentile(rtt, 0.99)

        # -- drain ---------------------------------------------------------------------------
        drain0 = time.perf_counter()
        deadline = drain0 + opts.drain
        committed = ws.committed
        while time.perf_counter() < deadline:
            if all(deliveries.counts[s] for s in committed):
                break
            await asyncio.sleep(0.05)
        result.drain_s = time.perf_counter() - drain0
        window = time.perf_counter() - start
        cpu_server = cpu_seconds(server.pid) - cpu_server0
        # The server opens its RLS connection at the first change: backends that appeared
        # during the window count from 0.
        pids = {**await asyncio.to_thread(backend_pids, url, database), **pids}
        result.pg_backends = dict(Counter(pids.values()))
        cpu_pg1 = backends_cpu(pids)
        cpu_self = self_cpu_seconds() - cpu_self0
        lag_task.cancel()
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        result.rss_end_kb = rss_kb(server.pid)
        result.server_cpu_pct = 100.0 * cpu_server / window
        pg_pct = {g: 100.0 * (cpu_pg1[g] - cpu_pg0[g]) / window for g in PG_GROUPS}
        result.pg_server_cpu_pct = pg_pct["walsender"] + pg_pct["rls"] + pg_pct["other"]
        result.pg_rls_cpu_pct = pg_pct["rls"]
        result.pg_walsender_cpu_pct = pg_pct["walsender"]
        result.pg_writers_cpu_pct = pg_pct["writers"]
        result.generator_cpu_pct = 100.0 * cpu_self / window
        result.generator_lag_max_ms = 1000.0 * max(lag, default=0.0)

        # -- account -------------------------------------------------------------------------
        result.delivered = sum(1 for s in committed if deliveries.counts[s])
        result.lost = result.commits - result.delivered
        result.wrong = deliveries.wrong
        result.duplicates = deliveries.duplicates
        result.stray = deliveries.stray
        lat = sorted(deliveries.latencies)
        result.p50_ms = percentile(lat, 0.50)
        result.p95_ms = percentile(lat, 0.95)
        result.p99_ms = percentile(lat, 0.99)
        result.max_ms = lat[-1] / 1e6 if lat else math.nan
        result.min_ms = lat[0] / 1e6 if lat else math.nan
        result.types = dict(deliveries.types)
        result.errors = dict(deliveries.errors)
        result.system = dict(deliveries.system)
        result.lost_connections = stats.lost_connections
        result.close_codes = {str(k): v for k, v in stats.close_codes.items()}
        result.other_events = dict(stats.other_events)
        # Slowest latency per second of writing (the order of the latencies array is delivery
        # order, not commit order, so go by sequence number).
        per_second: dict[int, float] = {}
        for seq in committed:
            latency = deliveries.latency_of[seq]
            second = int(seq / opts.rate)
            per_second[second] = max(per_second.get(second, 0.0), latency / 1e6)
        result.slowest_by_second_ms = [round(per_second[k], 1) for k in sorted(per_second)]
        return result
    finally:
        if heartbeat_task is not None:
            heartbeat_task.cancel()
        for conn in writer_conns:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
        clients.close()
        await asyncio.sleep(0.5)
        stop(server)


# -- reporting ----------------------------------------------------------------------------------


def describe(r: Result) -> str:
    errors = ", ".join(f"{k} x{v}" for k, v in r.connect_errors.items()) or "none"
    lines = [
        f"subscribers          {r.subscribed}/{r.subscribers} subscribed in {r.subscribe_s:.1f} s;"
        f" errors: {errors}",
        f"commits              {r.commits} in {r.write_s:.1f} s ({r.achieved_rate:.1f}/s of "
        f"{r.rate:g}/s); failed {sum(r.commit_failures.values())} {r.commit_failures or ''}; "
        f"writer backlog max {r.writer_backlog_max}, statement p50 {r.writer_rtt_p50_ms:.1f} ms "
        f"p99 {r.writer_rtt_p99_ms:.1f} ms",
        f"deliveries           delivered {r.delivered}  lost {r.lost}  wrongly delivered "
        f"{r.wrong}  duplicates {r.duplicates}  stray {r.stray}  (drained in {r.drain_s:.1f} s)",
        f"commit -> delivery   p50 {r.p50_ms:.1f}  p95 {r.p95_ms:.1f}  p99 {r.p99_ms:.1f}  "
        f"max {r.max_ms:.1f}  min {r.min_ms:.1f} ms",
        f"slowest per second   {r.slowest_by_second_ms}",
        f"change types         {r.types}; errors {r.errors or 'none'}; system {r.system}",
        f"server               CPU {r.server_cpu_pct:.0f}%  RSS idle {r.rss_idle_kb / 1024:.1f} MiB"
        f"  after {r.rss_end_kb / 1024:.1f} MiB",
        f"postgres backends    server's {r.pg_server_cpu_pct:.0f}% (RLS {r.pg_rls_cpu_pct:.0f}%, "
        f"walsender {r.pg_walsender_cpu_pct:.0f}%)  writers' {r.pg_writers_cpu_pct:.0f}%  "
        f"(backends {r.pg_backends})",
        f"generator            CPU {r.generator_cpu_pct:.0f}%  max loop lag "
        f"{r.generator_lag_max_ms:.0f} ms",
    ]
    if r.lost_connections or r.close_codes:
        lines.append(f"connections lost     {r.lost_connections}; close codes {r.close_codes}")
    if r.other_events:
        lines.append(f"other events         {r.other_events}")
    return "\n".join(lines)


TABLE_HEADER = (
    "| run | subscribed | commits/s | commits | delivered | lost | wrong | p50 ms | p95 ms | "
    "p99 ms | max ms | server CPU | server RSS MiB | PG (server's backends) CPU |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(r: Result, name: str) -> str:
    return (
        f"| {name} | {r.subscribed:,} | {r.achieved_rate:.1f} | {r.commits:,} | "
        f"{r.delivered:,} | {r.lost:,} | {r.wrong:,} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
        f"{r.p99_ms:.1f} | {r.max_ms:.1f} | {r.server_cpu_pct:.0f}% | "
        f"{r.rss_end_kb / 1024:.1f} | {r.pg_server_cpu_pct:.0f}% |"
    )


def median_result(results: list[Result]) -> Result:
    """Field-wise median of the numeric fields (the first run's labels)."""
    return field_medians(results)


# -- CLI ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cdc",
        description="Postgres Changes benchmark: commit -> delivery latency with RLS.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--subscribers", "-n", type=int, default=1000, help="couples = subscribers")
    p.add_argument("--rate", type=float, default=200.0, help="commits per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of writing")
    p.add_argument("--writers", type=int, default=4, help="writer connections")
    p.add_argument("--fields", type=int, default=4, help="field names per couple (UPSERT keys)")
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before writing")
    p.add_argument("--repeat", type=int, default=1, help="runs (median reported)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the couples chosen")
    p.add_argument("--vsn", choices=("1.0.0", "2.0.0"), default="1.0.0")
    p.add_argument(
        "--server-cmd",
        default=None,
        help="command starting the server, {port} substituted (default: .venv/bin/"
        "wedsync-realtime serve --host 127.0.0.1 --port {port}); the CDC variables are prefixed",
    )
    p.add_argument("--jwt-secret", default=None, help="the server's WEDSYNC_JWT_SECRET")
    p.add_argument("--cpu-server", default="0", help="core(s) for the server (taskset), or none")
    p.add_argument("--cpu-client", default="1", help="core(s) for this generator, or none")
    p.add_argument("--concurrency", type=int, default=200, help="connection attempts in flight")
    p.add_argument("--server-log-level", default="WARNING")
    p.add_argument("--py-spy", type=Path, default=None, help="py-spy record of the server")
    p.add_argument("--py-spy-rate", type=int, default=100)
    p.add_argument("--json-out", type=Path, default=None, help="append each result as JSON")
    return p.parse_args(argv)


async def amain(opts: argparse.Namespace) -> int:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cdc-bench-") as tmp:
        for i in range(opts.repeat):
            print(f"\n-- run {i + 1}/{opts.repeat}", flush=True)
            with migrated_database("wedsync_bench_cdc") as url:
                r = await run_once(opts, url, Path(tmp), i)
            results.append(r)
            print(describe(r), flush=True)
            if opts.json_out:
                append_json(opts.json_out, {"run": i + 1, **dataclasses.asdict(r)})
    print("\n" + TABLE_HEADER)
    for i, r in enumerate(results):
        print(table_row(r, f"{i + 1}"))
    if len(results) > 1:
        print(table_row(median_result(results), f"median of {len(results)}"))
    return 1 if any(r.failed for r in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_nofile()
    if opts.cpu_client != "none":
        os.sched_setaffinity(0, {int(c) for c in opts.cpu_client.split(",")})
    import uvloop

    return uvloop.run(amain(opts))


if __name__ == "__main__":
    raise SystemExit(main())
