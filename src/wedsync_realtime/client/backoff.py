"""Reconnect delays: exponential backoff with full jitter.

Full jitter (a uniform delay between 0 and the exponential ceiling, as in the AWS architecture
blog "Exponential Backoff And Jitter") spreads a crowd of clients that lost the same server over
the whole window, so a restarted node is not hit by every client at the same instant (the
"reconnect storm" of reference notes §7; Phoenix's fixed schedule has no jitter, phoenix#4045).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays for consecutive failed attempts: attempt `n` (from 0) waits a uniform random time
    in `[0, min(cap, base * factor**n)]` seconds."""

    base: float = 1.0
    cap: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0 or self.factor < 1:
            raise ValueError("backoff needs base > 0, cap > 0 and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt `attempt` may wait."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # Stop multiplying once past the cap: factor**attempt would overflow for huge attempts.
        ceiling = self.base
        for _ in range(attempt):
            ceiling *= self.factor
            if ceiling >= self.cap:
                return self.cap
        return min(ceiling, self.cap)

    def delay(self, attempt: int) -> float:
        """A random delay for attempt `attempt` (0 for the first retry)."""
        return self.rng.uniform(0.0, self.ceiling(attempt))
