"""Reconnect backoff: exponential ceilings, capped, with full jitter."""

from __future__ import annotations

import random

import pytest

from wedsync_realtime.client import Backoff


def test_ceiling_doubles_then_stops_at_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    # No overflow for absurd attempt numbers: a client offline for days keeps counting.
    assert backoff.ceiling(10_000) == 30.0


def test_delays_stay_within_zero_and_the_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(7))
    for attempt in range(12):
        ceiling = backoff.ceiling(attempt)
        for _ in range(200):
            assert 0.0 <= backoff.delay(attempt) <= ceiling


def test_full_jitter_spreads_over_the_whole_window() -> None:
    """Full jitter, not "ceiling plus a little": a crowd of clients must spread from 0 to the
    ceiling, or they all come back together."""
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(1))
    delays = [backoff.delay(5) for _ in range(2000)]  # ceiling 30 s
    assert min(delays) < 1.5
    assert max(delays) > 28.5
    assert 12.0 < sum(delays) / len(delays) < 18.0  # uniform: mean near 15


def test_seeded_random_source_makes_delays_reproducible() -> None:
    first = [Backoff(rng=random.Random(3)).delay(n) for n in range(5)]
    second = [Backoff(rng=random.Random(3)).delay(n) for n in range(5)]
    assert first == second


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": -1}, {"cap": 0}, {"factor": 0.5}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(-1)
