"""The offline outbox: order, persistence across restarts, TTL, bound, observability."""

from __future__ import annotations

from pathlib import Path

import pytest

from wedsync_realtime.client import Outbox, OutboxFull


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_entries_come_back_in_send_order_not_write_order() -> None:
    outbox = Outbox()
    await outbox.open()
    try:
        first, second, third = outbox.reserve_seq(), outbox.reserve_seq(), outbox.reserve_seq()
        # The in-flight message (first) is written after a later one: it still goes first.
        await outbox.put(second, "room", "id-2", "msg", {"n": 2})
        await outbox.put(third, "room", "id-3", "msg", {"n": 3})
        await outbox.put(first, "room", "id-1", "msg", {"n": 1})
        entries = await outbox.peek("room")
        assert [e.message_id for e in entries] == ["id-1", "id-2", "id-3"]
        assert [e.payload for e in entries] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert await outbox.peek("room", limit=2) == entries[:2]
    finally:
        await outbox.close()


async def test_channels_are_kept_apart() -> None:
    outbox = Outbox()
    await outbox.open()
    try:
        await outbox.put(outbox.reserve_seq(), "a", "a1", "msg", {})
        await outbox.put(outbox.reserve_seq(), "b", "b1", "msg", {})
        await outbox.put(outbox.reserve_seq(), "a", "a2", "msg", {})
        assert [e.message_id for e in await outbox.peek("a")] == ["a1", "a2"]
        assert (outbox.count("a"), outbox.count("b"), outbox.size) == (2, 1, 3)
    finally:
        await outbox.close()


async def test_a_file_outbox_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    await outbox.open()
    for n in range(3):
        await outbox.put(outbox.reserve_seq(), "room", f"id-{n}", "msg", {"n": n})
    await outbox.close()

    reopened = Outbox(path)
    await reopened.open()
    try:
        assert reopened.size == 3
        entries = await reopened.peek("room")
        assert [e.message_id for e in entries] == ["id-0", "id-1", "id-2"]
        # New sends are ordered after the survivors.
        assert reopened.reserve_seq() > entries[-1].seq
        await reopened.remove(entries[0])
    finally:
        await reopened.close()

    again = Outbox(path)
    await again.open()
    try:
        assert [e.message_id for e in await again.peek("room")] == ["id-1", "id-2"]
    finally:
        await again.close()


async def test_entries_older_than_the_ttl_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = FakeClock()
    sizes: list[int] = []
    outbox = Outbox(tmp_path / "o.sqlite", ttl=300.0, clock=clock)
    await outbox.open()
    outbox.on_change(sizes.append)
    try:
        await outbox.put(outbox.reserve_seq(), "room", "old", "msg", {})
        clock.now += 200
        await outbox.put(outbox.reserve_seq(), "room", "new", "msg", {})
        clock.now += 100  # "old" is exactly 300 s old now
        assert [e.message_id for e in await outbox.peek("room")] == ["new"]
        assert (outbox.expired, outbox.size) == (1, 1)
        assert sizes == [1, 2, 1]
    finally:
        await outbox.close()
    # Expiry also applies to what a restart finds.
    clock.now += 1000
    reopened = Outbox(tmp_path / "o.sqlite", ttl=300.0, clock=clock)
    await reopened.open()
    try:
        assert (reopened.size, reopened.expired) == (0, 1)
    finally:
        await reopened.close()


async def test_a_full_outbox_refuses_with_a_clear_error() -> None:
    outbox = Outbox(max_size=2)
    await outbox.open()
    try:
        await outbox.put(outbox.reserve_seq(), "room", "1", "msg", {})
        await outbox.put(outbox.reserve_seq(), "other", "2", "msg", {})
        with pytest.raises(OutboxFull, match="2 messages waiting"):
            await outbox.put(outbox.reserve_seq(), "room", "3", "msg", {})
        assert outbox.size == 2
        (entry,) = await outbox.peek("room")
        await outbox.remove(entry)
        await outbox.put(outbox.reserve_seq(), "room", "3", "msg", {})
        assert outbox.size == 2
    finally:
        await outbox.close()


async def test_size_listeners_see_every_change_and_can_be_removed() -> None:
    outbox = Outbox()
    await outbox.open()
    seen: list[int] = []
    remove = outbox.on_change(seen.append)
    try:
        entry = await outbox.put(outbox.reserve_seq(), "room", "1", "msg", {})
        await outbox.put(outbox.reserve_seq(), "room", "2", "msg", {})
        await outbox.remove(entry)
        await outbox.remove(entry)  # already gone: no change, no call
        remove()
        await outbox.put(outbox.reserve_seq(), "room", "3", "msg", {})
        assert seen == [1, 2, 1]
    finally:
        await outbox.close()


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Outbox(max_size=0)
