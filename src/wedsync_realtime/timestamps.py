"""The one text form of instants in what the server sends: ISO 8601, UTC, milliseconds, `Z`
(`2026-01-01T00:00:00.000Z`) — Supabase's `commit_timestamp` (`to_char(... 'MS')`) and the
WedSync event payloads alike; sortable as text and parsed by every JavaScript client."""

from __future__ import annotations

import datetime as dt

__all__ = ["iso_from_epoch", "iso_millis"]


def iso_millis(moment: dt.datetime) -> str:
    """`moment` in UTC to the millisecond (truncated); a naive datetime is taken as UTC."""
    utc = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_epoch(seconds: float) -> str:
    """Epoch seconds (wall clock) as `iso_millis` writes them."""
    return iso_millis(dt.datetime.fromtimestamp(seconds, dt.UTC))
