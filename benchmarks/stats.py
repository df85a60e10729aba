"""Summaries shared by the benchmarks: latency percentiles, and the field-wise median of several
runs' results."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

__all__ = ["field_medians", "nearest_rank", "percentile"]

R = TypeVar("R")

# The two quantile definitions below differ (index int(q*n) vs. ceil(q*n)-1); each benchmark keeps
# the one it has always used, so its published figures stay comparable.


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """The q-quantile of sorted nanoseconds, in ms, at index int(q*n) (clamped to the last)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1e6


def nearest_rank(sorted_ns: Sequence[int], q: float) -> float:
    """The q-quantile of sorted nanoseconds, in ms (nearest rank: index ceil(q*n)-1)."""
    if not sorted_ns:
        return math.nan
    index = min(len(sorted_ns) - 1, max(0, math.ceil(q * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e6


def field_medians(results: Sequence[R], worst: Collection[str] = ()) -> R:
    """A copy of the first result whose numeric fields are the medians over `results`; fields
    named in `worst` (loss counts, say) take the maximum instead, so one bad run shows."""
    base: Any = dataclasses.replace(results[0])  # type: ignore[type-var]
    for f in dataclasses.fields(base):
        values = [getattr(r, f.name) for r in results]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            continue
        value = max(values) if f.name in worst else statistics.median(values)
        setattr(base, f.name, round(value) if isinstance(values[0], int) else value)
    result: R = base
    return result
