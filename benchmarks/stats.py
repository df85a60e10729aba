"""Summaries shared by the benchmarks: the field-wise median of several runs' results."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

__all__ = ["field_medians"]

R = TypeVar("R")


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
