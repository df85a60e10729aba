"""The `HistoryStore` contract (backends/base.py): every implementation passes this one suite.

`history_factory(**settings)` returns a fresh store whose TTLs run on the test's `FakeClock`
(`clock.advance(seconds)` moves both its monotonic and its wall time), so expiry is tested
without sleeping. To add a backend, add it to `BACKENDS`: a context manager that, given the fake
clock, yields a function building a store from the settings `idempotency_ttl` and `meta_ttl`
(skipping when its service is not available, failing instead when `CI` is set). A Redis store
keeps this suite deterministic by taking "now" from the injected clock (passed into its scripts)
and keeping deadlines itself rather than relying on Redis key expiry alone.

What the engine relies on, and so what is asserted here:
* offsets are 1, 2, 3, ... within a stream, whose epoch is stable, and new (with offsets from 1)
  once the stream was removed or expired;
* a read since a position returns exactly the later entries, in order, or says the position is
  not recoverable (other epoch, trimmed or expired gap, ahead of the top) and returns nothing;
* reads since a time, `limit`, `max_size` trimming and `ttl` expiry behave as documented;
* appends are idempotent per channel within `idempotency_ttl`;
* channels are independent; `close` may be called twice, and the store is unusable after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wedsync_realtime.backends.base import HistoryStore, StreamPosition
from wedsync_realtime.backends.memory import MemoryHistory

CHANNEL = "realtime:wedding-42"
SIZE = 100
TTL = 60.0


class FakeClock:
    """A monotonic clock and a wall clock that only move when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.wall = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


class NewHistory(Protocol):
    def __call__(
        self, *, idempotency_ttl: float = ..., meta_ttl: float = ...
    ) -> Awaitable[HistoryStore]: ...


Backend = Callable[[FakeClock], contextlib.AbstractAsyncContextManager[NewHistory]]


@contextlib.asynccontextmanager
async def memory_backend(clock: FakeClock) -> AsyncIterator[NewHistory]:
    async def new_history(
        *, idempotency_ttl: float = 300.0, meta_ttl: float = 3_600.0
    ) -> HistoryStore:
        return MemoryHistory(
            idempotency_ttl=idempotency_ttl,
            meta_ttl=meta_ttl,
            clock=clock.monotonic,
            wall_clock=clock.time,
        )

    yield new_history


#: Backend name → stores sharing one medium, on the given clock. Add Redis here.
BACKENDS: dict[str, Backend] = {"memory": memory_backend}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS))
async def history_factory(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[NewHistory]:
    stores: list[HistoryStore] = []
    async with BACKENDS[request.param](clock) as new_history:

        async def factory(
            *, idempotency_ttl: float = 300.0, meta_ttl: float = 3_600.0
        ) -> HistoryStore:
            store = await new_history(idempotency_ttl=idempotency_ttl, meta_ttl=meta_ttl)
            stores.append(store)
            return store

        try:
            yield factory
        finally:
            for store in stores:
                await store.close()


_ids = iter(range(1, 1_000_000))


async def add(
    store: HistoryStore,
    channel: str = CHANNEL,
    *,
    message_id: str | None = None,
    max_size: int = SIZE,
    ttl: float = TTL,
    **body: Any,
) -> StreamPosition:
    """Append a fresh message (unless `message_id` is given) and return its position."""
    result = await store.append(
        channel,
        body,
        message_id=message_id if message_id is not None else f"m-{next(_ids)}",
        max_size=max_size,
        ttl=ttl,
    )
    assert not result.duplicate
    return result.position


async def offsets(store: HistoryStore, channel: str = CHANNEL, **kwargs: Any) -> list[int]:
    return [entry.offset for entry in (await store.read(channel, **kwargs)).entries]


# Offsets and epochs


async def test_offsets_start_at_one_and_grow_by_one(history_factory: NewHistory) -> None:
    store = await history_factory()
    positions = [await add(store, n=n) for n in range(5)]
    assert [p.offset for p in positions] == [1, 2, 3, 4, 5]
    assert len({p.epoch for p in positions}) == 1
    assert positions[0].epoch
    assert await store.position(CHANNEL) == positions[-1]


async def test_an_empty_channel_has_an_epoch_that_the_first_append_keeps(
    history_factory: NewHistory,
) -> None:
    store = await history_factory()
    before = await store.position(CHANNEL)
    assert before.offset == 0
    assert await store.position(CHANNEL) == before
    first = await add(store, n=1)
    assert first == StreamPosition(1, before.epoch)
    read = await store.read(CHANNEL, since=before)
    assert read.recoverable
    assert [e.offset for e in read.entries] == [1]


async def test_removal_starts_a_new_epoch(history_factory: NewHistory) -> None:
    store = await history_factory()
    await add(store)
    old = await add(store)
    await store.remove(CHANNEL)
    await store.remove(CHANNEL)  # twice, and of a channel without a stream, is harmless
    await store.remove("realtime:never")
    new = await add(store)
    assert new.offset == 1
    assert new.epoch != old.epoch
    read = await store.read(CHANNEL, since=old)
    assert not read.recoverable
    assert read.entries == []
    assert read.top == new


# Reading


async def test_read_since_a_position_returns_exactly_the_later_entries(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory()
    positions = []
    for n in range(6):
        positions.append(await add(store, message_id=f"id-{n}", n=n, raw=b"\x00\xff"))
        clock.advance(1)
    read = await store.read(CHANNEL, since=positions[2])
    assert read.recoverable
    assert read.top == positions[-1]
    assert [e.offset for e in read.entries] == [4, 5, 6]
    assert [e.id for e in read.entries] == ["id-3", "id-4", "id-5"]
    assert [e.body for e in read.entries] == [{"n": n, "raw": b"\x00\xff"} for n in (3, 4, 5)]
    times = [e.time_ms for e in read.entries]
    assert times == [1_700_000_003_000, 1_700_000_004_000, 1_700_000_005_000]


async def test_read_since_the_top_is_recoverable_and_empty(history_factory: NewHistory) -> None:
    store = await history_factory()
    top = await add(store)
    read = await store.read(CHANNEL, since=top)
    assert read.recoverable
    assert read.entries == []
    assert read.top == top


async def test_read_since_another_epoch_or_ahead_of_the_top_is_unrecoverable(
    history_factory: NewHistory,
) -> None:
    store = await history_factory()
    top = await add(store)
    await add(store)
    for since in (StreamPosition(1, "not-" + top.epoch), StreamPosition(3, top.epoch)):
        read = await store.read(CHANNEL, since=since)
        assert not read.recoverable
        assert read.entries == []
        assert read.top.offset == 2


async def test_read_without_a_position_returns_everything_retained(
    history_factory: NewHistory,
) -> None:
    store = await history_factory()
    for n in range(3):
        await add(store, n=n)
    read = await store.read(CHANNEL)
    assert read.recoverable
    assert [e.body for e in read.entries] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_read_since_a_time(history_factory: NewHistory, clock: FakeClock) -> None:
    store = await history_factory()
    start_ms = int(clock.wall * 1000)
    for n in range(5):
        await add(store, n=n)
        clock.advance(10)
    read = await store.read(CHANNEL, since_ms=start_ms + 20_000)
    assert read.recoverable
    assert [e.body["n"] for e in read.entries] == [2, 3, 4]
    assert all(e.time_ms >= start_ms + 20_000 for e in read.entries)
    assert (await store.read(CHANNEL, since_ms=start_ms + 45_000)).entries == []
    # The stream began at start_ms: what came before it is not known to be complete.
    before = await store.read(CHANNEL, since_ms=start_ms - 1)
    assert not before.recoverable
    assert [e.body["n"] for e in before.entries] == [0, 1, 2, 3, 4]


async def test_time_never_goes_back_within_a_stream(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory()
    await add(store)
    clock.wall -= 5  # the wall clock is stepped back; the monotonic one is not
    await add(store)
    first, second = (await store.read(CHANNEL)).entries
    assert second.time_ms >= first.time_ms


async def test_limit(history_factory: NewHistory) -> None:
    store = await history_factory()
    for n in range(10):
        await add(store, n=n)
    assert await offsets(store, limit=3) == [1, 2, 3]
    first_page = await store.read(
        CHANNEL, since=StreamPosition(2, (await store.position(CHANNEL)).epoch), limit=4
    )
    assert first_page.recoverable
    assert [e.offset for e in first_page.entries] == [3, 4, 5, 6]
    next_page = await store.read(
        CHANNEL, since=StreamPosition(first_page.entries[-1].offset, first_page.top.epoch), limit=4
    )
    assert [e.offset for e in next_page.entries] == [7, 8, 9, 10]
    just_top = await store.read(CHANNEL, limit=0)
    assert just_top.entries == []
    assert just_top.top.offset == 10
    assert await offsets(store, since_ms=0, limit=2) == [1, 2]


async def test_bad_arguments_raise_value_error(history_factory: NewHistory) -> None:
    store = await history_factory()
    top = await add(store)
    with pytest.raises(ValueError):
        await store.read(CHANNEL, since=top, since_ms=0)
    with pytest.raises(ValueError):
        await store.read(CHANNEL, limit=-1)
    with pytest.raises(ValueError):
        await store.append(CHANNEL, {}, message_id="x", max_size=0, ttl=TTL)
    with pytest.raises(ValueError):
        await store.append(CHANNEL, {}, message_id="y", max_size=SIZE, ttl=0)
    assert await store.position(CHANNEL) == top


# Trimming and expiry


async def test_max_size_trims_the_oldest(history_factory: NewHistory, clock: FakeClock) -> None:
    store = await history_factory()
    positions = []
    for n in range(8):
        positions.append(await add(store, max_size=5, n=n))
        clock.advance(1)
    assert await offsets(store) == [4, 5, 6, 7, 8]
    assert not (await store.read(CHANNEL)).recoverable  # entries 1-3 are gone
    # Just before the oldest retained entry is still complete; further back is a gap.
    recent = await store.read(CHANNEL, since=positions[2])
    assert recent.recoverable
    assert [e.offset for e in recent.entries] == [4, 5, 6, 7, 8]
    old = await store.read(CHANNEL, since=positions[1])
    assert not old.recoverable
    assert old.entries == []
    assert old.top == positions[-1]
    # Since a time: complete only after the newest trimmed entry (appended at +2 s).
    start_ms = 1_700_000_000_000
    assert (await store.read(CHANNEL, since_ms=start_ms + 3_000)).recoverable
    assert not (await store.read(CHANNEL, since_ms=start_ms + 2_000)).recoverable


async def test_entries_expire_after_their_ttl(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory(meta_ttl=3_600.0)
    first = await add(store, ttl=10)
    clock.advance(5)
    second = await add(store, ttl=10)
    clock.advance(4.5)
    assert await offsets(store) == [1, 2]
    clock.advance(0.5)  # the first entry is 10 s old
    assert await offsets(store) == [2]
    assert not (await store.read(CHANNEL, since=StreamPosition(0, first.epoch))).recoverable
    assert (await store.read(CHANNEL, since=first)).recoverable
    clock.advance(5)  # both gone; the stream (meta_ttl) lives on
    read = await store.read(CHANNEL, since=first)
    assert not read.recoverable
    assert read.top == second
    at_top = await store.read(CHANNEL, since=second)
    assert at_top.recoverable
    assert at_top.entries == []
    assert await add(store) == StreamPosition(3, first.epoch)


async def test_a_newer_entry_expiring_drops_the_older_ones(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory()
    await add(store, ttl=60)
    await add(store, ttl=5)
    await add(store, ttl=60)
    clock.advance(5)
    assert await offsets(store) == [3]


async def test_the_stream_expires_with_its_newest_entry_when_meta_ttl_is_zero(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory(meta_ttl=0)
    await add(store, ttl=10)
    clock.advance(8)
    old = await add(store, ttl=10)  # keeps the stream alive past the first entry's end
    clock.advance(8)
    assert await store.position(CHANNEL) == old
    clock.advance(2)
    assert await store.position(CHANNEL) == StreamPosition(0, "")
    read = await store.read(CHANNEL, since=old)
    assert not read.recoverable
    assert read.entries == []
    new = await add(store, ttl=10)
    assert new.offset == 1
    assert new.epoch not in (old.epoch, "")


async def test_the_stream_expires_meta_ttl_after_its_last_append(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory(meta_ttl=100)
    old = await add(store, ttl=10)
    clock.advance(99)
    assert await store.position(CHANNEL) == old
    clock.advance(1)
    new = await add(store, ttl=10)
    assert new.offset == 1
    assert new.epoch != old.epoch
    assert not (await store.read(CHANNEL, since=old)).recoverable


async def test_an_empty_stream_expires_meta_ttl_after_it_was_started(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory(meta_ttl=100)
    empty = await store.position(CHANNEL)
    clock.advance(100)
    first = await add(store)
    assert first.offset == 1
    assert first.epoch != empty.epoch


# Idempotency


async def test_a_repeated_message_id_is_not_appended_again(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory(idempotency_ttl=300)
    original = await add(store, message_id="retry-me", n=1)
    clock.advance(250)
    await add(store, n=2)
    clock.advance(49)
    again = await store.append(CHANNEL, {"n": 3}, message_id="retry-me", max_size=SIZE, ttl=TTL)
    assert again.duplicate
    assert again.position == original
    read = await store.read(CHANNEL)
    assert [e.body for e in read.entries] == [{"n": 2}]  # the original has expired meanwhile
    assert read.top.offset == 2


async def test_a_message_id_is_forgotten_after_the_idempotency_ttl(
    history_factory: NewHistory, clock: FakeClock
) -> None:
    store = await history_factory(idempotency_ttl=30)
    await add(store, message_id="once", n=1)
    clock.advance(29)
    assert (
        await store.append(CHANNEL, {"n": 2}, message_id="once", max_size=SIZE, ttl=TTL)
    ).duplicate
    clock.advance(1)  # 30 s after the first append; the duplicate did not extend the window
    later = await store.append(CHANNEL, {"n": 3}, message_id="once", max_size=SIZE, ttl=TTL)
    assert not later.duplicate
    assert later.position.offset == 2
    assert [e.body for e in (await store.read(CHANNEL)).entries] == [{"n": 1}, {"n": 3}]


async def test_message_ids_outlive_removal_of_the_stream(history_factory: NewHistory) -> None:
    store = await history_factory()
    original = await add(store, message_id="sent")
    await store.remove(CHANNEL)
    again = await store.append(CHANNEL, {}, message_id="sent", max_size=SIZE, ttl=TTL)
    assert again.duplicate
    assert again.position == original


# Independence and lifecycle


async def test_channels_are_independent(history_factory: NewHistory) -> None:
    store = await history_factory()
    a1 = await add(store, "realtime:a", message_id="same", n=1)
    b1 = await add(store, "realtime:b", message_id="same", n=2)  # not a duplicate elsewhere
    a2 = await add(store, "realtime:a", n=3)
    assert (a1.offset, a2.offset, b1.offset) == (1, 2, 1)
    assert a1.epoch != b1.epoch
    await store.remove("realtime:a")
    assert await store.position("realtime:b") == b1
    assert [e.body for e in (await store.read("realtime:b")).entries] == [{"n": 2}]
    assert not (await store.read("realtime:b", since=StreamPosition(0, a1.epoch))).recoverable


async def test_close(history_factory: NewHistory) -> None:
    store = await history_factory()
    await add(store)
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.append(CHANNEL, {}, message_id="late", max_size=SIZE, ttl=TTL)
    with pytest.raises(RuntimeError):
        await store.read(CHANNEL)


# MemoryHistory only


async def test_memory_prune_drops_everything_expired(clock: FakeClock) -> None:
    store = MemoryHistory(
        idempotency_ttl=30, meta_ttl=0, clock=clock.monotonic, wall_clock=clock.time
    )
    for n in range(50):
        await store.append(f"realtime:c{n}", {"n": n}, message_id=f"id-{n}", max_size=5, ttl=10)
    long_lived = await store.append("realtime:keep", {}, message_id="k", max_size=5, ttl=1_000)
    clock.advance(30)
    store.prune()
    # Internal state checked directly: what prune must leave behind is the point of the test.
    assert list(store._streams) == ["realtime:keep"]
    assert list(store._ids) == []
    assert await store.position("realtime:keep") == long_lived.position


# Invariants under random use


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=4),  # max_size
            st.sampled_from([5.0, 10.0, 30.0]),  # ttl
            st.sampled_from([0.0, 1.0, 4.0, 12.0]),  # time passing before the append
            st.integers(min_value=0, max_value=5),  # message id, from a small pool
        ),
        max_size=25,
    ),
    backend=st.sampled_from(sorted(BACKENDS)),
)
def test_reads_are_all_or_nothing_and_dense(
    steps: list[tuple[int, float, float, int]], backend: str
) -> None:
    """Whatever happens, a read since any position handed out is either the exact run of later
    offsets up to the top, or unrecoverable and empty; retained entries are a dense run ending
    at the top, no longer than the last max_size."""

    async def run() -> None:
        clock = FakeClock()
        async with BACKENDS[backend](clock) as new_history:
            store = await new_history(idempotency_ttl=20.0, meta_ttl=15.0)
            seen: list[StreamPosition] = [await store.position(CHANNEL)]
            try:
                for max_size, ttl, pause, message in steps:
                    clock.advance(pause)
                    result = await store.append(
                        CHANNEL, {}, message_id=f"m{message}", max_size=max_size, ttl=ttl
                    )
                    seen.append(result.position)
                    read = await store.read(CHANNEL)
                    got = [e.offset for e in read.entries]
                    assert got == list(range(read.top.offset - len(got) + 1, read.top.offset + 1))
                    if not result.duplicate:  # a duplicate changes nothing, trims nothing
                        assert len(got) <= max_size
                    for since in seen:
                        part = await store.read(CHANNEL, since=since)
                        if part.recoverable:
                            assert since.epoch == part.top.epoch
                            expected = range(since.offset + 1, part.top.offset + 1)
                            assert [e.offset for e in part.entries] == list(expected)
                        else:
                            assert part.entries == []
                        first = got[0] if got else read.top.offset + 1
                        in_reach = first - 1 <= since.offset <= read.top.offset
                        assert part.recoverable == (since.epoch == read.top.epoch and in_reach)
            finally:
                await store.close()

    asyncio.run(run())
