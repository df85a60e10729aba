"""Rate limits: token buckets, keyed and pruned so that idle keys cost no memory."""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ["KeyedRateLimiter", "TokenBucket"]


class TokenBucket:
    """`capacity` tokens, refilled continuously at `per_second`; one token per action."""

    __slots__ = ("_clock", "_stamp", "_tokens", "capacity", "per_second")

    def __init__(self, capacity: float, per_second: float, clock: Callable[[], float]) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.per_second)
        self._stamp = now
        return self._tokens

    def try_take(self) -> bool:
        """Take a token if there is one."""
        if self._refill() >= 1:
            self._tokens -= 1
            return True
        return False

    def is_full(self) -> bool:
        return self._refill() >= self.capacity


class KeyedRateLimiter:
    """One token bucket per key, e.g. (user, channel); full buckets are dropped by `prune`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}

    def try_take(self, key: Hashable, per_minute: int) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != per_minute:
            bucket = TokenBucket(per_minute, per_minute / 60.0, self._clock)
            self._buckets[key] = bucket
        return bucket.try_take()

    def prune(self) -> None:
        """Forget keys whose bucket refilled: they behave exactly like new ones."""
        for key in [k for k, b in self._buckets.items() if b.is_full()]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
