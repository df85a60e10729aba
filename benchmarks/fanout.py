"""Fan-out benchmark: N WebSocket subscribers, one publisher, latency and loss of every delivery.

    .venv/bin/python -m benchmarks.fanout --connections 5000 --mode one --rate 10 --duration 20
    .venv/bin/python -m benchmarks.fanout --connections 5000 --mode rooms --target both --repeat 3

It starts the server (the wedsync server, or the plain `websockets` peer of
`benchmarks/peer_websockets.py`, or both one after the other) pinned to one core, pins itself to
another, and then:

1. measures the server's resident memory (VmRSS of /proc/PID/status) with 0 connections,
   after a small warm-up;
2. opens N connections and joins each to the broadcast channel (`--mode one`) or to its room of
   `--room-size` members (`--mode rooms`), plus the publisher; measures RSS again once idle and
   reports (RSS_N - RSS_0) / N;
3. publishes `--rate` messages per second on EACH channel for `--duration` seconds (so rooms
   and one channel give the same deliveries per second for the same N), every message carrying
   a sequence number and its send time (`time.perf_counter_ns()`, same process as the
   receivers);
4. waits for the deliveries in flight, then prints connections, messages expected / received /
   lost, latency percentiles, deliveries per second, server and generator CPU.

Publisher paths (`--publisher`, default `ws`): `ws` is a service_role WebSocket connection (a
token with `app_metadata.tier = "bench"`, a tier the spawned server gets through `WEDSYNC_TIERS`
with a 1,000,000 messages/min limit) that joins the channels and sends `broadcast` frames; a
connection may join 50 channels (the service-role limit, also the per-user limit), so rooms mode
opens one publisher per 50 rooms, each with its own `sub`, and paces its joins under the
10 joins/s limit. `rest` is `POST /api/broadcast` with a service_role Bearer token, batching
every message due in one tick into one request. The peer only has the `ws` path. Measured
(BENCHMARKS.md), both paths cost the server the same within noise once batched: the fan-out
writes dominate.

Run a given commit of the server without touching the work tree:
`git archive <sha> src | tar -x -C /tmp/ws-<sha>` and
`--server-cmd "env PYTHONPATH=/tmp/ws-<sha>/src .venv/bin/python -m wedsync_realtime serve
--host 127.0.0.1 --port {port}"`.

Every subscriber has its own user (`sub`), so the per-user connection and channel limits stay at
their defaults. Nothing here dials anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from benchmarks.stats import field_medians, percentile
from benchmarks.wsclient import LOOPBACK, HttpPublisher, Stats, WsClient, encode_frame, open_client

REPO = Path(__file__).resolve().parent.parent
BENCH_SECRET = "wedsync-benchmark-secret-not-for-production-0123456789"
BENCH_TIERS = '{"bench":{"max_channels":10,"messages_per_minute":1000000}}'
#: Channels one service-role publisher connection may join (service_role_max_channels and
#: max_channels_per_user both default to 50).
CHANNELS_PER_PUBLISHER = 50
#: Joins per second one connection may make (joins_per_second defaults to 10); stay under it.
PUBLISHER_JOINS_PER_SECOND = 8.0
HEARTBEAT_S = 25.0
JOIN_CONFIG = {
    "config": {
        "broadcast": {"self": False, "ack": False},
        "presence": {"key": "", "enabled": False},
        "postgres_changes": [],
        "private": False,
    }
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- server processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (65536 where the hard limit allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def find_listener_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:`port` (or any address), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                        return int(entry)
    return None


@dataclass
class ServerProcess:
    """A server this benchmark started (or None for one it only connects to)."""

    proc: subprocess.Popen[bytes] | None
    pid: int
    port: int
    path: str
    log: Path | None


def _preexec() -> None:
    raise_nofile()


def spawn(target: str, opts: argparse.Namespace, workdir: Path) -> ServerProcess:
    port = free_port()
    bindir = Path(sys.executable).parent
    if target == "peer":
        template = (
            opts.peer_cmd or f"{sys.executable} -m benchmarks.peer_websockets --port {{port}}"
        )
    else:
        template = (
            opts.server_cmd or f"{bindir}/wedsync-realtime serve --host 127.0.0.1 --port {{port}}"
        )
    argv = shlex.split(template.format(port=port))
    if opts.cpu_server != "none":
        argv = ["taskset", "-c", opts.cpu_server, *argv]
    env = dict(os.environ)
    env.update(
        {
            "WEDSYNC_JWT_SECRET": opts.jwt_secret or BENCH_SECRET,
            "WEDSYNC_TIERS": BENCH_TIERS,
            "WEDSYNC_LOG_LEVEL": opts.server_log_level,
            "WEDSYNC_DATA_DIR": str(workdir / "data"),
        }
    )
    log = workdir / f"{target}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_preexec,
            start_new_session=True,
        )
    return ServerProcess(proc, proc.pid, port, "/socket/websocket", log)


async def wait_listening(server: ServerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}; see {server.log}")
        try:
            _, writer = await asyncio.open_connection(LOOPBACK, server.port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {LOOPBACK}:{server.port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def stop(server: ServerProcess) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_profiler(opts: argparse.Namespace, pid: int) -> subprocess.Popen[bytes]:
    """`py-spy record` of the server during the publishing window, on the generator's core.

    `--py-spy out.txt` writes collapsed stacks (`--format raw`), any other name a flame graph.
    """
    out = str(opts.py_spy)
    argv = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(opts.duration) - 1)),
        "--rate",
        str(opts.py_spy_rate),
        "--output",
        out,
        "--format",
        "raw" if out.endswith(".txt") else "flamegraph",
    ]
    if opts.py_spy_native:
        argv.append("--native")
    if opts.cpu_client != "none":
        argv = ["taskset", "-c", opts.cpu_client, *argv]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    mode: str
    vsn: str
    publisher: str
    connections: int
    connected: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    connect_s: float = 0.0
    channels: int = 0
    publishers: int = 0
    rate_per_channel: float = 0.0
    duration_s: float = 0.0
    messages_sent: int = 0
    publish_s: float = 0.0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    offered_dps: float = 0.0
    achieved_dps: float = 0.0
    server_cpu_pct: float = math.nan
    generator_cpu_pct: float = 0.0
    generator_lag_max_ms: float = 0.0
    generator_us_per_delivery: float = math.nan
    rss0_kb: int = 0
    rss_idle_kb: int = 0
    rss_idle_samples_kb: list[int] = field(default_factory=list)
    rss_end_kb: int = 0
    kb_per_conn: float = math.nan
    #: Median over messages of the latency of each message's slowest delivery (a fan-out pass).
    message_worst_p50_ms: float = math.nan
    #: (seq, seconds after the first message, slowest delivery ms) of the 10 slowest messages.
    slowest: list[tuple[int, float, float]] = field(default_factory=list)
    #: Per second of publishing: the slowest delivery of the messages sent in that second.
    slowest_by_second_ms: list[float] = field(default_factory=list)
    lost_connections: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    other_events: dict[str, int] = field(default_factory=dict)
    http_errors: dict[str, int] = field(default_factory=dict)


def sign_tokens(secret: str, subs: Sequence[str], claims: dict[str, Any]) -> list[str]:
    from wedsync_realtime.auth.jwt import TokenVerifier

    signer = TokenVerifier(secret)
    exp = int(time.time()) + 3600
    return [signer.sign({"sub": sub, "exp": exp, "iat": exp - 3600, **claims}) for sub in subs]


def ws_path(base: str, token: str, vsn: str) -> str:
    return f"{base}?apikey={token}&vsn={vsn}"


class Clients:
    """Every connection of a run, for heartbeats and closing."""

    def __init__(self) -> None:
        self.all: list[WsClient] = []

    async def heartbeats(self) -> None:
        """Every connection sends a Phoenix heartbeat every 25 s, spread over the period."""
        slot = 0
        slots = int(HEARTBEAT_S)
        while True:
            await asyncio.sleep(1.0)
            for client in self.all[slot::slots]:
                if client.alive:
                    client.heartbeat()
            slot = (slot + 1) % slots

    def close(self) -> None:
        for client in self.all:
            client.close()


async def _connect_subscribers(
    server: ServerProcess,
    tokens: list[str],
    topics: list[str],
    vsn: str,
    stats: Stats,
    clients: Clients,
    concurrency: int,
    errors: Counter[str],
) -> list[int]:
    """Open and join every subscriber; returns the joined count of each channel."""
    joined = [0] * len(set(topics))
    index = {t: i for i, t in enumerate(dict.fromkeys(topics))}
    sem = asyncio.Semaphore(concurrency)

    async def one(token: str, topic: str) -> None:
        async with sem:
            try:
                client = await open_client(server.port, ws_path(server.path, token, vsn), stats)
            except (OSError, TimeoutError) as exc:
                errors[f"connect: {type(exc).__name__}: {str(exc)[:80]}"] += 1
                return
            clients.all.append(client)
            try:
                _, reply = client.request(topic, "phx_join", JOIN_CONFIG)
                status, response = await asyncio.wait_for(reply, 30)
            except (OSError, TimeoutError) as exc:
                errors[f"join: {type(exc).__name__}"] += 1
                return
            if status != "ok":
                errors[f"join: {status} {str(response)[:80]}"] += 1
                return
            joined[index[topic]] += 1

    await asyncio.gather(*(one(tok, top) for tok, top in zip(tokens, topics, strict=True)))
    return joined


async def _connect_publishers(
    server: ServerProcess,
    tokens: list[str],
    assignments: list[list[str]],
    vsn: str,
    stats: Stats,
    clients: Clients,
) -> list[tuple[WsClient, dict[str, str]]]:
    """Open the publisher connections and join their channels, paced under the join limit.

    Returns (client, topic -> join_ref) per publisher.
    """

    async def one(token: str, topics: list[str]) -> tuple[WsClient, dict[str, str]]:
        client = await open_client(
            server.port, ws_path(server.path, token, vsn), stats, counting=False
        )
        clients.all.append(client)
        refs: dict[str, str] = {}
        for i, topic in enumerate(topics):
            if i:
                await asyncio.sleep(1.0 / PUBLISHER_JOINS_PER_SECOND)
            ref, reply = client.request(topic, "phx_join", JOIN_CONFIG)
            status, response = await asyncio.wait_for(reply, 30)
            if status != "ok":
                raise RuntimeError(f"publisher join of {topic} refused: {response}")
            refs[topic] = ref
        return client, refs

    return list(
        await asyncio.gather(*(one(t, a) for t, a in zip(tokens, assignments, strict=True)))
    )


async def _lag_monitor(samples: list[float], period: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(period)
        samples.append(loop.time() - start - period)


async def run_once(target: str, opts: argparse.Namespace, workdir: Path) -> Result:
    n = opts.connections
    room_size = n if opts.mode == "one" else opts.room_size
    n_channels = math.ceil(n / room_size)
    publisher_path = "ws" if target == "peer" else opts.publisher
    result = Result(
        target=opts.label if target == "wedsync" and opts.label else target,
        mode=opts.mode,
        vsn=opts.vsn,
        publisher=publisher_path,
        connections=n,
        channels=n_channels,
        rate_per_channel=opts.rate,
        duration_s=opts.duration,
    )
    # Tokens first: signing is generator work that must not overlap any measurement.
    secret = opts.jwt_secret or BENCH_SECRET
    run_id = f"{int(time.time())}-{os.getpid()}"
    sub_tokens = sign_tokens(
        secret, [f"bench-{run_id}-{i}" for i in range(n)], {"role": "authenticated"}
    )
    pub_claims = {"role": "service_role", "app_metadata": {"tier": "bench"}}
    n_pubs = math.ceil(n_channels / CHANNELS_PER_PUBLISHER) if publisher_path == "ws" else 1
    pub_tokens = sign_tokens(
        secret, [f"bench-publisher-{run_id}-{i}" for i in range(n_pubs)], pub_claims
    )
    topics = [f"realtime:bench-{i // room_size}" for i in range(n)]
    channel_topics = list(dict.fromkeys(topics))

    if opts.url and target == opts.url_target:
        parts = urlsplit(opts.url)
        port = parts.port or 80
        pid = opts.server_pid or find_listener_pid(port)
        if pid is None:
            raise SystemExit(f"cannot find the process listening on port {port}; pass --server-pid")
        server = ServerProcess(None, pid, port, parts.path or "/socket/websocket", None)
    else:
        server = spawn(target, opts, workdir)
    stats = Stats(1)  # replaced below once the message count is known
    clients = Clients()
    heartbeat_task: asyncio.Task[None] | None = None
    try:
        await wait_listening(server)
        # Warm-up: a few connections through every code path, then RSS with 0 connections.
        warm = Clients()
        await _connect_subscribers(
            server, sub_tokens[:20], topics[:20], opts.vsn, stats, warm, 20, Counter()
        )
        warm.close()
        await asyncio.sleep(1.5)
        result.rss0_kb = rss_kb(server.pid)

        total_rate = opts.rate * n_channels
        max_messages = math.ceil(total_rate * opts.duration) + 1
        stats = Stats(max_messages)
        errors: Counter[str] = Counter()
        t0 = time.perf_counter()
        joined = await _connect_subscribers(
            server, sub_tokens, topics, opts.vsn, stats, clients, opts.concurrency, errors
        )
        result.connect_s = time.perf_counter() - t0
        result.connected = sum(joined)
        result.connect_errors = dict(errors)

        publishers: list[tuple[WsClient, dict[str, str]]] = []
        http: HttpPublisher | None = None
        if publisher_path == "ws":
            assignments = [channel_topics[i::n_pubs] for i in range(n_pubs)]
            publishers = await _connect_publishers(
                server, pub_tokens, assignments, opts.vsn, stats, clients
            )
        else:
            loop = asyncio.get_running_loop()
            _, http = await loop.create_connection(
                lambda: HttpPublisher(server.port, pub_tokens[0]), LOOPBACK, server.port
            )
            # Warm the REST path up (first-request set-up in FastAPI/pydantic).
            for _ in range(3):
                http.submit([b'{"topic":"warm-up","event":"m","payload":{}}'])
                await http.idle.wait()
        result.publishers = len(publishers) or 1
        heartbeat_task = asyncio.create_task(clients.heartbeats())

        # RSS once a second while idle; the last sample is RSS_N.
        for _ in range(max(1, round(opts.settle))):
            await asyncio.sleep(opts.settle / max(1, round(opts.settle)))
            result.rss_idle_samples_kb.append(rss_kb(server.pid))
        result.rss_idle_kb = result.rss_idle_samples_kb[-1]
        if result.connected:
            result.kb_per_conn = (result.rss_idle_kb - result.rss0_kb) / result.connected

        # -- publish -----------------------------------------------------------------------
        by_topic: dict[str, tuple[WsClient, str]] = {}
        for client, refs in publishers:
            for topic, ref in refs.items():
                by_topic[topic] = (client, ref)
        pad = "x" * opts.payload_size
        tick = 1.0 / total_rate if total_rate <= 100 else 0.01
        lag: list[float] = []
        lag_task = asyncio.create_task(_lag_monitor(lag))
        profiler = start_profiler(opts, server.pid) if opts.py_spy else None
        cpu_server0 = cpu_seconds(server.pid)
        cpu_self0 = self_cpu_seconds()
        deliveries0 = stats.deliveries
        start = time.perf_counter()
        start_ns = time.perf_counter_ns()
        sent = 0
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while sent < max_messages - 1:
            elapsed = time.perf_counter() - start
            if elapsed >= opts.duration:
                break
            due = min(max_messages - 1, int(elapsed * total_rate) + 1)
            stamp = time.perf_counter_ns()
            if http is not None:
                items = []
                for seq in range(sent, due):
                    topic = channel_topics[seq % n_channels]
                    items.append(
                        orjson.dumps(
                            {
                                "topic": topic.removeprefix("realtime:"),
                                "event": "m",
                                "payload": {"s": seq, "t": stamp, "p": pad},
                            }
                        )
                    )
                http.submit(items)
            else:
                batches: dict[WsClient, list[bytes]] = {}
                for seq in range(sent, due):
                    topic = channel_topics[seq % n_channels]
                    client, join_ref = by_topic[topic]
                    body = {
                        "type": "broadcast",
                        "event": "m",
                        "payload": {"s": seq, "t": stamp, "p": pad},
                    }
                    data = client.encode(topic, "broadcast", body, None, join_ref)
                    batches.setdefault(client, []).append(encode_frame(0x1, data))
                for client, frames in batches.items():
                    client.send_raw(b"".join(frames))
            sent = due
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
        result.publish_s = time.perf_counter() - start
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        result.messages_sent = sent

        # -- drain -------------------------------------------------------------------------
        sizes = [joined[seq % n_channels] for seq in range(sent)]
        expected = sum(sizes)
        deadline = time.perf_counter() + opts.drain_timeout
        while time.perf_counter() < deadline:
            if stats.deliveries - deliveries0 >= expected:
                break
            await asyncio.sleep(0.05)
        end_wall = time.perf_counter()
        cpu_server = cpu_seconds(server.pid) - cpu_server0
        cpu_self = self_cpu_seconds() - cpu_self0
        lag_task.cancel()
        window = end_wall - start
        result.rss_end_kb = rss_kb(server.pid)

        counts = stats.counts
        received = sum(min(counts[s], sizes[s]) for s in range(sent))
        result.expected = expected
        result.received = received
        result.lost = expected - received
        result.duplicates = sum(max(0, counts[s] - sizes[s]) for s in range(sent)) + stats.stray
        lat = sorted(stats.latencies)
        result.p50_ms = percentile(lat, 0.50)
        result.p95_ms = percentile(lat, 0.95)
        result.p99_ms = percentile(lat, 0.99)
        result.max_ms = lat[-1] / 1e6 if lat else math.nan
        # The nominal rate: deliveries due per second of the publishing schedule.
        result.offered_dps = expected * total_rate / sent if sent else 0.0
        span = (stats.last_ns - start_ns) / 1e9 if stats.last_ns else 0.0
        result.achieved_dps = len(lat) / max(span, result.publish_s) if lat else 0.0
        result.server_cpu_pct = 100.0 * cpu_server / window
        result.generator_cpu_pct = 100.0 * cpu_self / window
        if lat:
            result.generator_us_per_delivery = 1e6 * cpu_self / len(lat)
        result.generator_lag_max_ms = 1000.0 * max(lag, default=0.0)
        # The slowest messages (the last subscriber's latency), with their send offset.
        sent_at = [seq / total_rate for seq in range(sent)]
        slowest = sorted(range(sent), key=lambda s: stats.worst[s], reverse=True)[:10]
        result.slowest = [
            (seq, round(sent_at[seq], 2), round(stats.worst[seq] / 1e6, 1)) for seq in slowest
        ]
        per_second: dict[int, float] = {}
        for seq in range(sent):
            second = int(sent_at[seq])
            per_second[second] = max(per_second.get(second, 0.0), stats.worst[seq] / 1e6)
        result.slowest_by_second_ms = [round(per_second[k], 1) for k in sorted(per_second)]
        worst = sorted(stats.worst[:sent])
        result.message_worst_p50_ms = percentile(worst, 0.5)
        result.lost_connections = stats.lost_connections
        result.close_codes = {str(k): v for k, v in stats.close_codes.items()}
        result.other_events = dict(stats.other_events)
        if http is not None:
            result.http_errors = {str(k): v for k, v in http.errors.items()}
            if http.transport is not None:
                http.transport.close()
        return result
    finally:
        if heartbeat_task is not None:
            heartbeat_task.cancel()
        clients.close()
        await asyncio.sleep(0.5)
        stop(server)


# -- reporting ----------------------------------------------------------------------------------


def describe(r: Result) -> str:
    errors = ", ".join(f"{k} x{v}" for k, v in r.connect_errors.items()) or "none"
    lines = [
        f"== {r.target}  mode={r.mode} vsn={r.vsn} publisher={r.publisher} "
        f"channels={r.channels} publishers={r.publishers}",
        f"connections made     {r.connected}/{r.connections} in {r.connect_s:.1f} s "
        f"({r.connected / max(r.connect_s, 1e-9):.0f}/s); errors: {errors}",
        f"messages published   {r.messages_sent} in {r.publish_s:.1f} s "
        f"({r.rate_per_channel:g}/s per channel)",
        f"deliveries           expected {r.expected}  received {r.received}  lost {r.lost}  "
        f"duplicates {r.duplicates}",
        f"latency ms           p50 {r.p50_ms:.1f}  p95 {r.p95_ms:.1f}  p99 {r.p99_ms:.1f}  "
        f"max {r.max_ms:.1f}",
        f"per message          slowest delivery: median {r.message_worst_p50_ms:.1f} ms; "
        f"slowest messages (s, ms) {[(t, ms) for _, t, ms in r.slowest[:5]]}",
        f"deliveries/s         offered {r.offered_dps:,.0f}  achieved {r.achieved_dps:,.0f}",
        f"server RSS           0 conns {r.rss0_kb / 1024:.1f} MiB  N idle "
        f"{r.rss_idle_kb / 1024:.1f} MiB  after load {r.rss_end_kb / 1024:.1f} MiB  "
        f"=> {r.kb_per_conn:.1f} KB per idle connection",
        f"CPU (publish window) server {r.server_cpu_pct:.0f}%  "
        f"generator {r.generator_cpu_pct:.0f}% "
        f"({r.generator_us_per_delivery:.1f} us/delivery, max loop lag "
        f"{r.generator_lag_max_ms:.0f} ms)",
    ]
    if r.lost_connections or r.close_codes:
        lines.append(f"connections lost     {r.lost_connections}; close codes {r.close_codes}")
    if r.http_errors:
        lines.append(f"HTTP errors          {r.http_errors}")
    if r.other_events:
        lines.append(f"other events         {r.other_events}")
    return "\n".join(lines)


TABLE_HEADER = (
    "| target | mode | N | conns held | rate/ch | deliveries/s (offered → achieved) | "
    "lost | p50 ms | p95 ms | p99 ms | max ms | server CPU | gen CPU | KB/idle conn |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(r: Result, label: str = "") -> str:
    return (
        f"| {r.target}{label} | {r.mode} | {r.connections:,} | {r.connected:,} | "
        f"{r.rate_per_channel:g} | {r.offered_dps:,.0f} → {r.achieved_dps:,.0f} | {r.lost:,} | "
        f"{r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | "
        f"{r.server_cpu_pct:.0f}% | {r.generator_cpu_pct:.0f}% | {r.kb_per_conn:.1f} |"
    )


def median_result(results: list[Result]) -> Result:
    """Field-wise median of the numeric fields (the first run's labels)."""
    return field_medians(results)


# -- CLI ----------------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the unset ones."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout",
        description="WebSocket fan-out benchmark for WedSync Realtime (and a websockets peer).",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--connections", "-n", type=int, default=1000, help="subscribers")
    p.add_argument("--mode", choices=("one", "rooms"), default="one")
    p.add_argument("--room-size", type=int, default=10, help="members per room (--mode rooms)")
    p.add_argument("--rate", type=float, default=10.0, help="messages/s on EACH channel")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    p.add_argument("--vsn", choices=("1.0.0", "2.0.0"), default="1.0.0")
    p.add_argument("--payload-size", type=int, default=64, help="padding bytes per message")
    p.add_argument(
        "--publisher",
        choices=("ws", "rest"),
        default="ws",
        help="wedsync publisher path: service_role WebSocket, or POST /api/broadcast",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target", choices=("wedsync", "peer", "both"), default="wedsync")
    target.add_argument(
        "--peer", dest="target", action="store_const", const="peer", help="same as --target peer"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per target (median reported)")
    p.add_argument(
        "--server-cmd",
        help="command starting the wedsync server, {port} substituted "
        "(default: .venv/bin/wedsync-realtime serve --host 127.0.0.1 --port {port})",
    )
    p.add_argument("--label", help="name of the wedsync target in the output (e.g. a variant)")
    p.add_argument("--peer-cmd", help="command starting the peer, {port} substituted")
    p.add_argument(
        "--url",
        help="use an already running server, ws://127.0.0.1:PORT/socket/websocket "
        "(RSS/CPU of the process listening on PORT, or --server-pid)",
    )
    p.add_argument(
        "--url-target",
        choices=("wedsync", "peer"),
        default="wedsync",
        help="what the --url server is",
    )
    p.add_argument("--server-pid", type=int)
    p.add_argument("--jwt-secret", help="the server's WEDSYNC_JWT_SECRET (default: a bench secret)")
    p.add_argument("--cpu-server", default="0", help="core(s) for the server (taskset), or none")
    p.add_argument("--cpu-client", default="1", help="core(s) for this generator, or none")
    p.add_argument("--concurrency", type=int, default=200, help="connection attempts in flight")
    p.add_argument("--settle", type=float, default=3.0, help="idle seconds before RSS_N")
    p.add_argument("--drain-timeout", type=float, default=10.0)
    p.add_argument("--server-log-level", default="WARNING")
    p.add_argument("--py-spy", type=Path, help="record the server with py-spy to this file")
    p.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--py-spy-native", action="store_true", help="py-spy --native")
    p.add_argument("--json-out", type=Path, help="append each result as a JSON line")
    opts = p.parse_args(argv)
    if opts.url:
        parts = urlsplit(opts.url)
        if parts.scheme != "ws" or parts.hostname not in ("127.0.0.1", "localhost"):
            p.error("--url must be ws://127.0.0.1:PORT/...: this benchmark only dials 127.0.0.1")
    return opts


def append_json(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


async def amain(opts: argparse.Namespace) -> int:
    targets = ["wedsync", "peer"] if opts.target == "both" else [opts.target]
    results: dict[str, list[Result]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        workdir = Path(tmp)
        for i in range(opts.repeat):
            for target in targets:
                print(f"\n-- run {i + 1}/{opts.repeat}: {target}", flush=True)
                r = await run_once(target, opts, workdir)
                results[target].append(r)
                print(describe(r), flush=True)
                if opts.json_out:
                    append_json(opts.json_out, {"run": i + 1, **dataclasses.asdict(r)})
    print("\n" + TABLE_HEADER)
    for target in targets:
        for r in results[target]:
            print(table_row(r))
        if len(results[target]) > 1:
            print(table_row(median_result(results[target]), f" (median of {opts.repeat})"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_nofile()
    if opts.cpu_client != "none":
        cpus = {int(c) for c in opts.cpu_client.split(",")}
        os.sched_setaffinity(0, cpus)
    import uvloop

    return uvloop.run(amain(opts))


if __name__ == "__main__":
    raise SystemExit(main())
