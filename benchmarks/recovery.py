"""Recovery benchmark: SDK subscribers whose connections are cut while messages flow.

    .venv/bin/python -m benchmarks.recovery            # 1,000 subscribers, 100 channels, 100 msg/s
    .venv/bin/python -m benchmarks.recovery --repeat 3 --json-out /tmp/recovery.jsonl

It starts the server pinned to one core (`benchmarks.fanout.spawn`: `taskset -c 0`, the same
settings as the fan-out benchmark), pins itself to another, and then:

1. opens `--subscribers` `RealtimeClient`s of the Python SDK (`wedsync_realtime.client`), one
   connection and one user each, every one joining one of `--channels` channels (round robin,
   so 10 subscribers per channel by default). The SDK is the subscriber: what is measured is the
   product's own reconnect, `recover` and exactly-once, in-order delivery path;
2. publishes `--rate` messages per second in total, round robin over the channels, through
   `POST /api/broadcast` with a service_role token (`benchmarks.wsclient.HttpPublisher`, one
   request per 10 ms tick). Each message carries its per-channel sequence number `s`, its send
   stamp `t` (`time.perf_counter_ns()`, the clock of this same process) and an id;
3. every `--cut-period` seconds, cuts `--cut-fraction` of the subscribers (chosen at random among
   those joined and not already recovering): it sets SO_LINGER 0 on the client's socket and
   aborts the transport, so the connection dies with a TCP RST, whatever the kernel held unread
   is discarded, and neither end gets a close frame. The SDK is not told: it finds the socket
   dead, backs off (`--backoff-base`, `--backoff-cap`, full jitter) and reconnects, rejoins with
   `recover` from the last position it delivered, and must deliver what it missed exactly once,
   in order;
4. after `--duration` seconds stops publishing and cutting, waits up to `--drain` seconds for
   every subscriber to be joined and to have delivered its channel's last message, then prints:
   messages published, expected / delivered / lost / duplicated / out-of-order deliveries,
   reloads, reconnect time, recovery replay time, the age of replayed messages, live delivery
   latency, server CPU and RSS, generator CPU and loop lag.

Definitions (all in ms, from `time.perf_counter_ns()` in this process):

* **reconnect time**: from the cut to the moment the channel is joined again (the SDK has
  handled the `phx_join` reply of the rejoin: channel state `joined`). Split into cut →
  `connected` (the socket is up again: detection + backoff delay + TCP/WebSocket handshake) and
  `connected` → joined (the join round trip, with the server's history read).
* **recovery replay time**: for each rejoin that replayed at least one message, from the moment
  the new socket is `connected` (the SDK sends the `phx_join` with `recover` right then) to the
  delivery to the application of the last message marked `meta.replayed` of that rejoin: the
  join round trip, the server's history read, the replayed frames and the SDK's checks. (Measured
  from the join reply instead it is ~0.01 ms: the replayed frames follow the reply at once.)
* **replayed message age**: publish → delivery latency of the replayed messages: how long a
  message that was missed during the cut waited before it reached the application.
* **live latency**: publish → delivery latency of every message that was not replayed.
* **lost**: a (subscriber, message) pair expected (the subscriber's channel published it) but
  never delivered, excluding those skipped by a reload (`recovered: false`; counted apart).
* **duplicated**: a message delivered more than once to the same subscriber;
  **out of order**: a message delivered after a later one of its channel.

Exit status 1 if anything is lost, duplicated or out of order, or a rejoin never happened.
Nothing here dials anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import random
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.fanout import (
    BENCH_SECRET,
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
)
from benchmarks.stats import field_medians, percentile
from benchmarks.wsclient import LOOPBACK, HttpPublisher
from wedsync_realtime.client import (
    Broadcast,
    Channel,
    ChannelState,
    ConnectionState,
    RealtimeClient,
    Reload,
)
from wedsync_realtime.client.client import STABLE_AFTER_S

_clock = time.perf_counter_ns
_LINGER_RST = struct.pack("ii", 1, 0)
SDK_LOGGER = "wedsync_realtime.client"


# -- one subscriber ------------------------------------------------------------------------------


@dataclass(slots=True)
class Episode:
    """One cut of one subscriber and its recovery (perf_counter_ns stamps, 0 = not yet)."""

    cut_ns: int
    #: How long the cut connection had lived (since the previous join); under the SDK's
    #: STABLE_AFTER_S the backoff keeps escalating instead of starting over.
    age_ns: int = 0
    down_ns: int = 0
    connected_ns: int = 0
    joined_ns: int = 0
    replayed: int = 0
    last_replay_ns: int = 0
    stuck: bool = False
    skipped: bool = False


@dataclass(slots=True)
class ReloadMark:
    """A reload the SDK reported: the last sequence delivered before it, the first after."""

    before: int
    after: int | None = None


class Subscriber:
    """One SDK client with one channel, recording everything it delivers."""

    def __init__(self, index: int, channel_index: int, client: RealtimeClient) -> None:
        self.index = index
        self.channel_index = channel_index
        self.client = client
        self.channel: Channel | None = None
        self.last_seq = -1
        self.seen: set[int] = set()
        self.deliveries = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.reloads: list[ReloadMark] = []
        self.episode: Episode | None = None
        self.episodes: list[Episode] = []
        #: When the channel was last joined (first join, or the rejoin after a cut).
        self.joined_ns = 0
        self.disconnects = 0
        self.unplanned_disconnects = 0
        self.stats: Deliveries | None = None
        client.on_state_change(self._on_state)

    def attach(self, channel: Channel, stats: Deliveries) -> None:
        self.channel = channel
        self.stats = stats
        channel.on_broadcast("m", self._on_message)
        channel.on_reload(self._on_reload)

    @property
    def recovering(self) -> bool:
        ep = self.episode
        return ep is not None and not ep.joined_ns and not ep.stuck

    def _on_state(self, state: ConnectionState) -> None:
        now = _clock()
        ep = self.episode
        if state is ConnectionState.DISCONNECTED:
            self.disconnects += 1
            if ep is not None and not ep.down_ns and not ep.joined_ns:
                ep.down_ns = now
            else:
                self.unplanned_disconnects += 1
        elif (
            state is ConnectionState.CONNECTED
            and ep is not None
            and ep.down_ns
            and not ep.connected_ns
        ):
            ep.connected_ns = now

    def _on_message(self, message: Broadcast) -> None:
        now = _clock()
        payload = message.payload
        seq: int = payload["s"]
        stats = self.stats
        assert stats is not None
        self.deliveries += 1
        if seq in self.seen:
            self.duplicates += 1
            return
        self.seen.add(seq)
        if seq < self.last_seq:
            self.out_of_order += 1
        else:
            self.last_seq = seq
        if self.reloads and self.reloads[-1].after is None:
            self.reloads[-1].after = seq
        latency = now - payload["t"]
        if message.replayed:
            stats.replayed_ns.append(latency)
            ep = self.episode
            if ep is not None and ep.joined_ns:
                ep.replayed += 1
                ep.last_replay_ns = now
        else:
            stats.live_ns.append(latency)

    def _on_reload(self, reload: Reload) -> None:
        self.reloads.append(ReloadMark(self.last_seq))

    def cut(self) -> bool:
        """Kill the connection with a TCP RST; False if there is no connection to cut."""
        link = self.client.link
        transport = link.ws.transport if link is not None else None
        if transport is None or transport.is_closing():
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        transport.abort()
        return True


@dataclass
class Deliveries:
    """Latencies of every delivery of a run (ns)."""

    live_ns: list[int] = field(default_factory=list)
    replayed_ns: list[int] = field(default_factory=list)


class SdkLogCounter(logging.Handler):
    """Counts the SDK's warnings and errors by message template (a drop, a resync, a reload,
    a refused join), instead of printing 1,000 clients' worth of them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.levelname} {record.msg}"
        self.counts[key] += 1
        if key not in self.examples:
            with contextlib.suppress(Exception):
                self.examples[key] = record.getMessage()[:200]


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    subscribers: int
    channels: int
    rate: float
    cut_fraction: float
    cut_period_s: float
    duration_s: float
    backoff_base_s: float
    backoff_cap_s: float
    joined: int = 0
    connect_s: float = 0.0
    messages_published: int = 0
    publish_s: float = 0.0
    http_errors: dict[str, int] = field(default_factory=dict)
    cuts: int = 0
    cuts_skipped: int = 0
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    reloads: int = 0
    skipped_by_reload: int = 0
    stuck_rejoins: int = 0
    unplanned_disconnects: int = 0
    sdk_duplicates_dropped: int = 0
    drain_s: float = 0.0
    reconnect_p50_ms: float = math.nan
    reconnect_p99_ms: float = math.nan
    reconnect_max_ms: float = math.nan
    #: Cuts of a connection younger than the SDK's STABLE_AFTER_S (5 s): its backoff escalates.
    cuts_of_young: int = 0
    reconnect_young_p50_ms: float = math.nan
    reconnect_young_p99_ms: float = math.nan
    reconnect_old_p50_ms: float = math.nan
    reconnect_old_p99_ms: float = math.nan
    to_connected_p50_ms: float = math.nan
    to_connected_p99_ms: float = math.nan
    join_rtt_p50_ms: float = math.nan
    join_rtt_p99_ms: float = math.nan
    rejoins_with_replay: int = 0
    replayed_deliveries: int = 0
    replay_time_p50_ms: float = math.nan
    replay_time_p99_ms: float = math.nan
    replayed_age_p50_ms: float = math.nan
    replayed_age_p99_ms: float = math.nan
    live_p50_ms: float = math.nan
    live_p95_ms: float = math.nan
    live_p99_ms: float = math.nan
    live_max_ms: float = math.nan
    server_cpu_pct: float = math.nan
    server_rss_start_kb: int = 0
    server_rss_peak_kb: int = 0
    generator_cpu_pct: float = math.nan
    generator_lag_max_ms: float = 0.0
    sdk_log: dict[str, int] = field(default_factory=dict)
    sdk_log_examples: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.duplicated or self.out_of_order or self.stuck_rejoins)


def _pct(values_ns: Sequence[int], q: float) -> float:
    return percentile(sorted(values_ns), q)


async def _connect_subscribers(
    url: str,
    tokens: list[str],
    opts: argparse.Namespace,
    stats: Deliveries,
) -> list[Subscriber]:
    """Make every client and join its channel, `opts.concurrency` at a time."""
    sem = asyncio.Semaphore(opts.concurrency)
    subs: list[Subscriber] = []

    async def one(index: int, token: str) -> None:
        async with sem:
            client = RealtimeClient(
                url,
                token,
                vsn=opts.vsn,
                reconnect_base=opts.backoff_base,
                reconnect_cap=opts.backoff_cap,
            )
            sub = Subscriber(index, index % opts.channels, client)
            subs.append(sub)
            await client.connect()
            channel = client.channel(f"recovery-{sub.channel_index}")
            sub.attach(channel, stats)
            await channel.join()
            await channel.wait_joined(30)
            sub.joined_ns = _clock()

    await asyncio.gather(*(one(i, tok) for i, tok in enumerate(tokens)))
    subs.sort(key=lambda s: s.index)
    return subs


async def _follow_cut(sub: Subscriber, ep: Episode, timeout: float) -> None:
    """Wait for the cut subscriber's channel to be joined again; stamp the moment."""
    channel = sub.channel
    assert channel is not None
    try:
        async with asyncio.timeout(timeout):
            await sub.client.wait_for_state(
                ConnectionState.DISCONNECTED, ConnectionState.RECONNECTING
            )
            await channel.wait_joined()
        ep.joined_ns = sub.joined_ns = _clock()
    except TimeoutError:
        ep.stuck = True


async def _cutter(
    subs: list[Subscriber],
    opts: argparse.Namespace,
    rng: random.Random,
    start: float,
    followers: list[asyncio.Task[None]],
    result: Result,
) -> None:
    count = max(1, round(opts.cut_fraction * len(subs)))
    k = 1
    while k * opts.cut_period < opts.duration:
        await asyncio.sleep(max(0.0, start + k * opts.cut_period - time.perf_counter()))
        k += 1
        ready = [
            s
            for s in subs
            if not s.recovering and s.channel is not None and s.channel.state is ChannelState.JOINED
        ]
        chosen = rng.sample(ready, min(count, len(ready)))
        result.cuts_skipped += count - len(chosen)
        for sub in chosen:
            now = _clock()
            ep = Episode(now, age_ns=now - sub.joined_ns)
            if not sub.cut():
                result.cuts_skipped += 1
                continue
            sub.episode = ep
            sub.episodes.append(ep)
            result.cuts += 1
            followers.append(asyncio.create_task(_follow_cut(sub, ep, opts.stuck_timeout)))


async def _rss_sampler(pid: int, peak: list[int]) -> None:
    while True:
        with contextlib.suppress(OSError, RuntimeError):
            peak[0] = max(peak[0], rss_kb(pid))
        await asyncio.sleep(0.5)


def _drained(subs: list[Subscriber], last_seq: list[int]) -> bool:
    for sub in subs:
        channel = sub.channel
        if channel is None or channel.state is not ChannelState.JOINED or sub.recovering:
            return False
        if sub.last_seq < last_seq[sub.channel_index]:
            return False
    return True


async def run_once(opts: argparse.Namespace, workdir: Path, run: int) -> Result:
    result = Result(
        label=opts.label,
        subscribers=opts.subscribers,
        channels=opts.channels,
        rate=opts.rate,
        cut_fraction=opts.cut_fraction,
        cut_period_s=opts.cut_period,
        duration_s=opts.duration,
        backoff_base_s=opts.backoff_base,
        backoff_cap_s=opts.backoff_cap,
    )
    secret = opts.jwt_secret or BENCH_SECRET
    run_id = f"{int(time.time())}-{os.getpid()}-{run}"
    sub_tokens = sign_tokens(
        secret,
        [f"recovery-{run_id}-{i}" for i in range(opts.subscribers)],
        {"role": "authenticated"},
    )
    (pub_token,) = sign_tokens(
        secret,
        [f"recovery-publisher-{run_id}"],
        {"role": "service_role", "app_metadata": {"tier": "bench"}},
    )
    log_counter = SdkLogCounter()
    sdk_log = logging.getLogger(SDK_LOGGER)
    sdk_log.addHandler(log_counter)
    sdk_log.propagate = False
    sdk_log.setLevel(logging.WARNING)

    server: ServerProcess = spawn("wedsync", opts, workdir)
    stats = Deliveries()
    subs: list[Subscriber] = []
    http: HttpPublisher | None = None
    tasks: list[asyncio.Task[Any]] = []
    followers: list[asyncio.Task[None]] = []
    try:
        await wait_listening(server)
        url = f"ws://{LOOPBACK}:{server.port}"
        t0 = time.perf_counter()
        subs = await _connect_subscribers(url, sub_tokens, opts, stats)
        result.connect_s = time.perf_counter() - t0
        result.joined = sum(
            1 for s in subs if s.channel is not None and s.channel.state is ChannelState.JOINED
        )
        loop = asyncio.get_running_loop()
        _, http = await loop.create_connection(
            lambda: HttpPublisher(server.port, pub_token), LOOPBACK, server.port
        )
        assert http is not None
        for _ in range(3):  # first-request set-up of the REST path
            http.submit([b'{"topic":"warm-up","event":"w","payload":{}}'])
            await http.idle.wait()
        await asyncio.sleep(opts.settle)
        result.server_rss_start_kb = rss_kb(server.pid)
        peak = [result.server_rss_start_kb]
        lag: list[float] = []
        tasks.append(asyncio.create_task(_lag_monitor(lag)))
        tasks.append(asyncio.create_task(_rss_sampler(server.pid, peak)))

        # -- publish and cut -------------------------------------------------------------------
        n_channels = opts.channels
        pad = "x" * opts.payload_size
        cpu_server0 = cpu_seconds(server.pid)
        cpu_self0 = self_cpu_seconds()
        start = time.perf_counter()
        rng = random.Random(opts.seed + run)
        cutter = asyncio.create_task(_cutter(subs, opts, rng, start, followers, result))
        tasks.append(cutter)
        last_seq = [-1] * n_channels
        sent = 0
        tick = 0.01
        next_tick = loop.time()
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= opts.duration:
                break
            due = int(elapsed * opts.rate) + 1
            stamp = _clock()
            items = []
            for k in range(sent, due):
                c, seq = k % n_channels, k // n_channels
                last_seq[c] = seq
                items.append(
                    orjson.dumps(
                        {
                            "topic": f"recovery-{c}",
                            "event": "m",
                            "payload": {"s": seq, "t": stamp, "p": pad},
                            "id": f"{run_id}:{c}:{seq}",
                        }
                    )
                )
            if items:
                http.submit(items)
            sent = due
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
        result.publish_s = time.perf_counter() - start
        result.messages_published = sent
        await cutter
        await http.idle.wait()

        # -- drain -----------------------------------------------------------------------------
        drain_start = time.perf_counter()
        while time.perf_counter() - drain_start < opts.drain:
            if _drained(subs, last_seq):
                break
            await asyncio.sleep(0.1)
        result.drain_s = time.perf_counter() - drain_start
        window = time.perf_counter() - start
        result.server_cpu_pct = 100.0 * (cpu_seconds(server.pid) - cpu_server0) / window
        result.generator_cpu_pct = 100.0 * (self_cpu_seconds() - cpu_self0) / window
        result.server_rss_peak_kb = max(peak[0], rss_kb(server.pid))
        result.generator_lag_max_ms = 1000.0 * max(lag, default=0.0)
        result.http_errors = {str(k): v for k, v in http.errors.items()}
        _account(result, subs, last_seq, stats)
        result.sdk_log = dict(log_counter.counts)
        result.sdk_log_examples = dict(log_counter.examples)
        return result
    finally:
        for task in (*tasks, *followers):
            task.cancel()
        await asyncio.gather(*tasks, *followers, return_exceptions=True)
        if http is not None and http.transport is not None:
            http.transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.client.close() for s in subs), return_exceptions=True)
        stop(server)
        sdk_log.removeHandler(log_counter)


def _account(
    result: Result, subs: list[Subscriber], last_seq: list[int], stats: Deliveries
) -> None:
    """Expected, delivered, lost, duplicated; reconnect and replay percentiles."""
    for sub in subs:
        top = last_seq[sub.channel_index]
        expected = set(range(top + 1))
        missing = expected - sub.seen
        excused: set[int] = set()
        for mark in sub.reloads:
            after = mark.after if mark.after is not None else top + 1
            excused.update(s for s in missing if mark.before < s < after)
        result.expected += len(expected)
        result.delivered += len(expected & sub.seen)
        result.lost += len(missing - excused)
        result.skipped_by_reload += len(excused)
        result.duplicated += sub.duplicates
        result.out_of_order += sub.out_of_order
        result.reloads += len(sub.reloads)
        result.unplanned_disconnects += sub.unplanned_disconnects
        if sub.channel is not None:
            result.sdk_duplicates_dropped += sub.channel.duplicates_dropped
    episodes = [ep for sub in subs for ep in sub.episodes]
    result.stuck_rejoins = sum(1 for ep in episodes if ep.stuck)
    joined = [ep for ep in episodes if ep.joined_ns]
    reconnect = [ep.joined_ns - ep.cut_ns for ep in joined]
    to_connected = [ep.connected_ns - ep.cut_ns for ep in joined if ep.connected_ns]
    join_rtt = [ep.joined_ns - ep.connected_ns for ep in joined if ep.connected_ns]
    replay = [
        ep.last_replay_ns - ep.connected_ns for ep in joined if ep.replayed and ep.connected_ns
    ]
    result.reconnect_p50_ms = _pct(reconnect, 0.50)
    result.reconnect_p99_ms = _pct(reconnect, 0.99)
    result.reconnect_max_ms = max(reconnect, default=0) / 1e6 if reconnect else math.nan
    stable_ns = int(STABLE_AFTER_S * 1e9)
    young = [ep.joined_ns - ep.cut_ns for ep in joined if ep.age_ns < stable_ns]
    old = [ep.joined_ns - ep.cut_ns for ep in joined if ep.age_ns >= stable_ns]
    result.cuts_of_young = len(young)
    result.reconnect_young_p50_ms = _pct(young, 0.50)
    result.reconnect_young_p99_ms = _pct(young, 0.99)
    result.reconnect_old_p50_ms = _pct(old, 0.50)
    result.reconnect_old_p99_ms = _pct(old, 0.99)
    result.to_connected_p50_ms = _pct(to_connected, 0.50)
    result.to_connected_p99_ms = _pct(to_connected, 0.99)
    result.join_rtt_p50_ms = _pct(join_rtt, 0.50)
    result.join_rtt_p99_ms = _pct(join_rtt, 0.99)
    result.rejoins_with_replay = len(replay)
    result.replayed_deliveries = len(stats.replayed_ns)
    result.replay_time_p50_ms = _pct(replay, 0.50)
    result.replay_time_p99_ms = _pct(replay, 0.99)
    result.replayed_age_p50_ms = _pct(stats.replayed_ns, 0.50)
    result.replayed_age_p99_ms = _pct(stats.replayed_ns, 0.99)
    live = sorted(stats.live_ns)
    result.live_p50_ms = percentile(live, 0.50)
    result.live_p95_ms = percentile(live, 0.95)
    result.live_p99_ms = percentile(live, 0.99)
    result.live_max_ms = live[-1] / 1e6 if live else math.nan


# -- reporting -------------------------------------------------------------------------------------


def describe(r: Result) -> str:
    lines = [
        f"== {r.label}: {r.subscribers} subscribers on {r.channels} channels, {r.rate:g} msg/s, "
        f"cut {r.cut_fraction:.0%} every {r.cut_period_s:g} s for {r.duration_s:g} s, "
        f"backoff base {r.backoff_base_s:g} s cap {r.backoff_cap_s:g} s",
        f"subscribers joined    {r.joined}/{r.subscribers} in {r.connect_s:.1f} s",
        f"messages published    {r.messages_published} in {r.publish_s:.1f} s; HTTP errors "
        f"{r.http_errors or 'none'}",
        f"cuts                  {r.cuts} (skipped {r.cuts_skipped}); rejoins never done "
        f"{r.stuck_rejoins}; disconnects not caused by a cut {r.unplanned_disconnects}",
        f"deliveries            expected {r.expected}  delivered {r.delivered}  LOST {r.lost}  "
        f"DUPLICATED {r.duplicated}  OUT OF ORDER {r.out_of_order}",
        f"reloads               {r.reloads} (deliveries skipped by them {r.skipped_by_reload}); "
        f"copies the SDK dropped as duplicates {r.sdk_duplicates_dropped}; drain {r.drain_s:.1f} s",
        f"reconnect ms          cut -> rejoined p50 {r.reconnect_p50_ms:.0f}  "
        f"p99 {r.reconnect_p99_ms:.0f}  max {r.reconnect_max_ms:.0f}   "
        f"(cut -> connected p50 {r.to_connected_p50_ms:.0f} p99 {r.to_connected_p99_ms:.0f}; "
        f"connected -> joined p50 {r.join_rtt_p50_ms:.1f} p99 {r.join_rtt_p99_ms:.1f})",
        f"  by connection age   >= {STABLE_AFTER_S:g} s: p50 {r.reconnect_old_p50_ms:.0f} "
        f"p99 {r.reconnect_old_p99_ms:.0f};  < {STABLE_AFTER_S:g} s ({r.cuts_of_young} cuts, "
        f"backoff not reset): p50 {r.reconnect_young_p50_ms:.0f} "
        f"p99 {r.reconnect_young_p99_ms:.0f}",
        f"recovery replay ms    connected -> last replayed delivered "
        f"p50 {r.replay_time_p50_ms:.2f}  "
        f"p99 {r.replay_time_p99_ms:.2f}  ({r.rejoins_with_replay} rejoins replayed "
        f"{r.replayed_deliveries} messages)",
        f"replayed message age  publish -> delivery p50 {r.replayed_age_p50_ms:.0f}  "
        f"p99 {r.replayed_age_p99_ms:.0f}",
        f"live latency ms       p50 {r.live_p50_ms:.1f}  p95 {r.live_p95_ms:.1f}  "
        f"p99 {r.live_p99_ms:.1f}  max {r.live_max_ms:.1f}",
        f"server                CPU {r.server_cpu_pct:.1f}%  RSS start "
        f"{r.server_rss_start_kb / 1024:.1f} MiB  peak {r.server_rss_peak_kb / 1024:.1f} MiB",
        f"generator             CPU {r.generator_cpu_pct:.1f}%  max loop lag "
        f"{r.generator_lag_max_ms:.0f} ms",
    ]
    if r.sdk_log:
        warnings = "; ".join(f"{k} x{v}" for k, v in r.sdk_log.items())
        lines.append(f"SDK warnings          {warnings}")
    return "\n".join(lines)


TABLE_HEADER = (
    "| run | published | expected | delivered | lost | dup | out of order | reloads | cuts | "
    "reconnect p50 / p99 ms | replay time p50 / p99 ms | replayed age p50 / p99 ms | "
    "live p50 / p95 / p99 ms | server CPU | server RSS peak |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(r: Result, name: str) -> str:
    return (
        f"| {name} | {r.messages_published:,} | {r.expected:,} | {r.delivered:,} | {r.lost} | "
        f"{r.duplicated} | {r.out_of_order} | {r.reloads} | {r.cuts:,} | "
        f"{r.reconnect_p50_ms:.0f} / {r.reconnect_p99_ms:.0f} | "
        f"{r.replay_time_p50_ms:.2f} / {r.replay_time_p99_ms:.2f} | "
        f"{r.replayed_age_p50_ms:.0f} / {r.replayed_age_p99_ms:.0f} | "
        f"{r.live_p50_ms:.1f} / {r.live_p95_ms:.1f} / {r.live_p99_ms:.1f} | "
        f"{r.server_cpu_pct:.1f}% | {r.server_rss_peak_kb / 1024:.1f} MiB |"
    )


def median_result(results: list[Result]) -> Result:
    """Field-wise median of the numeric fields; loss counts are maxima."""
    return field_medians(
        results, worst={"lost", "duplicated", "out_of_order", "stuck_rejoins", "reloads"}
    )


# -- CLI -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.recovery",
        description="Recovery benchmark: SDK subscribers cut while messages flow.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--subscribers", "-n", type=int, default=1000)
    p.add_argument("--channels", type=int, default=100, help="subscribers are spread round robin")
    p.add_argument("--rate", type=float, default=100.0, help="messages/s in total, all channels")
    p.add_argument("--cut-fraction", type=float, default=0.1, help="share of subscribers per cut")
    p.add_argument("--cut-period", type=float, default=5.0, help="seconds between cuts")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of publishing and cuts")
    p.add_argument("--backoff-base", type=float, default=1.0, help="SDK reconnect_base (s)")
    p.add_argument("--backoff-cap", type=float, default=30.0, help="SDK reconnect_cap (s)")
    p.add_argument("--drain", type=float, default=30.0, help="max seconds to wait at the end")
    p.add_argument(
        "--stuck-timeout", type=float, default=60.0, help="a rejoin slower than this is stuck"
    )
    p.add_argument("--vsn", choices=("1.0.0", "2.0.0"), default="1.0.0")
    p.add_argument("--payload-size", type=int, default=64, help="padding bytes per message")
    p.add_argument("--concurrency", type=int, default=100, help="connects in flight at start")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before publishing")
    p.add_argument("--seed", type=int, default=1, help="seed of the cut choice (+ run number)")
    p.add_argument("--repeat", type=int, default=1, help="runs (a fresh server each)")
    p.add_argument("--label", default="wedsync", help="name of the run in the output")
    p.add_argument(
        "--server-cmd",
        help="command starting the server, {port} substituted "
        "(default: .venv/bin/wedsync-realtime serve --host 127.0.0.1 --port {port})",
    )
    p.add_argument("--jwt-secret", help="the server's WEDSYNC_JWT_SECRET (default: a bench secret)")
    p.add_argument("--cpu-server", default="0", help="core(s) for the server (taskset), or none")
    p.add_argument("--cpu-client", default="1", help="core(s) for this generator, or none")
    p.add_argument("--server-log-level", default="WARNING")
    p.add_argument("--json-out", type=Path, help="append each result as a JSON line")
    p.set_defaults(peer_cmd=None)
    return p.parse_args(argv)


async def amain(opts: argparse.Namespace) -> int:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="recovery-") as tmp:
        for i in range(opts.repeat):
            print(f"\n-- run {i + 1}/{opts.repeat}", flush=True)
            r = await run_once(opts, Path(tmp), i)
            results.append(r)
            print(describe(r), flush=True)
            if opts.json_out:
                append_json(opts.json_out, {"run": i + 1, **dataclasses.asdict(r)})
    print("\n" + TABLE_HEADER)
    for i, r in enumerate(results):
        print(table_row(r, str(i + 1)))
    if len(results) > 1:
        print(table_row(median_result(results), f"median of {len(results)}"))
    failed = [i + 1 for i, r in enumerate(results) if r.failed]
    if failed:
        print(f"\nFAILED: runs {failed} lost, duplicated or reordered messages, or never rejoined")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_nofile()
    if opts.cpu_client != "none":
        os.sched_setaffinity(0, {int(c) for c in opts.cpu_client.split(",")})
    import uvloop

    return uvloop.run(amain(opts))


if __name__ == "__main__":
    sys.exit(main())
