"""Token buckets and the keyed limiter, driven by a fake clock."""

from __future__ import annotations

import pytest

from wedsync_realtime.engine.limits import KeyedRateLimiter, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def take_all(bucket: TokenBucket) -> int:
    taken = 0
    while bucket.try_take():
        taken += 1
        assert taken < 10_000
    return taken


def test_bucket_starts_full(clock: FakeClock) -> None:
    bucket = TokenBucket(3, 1.0, clock)
    assert bucket.is_full()
    assert take_all(bucket) == 3
    assert not bucket.try_take()
    assert not bucket.is_full()


def test_bucket_refills_continuously(clock: FakeClock) -> None:
    # Binary fractions of a second keep the float arithmetic exact.
    bucket = TokenBucket(3, 2.0, clock)  # one token every 0.5 s
    take_all(bucket)
    clock.advance(0.375)
    assert not bucket.try_take()
    clock.advance(0.125)
    assert bucket.try_take()
    assert not bucket.try_take()
    # Partial refills add up across calls.
    clock.advance(0.25)
    assert not bucket.try_take()
    clock.advance(0.25)
    assert bucket.try_take()


def test_bucket_refill_is_capped_at_capacity(clock: FakeClock) -> None:
    bucket = TokenBucket(3, 1.0, clock)
    take_all(bucket)
    clock.advance(3600)
    assert bucket.is_full()
    assert take_all(bucket) == 3


def test_failed_takes_do_not_cost_tokens(clock: FakeClock) -> None:
    bucket = TokenBucket(1, 1.0, clock)
    assert bucket.try_take()
    for _ in range(10):
        assert not bucket.try_take()
    clock.advance(1.0)
    assert bucket.try_take()


def test_keyed_limiter_per_minute(clock: FakeClock) -> None:
    limiter = KeyedRateLimiter(clock)
    key = ("user-1", "realtime:room1")
    assert all(limiter.try_take(key, 10) for _ in range(10))
    assert not limiter.try_take(key, 10)
    clock.advance(5.9)  # 10 per minute: one every 6 s
    assert not limiter.try_take(key, 10)
    clock.advance(0.2)
    assert limiter.try_take(key, 10)
    assert not limiter.try_take(key, 10)


def test_keyed_limiter_keys_are_independent(clock: FakeClock) -> None:
    limiter = KeyedRateLimiter(clock)
    assert all(limiter.try_take(("u1", "a"), 2) for _ in range(2))
    assert not limiter.try_take(("u1", "a"), 2)
    # Same user, other channel; other user, same channel.
    assert limiter.try_take(("u1", "b"), 2)
    assert limiter.try_take(("u2", "a"), 2)
    assert len(limiter) == 3


def test_keyed_limiter_new_limit_gets_a_fresh_bucket(clock: FakeClock) -> None:
    # A user whose tier changed gets the new limit at once.
    limiter = KeyedRateLimiter(clock)
    assert all(limiter.try_take("k", 2) for _ in range(2))
    assert not limiter.try_take("k", 2)
    assert all(limiter.try_take("k", 100) for _ in range(100))
    assert not limiter.try_take("k", 100)


def test_prune_drops_only_refilled_buckets(clock: FakeClock) -> None:
    limiter = KeyedRateLimiter(clock)
    limiter.try_take("idle", 60)  # one token per second
    clock.advance(30)
    for _ in range(60):
        limiter.try_take("busy", 60)
    limiter.prune()
    assert len(limiter) == 1  # "idle" refilled in 1 s; "busy" is empty
    # The survivor kept its state: still empty.
    assert not limiter.try_take("busy", 60)
    clock.advance(60)
    limiter.prune()
    assert len(limiter) == 0


def test_pruned_key_behaves_like_a_new_one(clock: FakeClock) -> None:
    limiter = KeyedRateLimiter(clock)
    for _ in range(5):
        limiter.try_take("k", 5)
    clock.advance(60)
    limiter.prune()
    assert len(limiter) == 0
    assert all(limiter.try_take("k", 5) for _ in range(5))
    assert not limiter.try_take("k", 5)
