"""Core Fields benchmark (issue 5): a couple's change → every connected supplier, p50/p95/p99.

    .venv/bin/python -m benchmarks.core_fields              # 1,000 couples x 5 suppliers, 50/s
    .venv/bin/python -m benchmarks.core_fields --repeat 3 --json-out /tmp/core-fields.jsonl

The issue's benchmark: "1,000 couples each with 5 connected suppliers online (6,000
connections), 50 core-field changes per second: change → every supplier p50/p95/p99. Target
p95 < 100 ms." Each run:

1. **Seeds** (`benchmarks.wedsync_seed`) ``--couples`` couples, each with one couple user, one
   wedding and 5 actively connected suppliers; by default 5,000 distinct suppliers with one user
   each (``--couples-per-supplier K`` makes each supplier serve K couples with K users online,
   so supplier connections stay at 5 * couples), and the same 8 core fields per couple at
   version 1;
2. starts the server (`benchmarks.fanout.spawn`: pinned to core 0 with ``taskset``, the fan-out
   benchmark's environment) and pins itself to core 1;
3. opens one raw WebSocket connection (`benchmarks.wsclient`) per user: every supplier user
   joins ``supplier:{S}:clients`` (its dashboard's client feed), every couple user
   ``couple:{C}``; tokens are HS256 JWTs with ``sub`` = the user id and role authenticated;
4. writes ``--rate`` core-field changes per second over random couples: ``--warmup`` seconds
   that are not measured, then ``--duration`` seconds that are. Each change is one field of the
   ``--fields`` mix (a venue change also fills the venue's address and capacity), written with
   the version the couple last saw, by the couple's own user; one couple has at most one change
   in flight, so no write meets a stale version. Writes go out on schedule whatever the
   server's state: the pool of keep-alive HTTP connections grows (up to ``--writers``) rather
   than queue a change behind another one's answer, as 1,000 couples' own browsers would;
5. waits up to ``--drain`` seconds for deliveries in flight, and prints:

   * **change → supplier** latency, per delivery, over every expected (change, supplier
     connection) pair; and **change → last supplier**: per change, its slowest supplier
     delivery. Latency = the time the supplier's connection received the frame minus the time
     the write request was sent, both ``time.perf_counter_ns()`` of this one process;
   * deliveries expected / received, **lost**, **duplicates** (one connection receiving the
     same change twice), **wrong** (a change delivered to a supplier not connected to that
     couple), and the couple's own echo on ``couple:{C}``;
   * the write request's own round trip (request sent → response read);
   * server CPU (``utime+stime`` from /proc over the measured writes plus the drain) and RSS,
     and this generator's CPU and event-loop lag.

A change is recognised in a frame by (couple, field, version): the generator registers the
version its write will produce before sending it.

No server limit needs raising: every user has one connection (limit 10 per user) joining one
channel (free tier: 3 per connection; 10 joins/s), clients send no broadcasts, and the REST write
API has no rate limit. Both processes raise their soft ``RLIMIT_NOFILE`` to the hard limit.

Noise: ``--wait-quiet S`` waits (up to S seconds per run) until no other ``benchmarks.*``
process runs and the server's core is under ``--quiet-below`` % busy; every run reports the
load average and how much of the server's core other processes used while it was measured.
``--gc-log FILE`` runs the server through `benchmarks.gc_probe_server`, which logs its long
garbage-collector passes, and reports those of the measured window (``--gc-args`` passes
thresholds to try a tuned collector).

**Backends.** What differs between the embedded default and PostgreSQL is where the seed goes,
how the server is told about it, and how a change is written; the connections, the clock and
the accounting are shared. `Backend` is that seam: `EmbeddedBackend` seeds the SQLite file in
the server's data directory and writes through the REST write API (``PATCH
/api/wedsync/couples/{C}/core-fields``, whose handler stores the change and routes the
``core_fields_updated`` event before answering). A ``--backend postgres`` variant would seed the
same `SeedPlan` into a migrated database (`tests.support.cdc.migrated_database`), start the
server with ``WEDSYNC_DATABASE_URL`` and a slot of its own, and write each change as an UPSERT of
``core_field_values`` with the version bumped (the event then comes through change capture); its
`ChangeWriter` stamps ``sent_ns`` just before executing the statement.

Exit status 1 on any loss, duplicate, wrong delivery, failed write or connection that did not
join. Nothing here dials anything but 127.0.0.1.
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
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.core_fields_backends import BACKENDS, Backend, Change, ChangeWriter
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
    stop,
    wait_listening,
    ws_path,
)
from benchmarks.stats import field_medians, nearest_rank
from benchmarks.wedsync_seed import INITIAL_FIELDS, VENUES, SeedPlan
from benchmarks.wsclient import Stats, WsClient, open_ws
from wedsync_realtime.wedding.events import JsonValue

EVENT = b'"core_fields_updated"'
#: The default mix of fields written; a venue change also fills address and capacity.
DEFAULT_FIELDS = ("guest_count", "ceremony_time", "contact_name", "venue_name")
_TIMES = tuple(f"{h:02d}:{m:02d}" for h in range(11, 18) for m in (0, 30))
_DATES = tuple(f"2027-{m:02d}-{d:02d}" for m in range(5, 10) for d in (6, 13, 20, 27))
_VENUE_NAMES = tuple(v[1] for v in VENUES)

# -- changes and their deliveries ---------------------------------------------------------------


class Tracker:
    """Every change made, and every delivery of one, keyed by the writer's sequence numbers."""

    def __init__(self, plan: SeedPlan) -> None:
        self.plan = plan
        self.changes: list[Change] = []
        #: (couple id, field name, version) -> seq.
        self.keys: dict[tuple[str, str, int], int] = {}
        #: seq -> supplier deliveries received (first per connection only).
        self.supplier_counts: list[int] = []
        #: seq -> latency of its slowest supplier delivery (ns).
        self.worst: list[int] = []
        #: seq -> latency of the couple's own delivery on couple:{C} (ns), 0 = none.
        self.couple_latency: list[int] = []
        #: change -> supplier latency (ns), one entry per delivery of a measured change.
        self.latencies: array[int] = array("q")
        self.duplicates = 0
        self.wrong = 0
        self.stray = 0
        self.last_ns = 0

    def add(self, change: Change, couple_id: str) -> None:
        """Register a change before it is written (its deliveries may beat the response)."""
        self.changes.append(change)
        self.supplier_counts.append(0)
        self.worst.append(0)
        self.couple_latency.append(0)
        self.keys[(couple_id, change.field_name, change.expected_version + 1)] = change.seq

    def record(self, client: DomainClient, payload: dict[str, Any], now: int) -> None:
        key = (payload.get("couple_id"), payload.get("field_name"), payload.get("version"))
        seq = self.keys.get(key)  # type: ignore[arg-type]
        if seq is None:
            self.stray += 1
            return
        change = self.changes[seq]
        if seq in client.seen:
            self.duplicates += 1
            return
        client.seen.add(seq)
        if change.couple not in client.couples:
            self.wrong += 1
            return
        latency = now - change.sent_ns if change.sent_ns else 0
        if client.is_couple:
            self.couple_latency[seq] = latency
            return
        self.supplier_counts[seq] += 1
        if latency > self.worst[seq]:
            self.worst[seq] = latency
        if change.measured:
            self.latencies.append(latency)
            self.last_ns = now


class DomainClient(WsClient):
    """A `WsClient` of one WedSync user that accounts ``core_fields_updated`` broadcasts."""

    def __init__(
        self,
        path: str,
        port: int,
        stats: Stats,
        tracker: Tracker,
        couples: frozenset[int],
        *,
        is_couple: bool,
    ) -> None:
        super().__init__(path, port, stats, counting=False)
        self.tracker = tracker
        #: The couples whose changes this connection must receive.
        self.couples = couples
        self.is_couple = is_couple
        #: Sequence numbers received (to count duplicates).
        self.seen: set[int] = set()

    def _text(self, frame: bytes, now: int) -> None:
        if EVENT not in frame:
            super()._text(frame, now)
            return
        message = orjson.loads(frame)
        outer = message[4] if self.v2 else message["payload"]
        inner = outer.get("payload") if isinstance(outer, dict) else None
        if outer.get("event") != "core_fields_updated" or not isinstance(inner, dict):
            super()._text(frame, now)
            return
        self.tracker.record(self, inner, now)


async def open_domain_client(
    port: int,
    path: str,
    stats: Stats,
    tracker: Tracker,
    couples: frozenset[int],
    *,
    is_couple: bool,
    timeout: float = 30.0,
) -> DomainClient:
    """`benchmarks.wsclient.open_ws` for a `DomainClient`."""
    return await open_ws(
        port,
        lambda: DomainClient(path, port, stats, tracker, couples, is_couple=is_couple),
        timeout=timeout,
    )


JOIN_CONFIG = {
    "config": {
        "broadcast": {"self": False, "ack": False},
        "presence": {"key": "", "enabled": False},
        "postgres_changes": [],
        "private": True,
    }
}


@dataclass(frozen=True, slots=True)
class Subscriber:
    user_id: str
    topic: str
    couples: frozenset[int]
    is_couple: bool


def subscribers(plan: SeedPlan) -> list[Subscriber]:
    """Every supplier user on ``supplier:{S}:clients``, every couple user on ``couple:{C}``."""
    out = [
        Subscriber(
            user, f"realtime:supplier:{s.supplier_id}:clients", frozenset(s.couple_indexes), False
        )
        for s in plan.suppliers
        for user in s.user_ids
    ]
    out += [
        Subscriber(c.user_id, f"realtime:couple:{c.couple_id}", frozenset({c.index}), True)
        for c in plan.couples
    ]
    return out


async def connect_all(
    server: ServerProcess,
    subs: Sequence[Subscriber],
    tokens: Sequence[str],
    vsn: str,
    stats: Stats,
    tracker: Tracker,
    clients: Clients,
    concurrency: int,
    errors: Counter[str],
) -> tuple[int, int]:
    """Open and join every subscriber; (supplier connections joined, couple ones joined)."""
    sem = asyncio.Semaphore(concurrency)
    joined = [0, 0]

    async def one(sub: Subscriber, token: str) -> None:
        async with sem:
            try:
                client = await open_domain_client(
                    server.port,
                    ws_path(server.path, token, vsn),
                    stats,
                    tracker,
                    sub.couples,
                    is_couple=sub.is_couple,
                )
            except (OSError, TimeoutError) as exc:
                errors[f"connect: {type(exc).__name__}: {str(exc)[:80]}"] += 1
                return
            clients.all.append(client)
            try:
                _, reply = client.request(sub.topic, "phx_join", JOIN_CONFIG)
                status, response = await asyncio.wait_for(reply, 30)
            except (OSError, TimeoutError) as exc:
                errors[f"join: {type(exc).__name__}"] += 1
                return
            if status != "ok":
                errors[f"join: {status} {str(response)[:100]}"] += 1
                return
            joined[1 if sub.is_couple else 0] += 1

    await asyncio.gather(*(one(s, t) for s, t in zip(subs, tokens, strict=True)))
    return joined[0], joined[1]


# -- the writer's schedule ----------------------------------------------------------------------


class Couples:
    """What the generator knows of every couple's fields: value and version."""

    def __init__(self, n: int) -> None:
        initial = {k: (v, 1) for k, v in INITIAL_FIELDS.items()}
        self.fields: list[dict[str, tuple[JsonValue, int]]] = [dict(initial) for _ in range(n)]
        self.busy: set[int] = set()

    def next_value(self, couple: int, field_name: str, seq: int, rng: random.Random) -> JsonValue:
        """A valid value of the field, different from the current one."""
        current = self.fields[couple].get(field_name, (None, 0))[0]
        choices: Sequence[JsonValue]
        if field_name in ("guest_count", "venue_capacity"):
            choices = (60 + seq % 240, 61 + seq % 240)
        elif field_name == "ceremony_time":
            choices = _TIMES
        elif field_name == "wedding_date":
            choices = _DATES
        elif field_name == "venue_name":
            choices = _VENUE_NAMES
        elif field_name == "contact_email":
            choices = (f"bench{seq}@example.com",)
        elif field_name == "contact_phone":
            choices = (f"+44 7700 {seq % 1_000_000:06d}",)
        else:
            choices = (f"Contact {seq}",)
        options = [c for c in choices if c != current]
        return rng.choice(options)


@dataclass(slots=True)
class WriteWindow:
    write_s: float = 0.0
    backlog_max: int = 0
    #: Largest delay between a change's schedule and its request leaving (ns).
    send_delay_max_ns: int = 0
    measure_start: float = 0.0


async def run_writes(
    writer: ChangeWriter,
    tracker: Tracker,
    couples: Couples,
    field_mix: Sequence[str],
    rate: float,
    warmup: float,
    duration: float,
    rng: random.Random,
    on_measure_start: Callable[[], None],
) -> WriteWindow:
    """`rate` changes per second: `warmup` s unmeasured, then `duration` s measured."""
    window = WriteWindow()
    plan = tracker.plan
    n_warm = int(rate * warmup)
    total = n_warm + int(rate * duration)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def one(change: Change) -> None:
        await writer.write(change)
        couples.busy.discard(change.couple)
        if change.ok:
            couples.fields[change.couple].update(change.updated)
        delay = change.sent_ns - change.scheduled_ns
        window.send_delay_max_ns = max(window.send_delay_max_ns, delay)

    start = time.perf_counter()
    next_tick = loop.time()
    tick = min(1.0 / rate, 0.01)
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        for seq in range(sent, due):
            if seq == n_warm:
                window.measure_start = time.perf_counter()
                on_measure_start()
            couple = rng.randrange(len(plan.couples))
            while couple in couples.busy:
                couple = rng.randrange(len(plan.couples))
            couples.busy.add(couple)
            name = rng.choice(field_mix)
            change = Change(
                seq=seq,
                couple=couple,
                field_name=name,
                value=couples.next_value(couple, name, seq, rng),
                expected_version=couples.fields[couple].get(name, (None, 0))[1],
                measured=seq >= n_warm,
                scheduled_ns=time.perf_counter_ns(),
            )
            tracker.add(change, plan.couples[couple].couple_id)
            task = asyncio.create_task(one(change))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent = due
        window.backlog_max = max(window.backlog_max, len(pending))
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    if pending:
        await asyncio.gather(*pending)
    window.write_s = time.perf_counter() - window.measure_start
    return window


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    couples: int
    couples_per_supplier: int
    rate: float
    duration_s: float
    vsn: str
    connections: int = 0
    supplier_joined: int = 0
    couple_joined: int = 0
    connect_s: float = 0.0
    connect_errors: dict[str, int] = field(default_factory=dict)
    #: Measured changes: made, refused or failed.
    changes: int = 0
    write_failures: int = 0
    write_errors: dict[str, int] = field(default_factory=dict)
    achieved_rate: float = 0.0
    writer_backlog_max: int = 0
    send_delay_max_ms: float = 0.0
    write_p50_ms: float = math.nan
    write_p95_ms: float = math.nan
    write_p99_ms: float = math.nan
    write_max_ms: float = math.nan
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    wrong: int = 0
    stray: int = 0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    #: Per change: the latency of its last (slowest) supplier delivery.
    last_p50_ms: float = math.nan
    last_p95_ms: float = math.nan
    last_p99_ms: float = math.nan
    last_max_ms: float = math.nan
    #: Changes not delivered to every one of their suppliers.
    incomplete_changes: int = 0
    couple_p50_ms: float = math.nan
    couple_p95_ms: float = math.nan
    couple_p99_ms: float = math.nan
    couple_missing: int = 0
    drain_s: float = 0.0
    server_cpu_pct: float = math.nan
    server_cpu_ms_per_change: float = math.nan
    rss_idle_kb: int = 0
    rss_end_kb: int = 0
    generator_cpu_pct: float = math.nan
    generator_lag_max_ms: float = 0.0
    #: Busy % of the server's core(s) not spent by the server (other engineers' work: noise).
    core_other_pct: float = math.nan
    #: 1-minute load average of the machine when writing started.
    loadavg_1m: float = math.nan
    #: With --gc-log: full collections in the measured window, the longest, and the time spent
    #: in every logged collection (full ones, and others of at least the probe's --min-ms).
    gc_full_passes: int = 0
    gc_full_max_ms: float = math.nan
    gc_logged_ms: float = math.nan
    #: Per second of writing: the slowest change -> last supplier latency of changes sent then.
    slowest_by_second_ms: list[float] = field(default_factory=list)
    lost_connections: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    other_events: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(
            self.lost
            or self.duplicates
            or self.wrong
            or self.write_failures
            or self.supplier_joined + self.couple_joined < self.connections
        )


def start_py_spy(opts: argparse.Namespace, pid: int) -> subprocess.Popen[bytes]:
    """`py-spy record` of the server over the measured writes, on the generator's core
    (`--py-spy out.txt`: collapsed stacks; `out.json`: speedscope, samples in time order)."""
    out = str(opts.py_spy)
    fmt = "raw" if out.endswith(".txt") else "speedscope" if out.endswith(".json") else "flamegraph"
    argv = [
        opts.py_spy_bin or str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(opts.duration))),
        "--rate",
        str(opts.py_spy_rate),
        "--output",
        out,
        "--format",
        fmt,
        # Without it py-spy stops every thread of the server for each sample; with a worker
        # thread pool that stretches the server's stalls (seen: p99 of 23 s instead of 0.7 s).
        "--nonblocking",
    ]
    if opts.py_spy_native:
        argv.append("--native")
    if opts.cpu_client != "none":
        argv = ["taskset", "-c", opts.cpu_client, *argv]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def core_ticks(cpus: str) -> tuple[float, float]:
    """(busy, total) jiffies of the cores `cpus` ("0", "0,1"; "none": all) from /proc/stat."""
    names = {"cpu"} if cpus == "none" else {f"cpu{c}" for c in cpus.split(",")}
    busy = total = 0.0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in names:
                ticks = [float(x) for x in parts[1:9]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait
    return busy, total


def other_benchmarks() -> list[int]:
    """Pids of other ``benchmarks.*`` processes (another engineer's benchmark run): not this
    process nor its ancestors (``timeout ... -m benchmarks.core_fields``)."""
    mine = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
            mine.add(pid)
            continue
        break
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
            if any(a.startswith(b"benchmarks.") for a in argv):
                pids.append(int(entry))
    return pids


async def wait_for_quiet(cpus: str, busy_below: float, max_wait: float) -> float:
    """Wait (up to `max_wait` s) until no other benchmark runs and the cores `cpus` were under
    `busy_below` % busy for 2 s; the seconds waited. Other engineers' test runs and benchmarks
    share this machine."""
    waited = 0.0
    while waited < max_wait:
        busy0, total0 = core_ticks(cpus)
        await asyncio.sleep(2.0)
        busy1, total1 = core_ticks(cpus)
        quiet = total1 > total0 and 100.0 * (busy1 - busy0) / (total1 - total0) < busy_below
        if quiet and not other_benchmarks():
            break
        waited += 2.0
    return waited


def gc_window(result: Result, log: Path, start: float, end: float) -> None:
    """Fill the GC fields of `result` from the probe's log lines between `start` and `end`."""
    full: list[float] = []
    logged = 0.0
    with contextlib.suppress(OSError), open(log) as f:
        for line in f:
            record = orjson.loads(line)
            if not start <= record["t"] <= end:
                continue
            logged += record["ms"]
            if record["gen"] == 2:
                full.append(record["ms"])
    result.gc_full_passes = len(full)
    result.gc_full_max_ms = max(full, default=0.0)
    result.gc_logged_ms = logged


def server_options(opts: argparse.Namespace, backend: Backend, workdir: Path) -> argparse.Namespace:
    """`fanout.spawn`'s options, the server command prefixed by the backend's environment."""
    bindir = Path(sys.executable).parent
    command = opts.server_cmd or f"{bindir}/wedsync-realtime serve --host 127.0.0.1 --port {{port}}"
    if opts.gc_log and not opts.server_cmd:
        command = (
            f"{sys.executable} -m benchmarks.gc_probe_server --log {shlex.quote(str(opts.gc_log))}"
            f" {opts.gc_args} --port {{port}}"
        )
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in backend.server_env(workdir).items())
    return argparse.Namespace(
        server_cmd=f"env {env} {command}" if env else command,
        peer_cmd=None,
        cpu_server=opts.cpu_server,
        jwt_secret=opts.jwt_secret,
        server_log_level=opts.server_log_level,
    )


async def run_once(opts: argparse.Namespace, backend: Backend, workdir: Path, run: int) -> Result:
    plan = SeedPlan.build(opts.couples, 5, opts.couples_per_supplier)
    result = Result(
        backend=backend.name,
        couples=opts.couples,
        couples_per_supplier=opts.couples_per_supplier,
        rate=opts.rate,
        duration_s=opts.duration,
        vsn=opts.vsn,
    )
    await backend.seed(plan, workdir)
    subs = subscribers(plan)
    result.connections = len(subs)
    secret = opts.jwt_secret or BENCH_SECRET
    tokens = sign_tokens(secret, [s.user_id for s in subs], {"role": "authenticated"})
    couple_tokens = tokens[plan.supplier_users :]
    server = spawn("wedsync", server_options(opts, backend, workdir), workdir)
    stats = Stats(1)
    tracker = Tracker(plan)
    clients = Clients()
    heartbeat_task: asyncio.Task[None] | None = None
    writer: ChangeWriter | None = None
    try:
        await wait_listening(server)
        errors: Counter[str] = Counter()
        t0 = time.perf_counter()
        result.supplier_joined, result.couple_joined = await connect_all(
            server, subs, tokens, opts.vsn, stats, tracker, clients, opts.concurrency, errors
        )
        result.connect_s = time.perf_counter() - t0
        result.connect_errors = dict(errors)
        heartbeat_task = asyncio.create_task(clients.heartbeats())
        writer = await backend.open_writer(server, plan, couple_tokens, opts.writers)
        await asyncio.sleep(opts.settle)
        result.rss_idle_kb = rss_kb(server.pid)

        # -- write -----------------------------------------------------------------------------
        lag: list[float] = []
        marks: dict[str, float] = {}
        profiler = None

        def measure_start() -> None:
            nonlocal profiler
            marks["cpu_server"] = cpu_seconds(server.pid)
            marks["cpu_self"] = self_cpu_seconds()
            marks["t"] = time.perf_counter()
            marks["wall"] = time.time()
            marks["core_busy"], marks["core_total"] = core_ticks(opts.cpu_server)
            marks["loadavg"] = os.getloadavg()[0]
            lag.clear()
            if opts.py_spy:
                profiler = start_py_spy(opts, server.pid)

        lag_task = asyncio.create_task(_lag_monitor(lag))
        couples = Couples(len(plan.couples))
        rng = random.Random(opts.seed + run)
        window = await run_writes(
            writer,
            tracker,
            couples,
            opts.fields,
            opts.rate,
            opts.warmup,
            opts.duration,
            rng,
            measure_start,
        )

        # -- drain -----------------------------------------------------------------------------
        measured = [c for c in tracker.changes if c.measured]
        ok = [c for c in measured if c.ok]
        drain0 = time.perf_counter()
        deadline = drain0 + opts.drain
        while time.perf_counter() < deadline:
            if all(
                tracker.supplier_counts[c.seq] >= plan.supplier_users_of_couple(c.couple)
                and tracker.couple_latency[c.seq]
                for c in ok
            ):
                break
            await asyncio.sleep(0.05)
        result.drain_s = time.perf_counter() - drain0
        elapsed = time.perf_counter() - marks["t"]
        cpu_server = cpu_seconds(server.pid) - marks["cpu_server"]
        cpu_self = self_cpu_seconds() - marks["cpu_self"]
        core_busy, core_total = core_ticks(opts.cpu_server)
        if core_total > marks["core_total"]:
            busy_pct = 100.0 * (core_busy - marks["core_busy"]) / (core_total - marks["core_total"])
            cores = len(opts.cpu_server.split(","))
            result.core_other_pct = max(0.0, busy_pct * cores - 100.0 * cpu_server / elapsed)
        result.loadavg_1m = marks["loadavg"]
        if opts.gc_log:
            gc_window(result, opts.gc_log, marks["wall"], time.time())
        lag_task.cancel()
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        result.rss_end_kb = rss_kb(server.pid)
        result.server_cpu_pct = 100.0 * cpu_server / elapsed
        result.generator_cpu_pct = 100.0 * cpu_self / elapsed
        result.generator_lag_max_ms = 1000.0 * max(lag, default=0.0)
        if ok:
            result.server_cpu_ms_per_change = 1000.0 * cpu_server / len(ok)

        # -- account ---------------------------------------------------------------------------
        result.changes = len(measured)
        result.write_failures = len(measured) - len(ok)
        result.write_errors = dict(
            Counter(f"{c.status} {c.error[:100]}" for c in tracker.changes if not c.ok)
        )
        result.achieved_rate = len(measured) / window.write_s if window.write_s else 0.0
        result.writer_backlog_max = window.backlog_max
        result.send_delay_max_ms = window.send_delay_max_ns / 1e6
        rtt = sorted(c.done_ns - c.sent_ns for c in ok)
        result.write_p50_ms = nearest_rank(rtt, 0.50)
        result.write_p95_ms = nearest_rank(rtt, 0.95)
        result.write_p99_ms = nearest_rank(rtt, 0.99)
        result.write_max_ms = rtt[-1] / 1e6 if rtt else math.nan
        expected = [plan.supplier_users_of_couple(c.couple) for c in ok]
        got = [tracker.supplier_counts[c.seq] for c in ok]
        result.expected = sum(expected)
        result.received = sum(min(g, e) for g, e in zip(got, expected, strict=True))
        result.lost = result.expected - result.received
        result.duplicates = tracker.duplicates
        result.wrong = tracker.wrong
        result.stray = tracker.stray
        lat = sorted(tracker.latencies)
        result.p50_ms = nearest_rank(lat, 0.50)
        result.p95_ms = nearest_rank(lat, 0.95)
        result.p99_ms = nearest_rank(lat, 0.99)
        result.max_ms = lat[-1] / 1e6 if lat else math.nan
        complete = [c for c, g, e in zip(ok, got, expected, strict=True) if g >= e]
        result.incomplete_changes = len(ok) - len(complete)
        last = sorted(tracker.worst[c.seq] for c in complete)
        result.last_p50_ms = nearest_rank(last, 0.50)
        result.last_p95_ms = nearest_rank(last, 0.95)
        result.last_p99_ms = nearest_rank(last, 0.99)
        result.last_max_ms = last[-1] / 1e6 if last else math.nan
        echo = sorted(tracker.couple_latency[c.seq] for c in ok if tracker.couple_latency[c.seq])
        result.couple_missing = len(ok) - len(echo)
        result.couple_p50_ms = nearest_rank(echo, 0.50)
        result.couple_p95_ms = nearest_rank(echo, 0.95)
        result.couple_p99_ms = nearest_rank(echo, 0.99)
        per_second: dict[int, float] = {}
        t_start = marks["t"]
        for c in complete:
            second = int((c.scheduled_ns / 1e9) - t_start)
            per_second[second] = max(per_second.get(second, 0.0), tracker.worst[c.seq] / 1e6)
        result.slowest_by_second_ms = [round(per_second[k], 1) for k in sorted(per_second)]
        result.lost_connections = stats.lost_connections
        result.close_codes = {str(k): v for k, v in stats.close_codes.items()}
        result.other_events = dict(stats.other_events)
        return result
    finally:
        if heartbeat_task is not None:
            heartbeat_task.cancel()
        if writer is not None:
            await writer.close()
        clients.close()
        await asyncio.sleep(0.5)
        stop(server)


# -- reporting ----------------------------------------------------------------------------------


def describe(r: Result) -> str:
    errors = ", ".join(f"{k} x{v}" for k, v in r.connect_errors.items()) or "none"
    lines = [
        f"connections          {r.supplier_joined:,} supplier + {r.couple_joined:,} couple joined"
        f" of {r.connections:,} in {r.connect_s:.1f} s; errors: {errors}",
        f"changes              {r.changes:,} measured in {r.duration_s:g} s "
        f"({r.achieved_rate:.1f}/s of {r.rate:g}/s); failed {r.write_failures} "
        f"{r.write_errors or ''}; writer backlog max {r.writer_backlog_max}, "
        f"schedule -> send max {r.send_delay_max_ms:.1f} ms",
        f"write request        p50 {r.write_p50_ms:.1f}  p95 {r.write_p95_ms:.1f}  "
        f"p99 {r.write_p99_ms:.1f}  max {r.write_max_ms:.1f} ms",
        f"supplier deliveries  expected {r.expected:,}  received {r.received:,}  lost {r.lost}  "
        f"duplicates {r.duplicates}  wrong {r.wrong}  stray {r.stray}  "
        f"(drained in {r.drain_s:.1f} s)",
        f"change -> supplier   p50 {r.p50_ms:.1f}  p95 {r.p95_ms:.1f}  p99 {r.p99_ms:.1f}  "
        f"max {r.max_ms:.1f} ms",
        f"change -> last sup.  p50 {r.last_p50_ms:.1f}  p95 {r.last_p95_ms:.1f}  "
        f"p99 {r.last_p99_ms:.1f}  max {r.last_max_ms:.1f} ms  "
        f"(incomplete changes {r.incomplete_changes})",
        f"change -> couple     p50 {r.couple_p50_ms:.1f}  p95 {r.couple_p95_ms:.1f}  "
        f"p99 {r.couple_p99_ms:.1f} ms  (missing {r.couple_missing})",
        f"slowest per second   {r.slowest_by_second_ms}",
        f"server               CPU {r.server_cpu_pct:.0f}% ({r.server_cpu_ms_per_change:.2f} ms "
        f"per change)  RSS idle {r.rss_idle_kb / 1024:.1f} MiB  after "
        f"{r.rss_end_kb / 1024:.1f} MiB",
        f"generator            CPU {r.generator_cpu_pct:.0f}%  max loop lag "
        f"{r.generator_lag_max_ms:.0f} ms",
    ]
    lines.append(
        f"machine              load average {r.loadavg_1m:.2f}; others' use of the server's "
        f"core {r.core_other_pct:.0f}%"
    )
    if not math.isnan(r.gc_logged_ms):
        lines.append(
            f"server GC (probe)    full passes {r.gc_full_passes}, longest "
            f"{r.gc_full_max_ms:.0f} ms; logged passes {r.gc_logged_ms:.0f} ms in all"
        )
    if r.lost_connections or r.close_codes:
        lines.append(f"connections lost     {r.lost_connections}; close codes {r.close_codes}")
    if r.other_events:
        lines.append(f"other events         {r.other_events}")
    return "\n".join(lines)


TABLE_HEADER = (
    "| run | connections | changes/s | changes | supplier deliveries | lost | dup | "
    "p50 ms | p95 ms | p99 ms | last supplier p50 / p95 / p99 ms | write p50 / p95 / p99 ms | "
    "server CPU | server RSS MiB |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(r: Result, name: str) -> str:
    return (
        f"| {name} | {r.supplier_joined + r.couple_joined:,} | {r.achieved_rate:.1f} | "
        f"{r.changes:,} | {r.received:,} / {r.expected:,} | {r.lost:,} | {r.duplicates:,} | "
        f"{r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} | "
        f"{r.last_p50_ms:.1f} / {r.last_p95_ms:.1f} / {r.last_p99_ms:.1f} | "
        f"{r.write_p50_ms:.1f} / {r.write_p95_ms:.1f} / {r.write_p99_ms:.1f} | "
        f"{r.server_cpu_pct:.0f}% | {r.rss_end_kb / 1024:.1f} |"
    )


def median_result(results: list[Result]) -> Result:
    """Field-wise median; loss, duplicates, wrong deliveries and failures take the worst run."""
    return field_medians(
        results, worst=("lost", "duplicates", "wrong", "write_failures", "incomplete_changes")
    )


# -- CLI ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.core_fields",
        description="Core Fields benchmark: couple's change -> every connected supplier.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backend", choices=sorted(BACKENDS), default="embedded")
    p.add_argument("--couples", "-n", type=int, default=1000)
    p.add_argument(
        "--couples-per-supplier",
        type=int,
        default=1,
        help="couples each supplier serves (with as many of its users online)",
    )
    p.add_argument("--rate", type=float, default=50.0, help="core-field changes per second")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds of writing")
    p.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds of writing first")
    p.add_argument(
        "--fields",
        type=lambda s: tuple(x for x in s.split(",") if x),
        default=DEFAULT_FIELDS,
        help="comma-separated core fields to change, one picked at random per change",
    )
    p.add_argument(
        "--writers",
        type=int,
        default=256,
        help="write requests in flight at most (HTTP connections, opened as needed)",
    )
    p.add_argument("--drain", type=float, default=10.0, help="seconds to wait for stragglers")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before writing")
    p.add_argument("--repeat", type=int, default=1, help="runs (median reported)")
    p.add_argument("--seed", type=int, default=1, help="random seed of couples and fields")
    p.add_argument("--vsn", choices=("1.0.0", "2.0.0"), default="1.0.0")
    p.add_argument(
        "--server-cmd",
        default=None,
        help="command starting the server, {port} substituted (default: .venv/bin/"
        "wedsync-realtime serve --host 127.0.0.1 --port {port}); the backend's variables are "
        "prefixed",
    )
    p.add_argument("--jwt-secret", default=None, help="the server's WEDSYNC_JWT_SECRET")
    p.add_argument("--cpu-server", default="0", help="core(s) for the server (taskset), or none")
    p.add_argument("--cpu-client", default="1", help="core(s) for this generator, or none")
    p.add_argument("--concurrency", type=int, default=200, help="connection attempts in flight")
    p.add_argument("--server-log-level", default="WARNING")
    p.add_argument(
        "--gc-log",
        type=Path,
        default=None,
        help="run the server through benchmarks.gc_probe_server logging its long GC passes here, "
        "and report those of the measured window",
    )
    p.add_argument(
        "--gc-args",
        default="",
        help="more arguments of the probe, e.g. '--threshold0 100000 --threshold1 50 "
        "--threshold2 1000' for a tuned collector",
    )
    p.add_argument("--py-spy", type=Path, default=None, help="py-spy record of the server")
    p.add_argument("--py-spy-rate", type=int, default=100)
    p.add_argument("--py-spy-native", action="store_true")
    p.add_argument("--py-spy-bin", default=None, help="py-spy executable (default: the venv's)")
    p.add_argument("--json-out", type=Path, default=None, help="append each result as JSON")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for the server's core to be quiet",
    )
    p.add_argument("--quiet-below", type=float, default=20.0, help="busy %% that counts as quiet")
    opts = p.parse_args(argv)
    if opts.couples % opts.couples_per_supplier:
        p.error("--couples must be a multiple of --couples-per-supplier")
    return opts


async def amain(opts: argparse.Namespace) -> int:
    backend = BACKENDS[opts.backend](opts)
    results: list[Result] = []
    for i in range(opts.repeat):
        print(f"\n-- run {i + 1}/{opts.repeat}", flush=True)
        if opts.wait_quiet > 0:
            cpus = "none" if opts.cpu_server == "none" else opts.cpu_server
            waited = await wait_for_quiet(cpus, opts.quiet_below, opts.wait_quiet)
            print(f"waited {waited:.0f} s for a quiet core {cpus}", flush=True)
        with tempfile.TemporaryDirectory(prefix="core-fields-bench-") as tmp:
            r = await run_once(opts, backend, Path(tmp), i)
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

    with contextlib.suppress(KeyboardInterrupt):
        return uvloop.run(amain(opts))
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
