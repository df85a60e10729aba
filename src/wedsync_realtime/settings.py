"""Typed settings, read once from `WEDSYNC_*` environment variables.

Every default is documented where it is declared. A bad value raises `SettingsError` naming the
variable, so a misconfigured server fails at start-up instead of later.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DEV_JWT_SECRET", "HistoryRule", "Settings", "SettingsError", "TierLimits"]

PREFIX = "WEDSYNC_"

#: Used only in embedded mode when `WEDSYNC_JWT_SECRET` is unset, with a loud warning.
DEV_JWT_SECRET = "wedsync-development-secret-do-not-use-in-production"

T = TypeVar("T")

log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting with a bad value; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class TierLimits:
    """Limits of one subscription tier (the `tier` claim inside `app_metadata`)."""

    #: Channels one connection may have joined at once.
    max_channels: int
    #: Broadcasts one user may send per minute on one channel.
    messages_per_minute: int


@dataclass(frozen=True, slots=True)
class HistoryRule:
    """History kept for the channels whose name (without `realtime:`) matches `pattern`, a
    shell-style glob (`form:*`). `size` 0 turns history, recovery and idempotency off there."""

    pattern: str
    #: Messages kept per channel (the newest).
    size: int
    #: Seconds each message is kept.
    ttl_s: float


def _default_tiers() -> dict[str, TierLimits]:
    # SPEC.md "Channels": free tier 3 channels and 10 messages/min; paid tiers 10 and 100.
    paid = TierLimits(max_channels=10, messages_per_minute=100)
    return {
        "free": TierLimits(max_channels=3, messages_per_minute=10),
        "paid": paid,
        "starter": paid,
        "professional": paid,
        "scale": paid,
        "enterprise": paid,
    }


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server reads from its environment."""

    #: Interface and port `serve` binds (the CLI's --host/--port win).
    host: str = "127.0.0.1"
    port: int = 4000
    #: HS256 secret for JWTs. Unset in embedded mode: DEV_JWT_SECRET, with a warning.
    jwt_secret: str = DEV_JWT_SECRET
    #: True when `jwt_secret` is the development default.
    jwt_secret_is_default: bool = True
    #: Where the embedded default keeps its SQLite database; ``:memory:`` keeps it in memory
    #: (nothing on disk, gone at exit: tests and throwaway demos).
    data_dir: Path = Path("var")
    #: Load the WedSync demo wedding (idempotently) into the embedded store at start-up.
    demo: bool = False
    #: PostgreSQL URL for production mode; None means the embedded default.
    database_url: str | None = None
    #: Logical replication slot of Postgres Changes (durable: changes committed while the server
    #: is down are delivered when it is back; `wedsync-realtime cdc drop-slot` removes it).
    cdc_slot_name: str = "wedsync_realtime"
    #: Publication whose tables Postgres Changes captures (created by `wedsync-realtime migrate`).
    cdc_publication: str = "wedsync_realtime"
    #: The tables Postgres Changes is enabled for, as (schema, table) pairs; from a comma-separated
    #: `schema.table` list (a bare `table` is `public.table`). When set, the server makes the
    #: publication hold exactly these tables at start-up (creating it if missing). Empty (the
    #: default): the publication is left as it is, i.e. every WedSync table the migrations add
    #: (unless an earlier start with this setting changed it: the change is in the database).
    cdc_tables: tuple[tuple[str, str], ...] = ()
    #: Seconds without any frame (heartbeats included) before a socket is closed. Phoenix uses
    #: 60 s; ours is longer because phones heartbeat every 60 s (the SDK's `mobile` profile) and
    #: a socket must outlive one late heartbeat.
    idle_timeout_s: float = 90.0
    #: Largest WebSocket frame accepted; a bigger one closes the socket with 1009.
    max_frame_bytes: int = 1_048_576
    #: Largest broadcast or presence payload (SPEC.md: 64 KB); bigger ones are refused.
    max_payload_bytes: int = 65_536
    #: Frames queued for one connection before it counts as a slow consumer and is closed.
    send_queue_max: int = 1_024
    #: Joins one connection may make per second; more closes the socket (Supabase does too).
    joins_per_second: int = 10
    #: Presence track/untrack calls per minute per connection (after a burst of 10); Supabase
    #: allows 5 per 30 s, our clients debounce presence to one per 2 s (SPEC.md).
    presence_per_minute: int = 30
    #: Seconds without activity before a WedSync presence (a meta with a `status`) goes from
    #: online to idle (SPEC.md "Presence": 120 s) ...
    presence_idle_after_s: float = 120.0
    #: ... to away (600 s) ...
    presence_away_after_s: float = 600.0
    #: ... and to offline (3,600 s); busy skips idle and away. Counted from the last activity.
    presence_offline_after_s: float = 3_600.0
    #: Days a user's last-seen time is kept (SPEC.md: 7).
    last_seen_retention_days: float = 7.0
    #: The audit log of real-time access and events (`engine.audit`): the realtime_* tables of
    #: the embedded store or of PostgreSQL. Off: nothing is recorded.
    audit: bool = True
    #: Days audit rows are kept (ended subscriptions, presences, events, metrics); SPEC.md keeps
    #: activity logs 30 days.
    audit_retention_days: float = 30.0
    #: The cyclic garbage collector's thresholds for `serve` (`gc.set_threshold`), from
    #: ``a,b,c``, or ``default`` for CPython's (700, 10, 10). With thousands of connections a
    #: full collection walks every socket's objects and stops the loop for ~0.5 s (the p99 of
    #: benchmarks/core_fields.py); these make full passes rare (BENCHMARKS.md "Core Fields").
    gc_thresholds: tuple[int, int, int] | None = (100_000, 50, 1_000)
    #: Connections one user (JWT `sub`) may hold at once.
    max_connections_per_user: int = 10
    #: Channels one user may have joined across all their connections (SPEC.md: 50).
    max_channels_per_user: int = 50
    #: Channels per connection for the `service_role`.
    service_role_max_channels: int = 50
    #: Tier name → limits; unknown tiers get the `free` limits.
    tiers: Mapping[str, TierLimits] = field(default_factory=_default_tiers)
    #: Messages each channel keeps for replay and recovery (SPEC.md: the last 100) ...
    history_size: int = 100
    #: ... for this many seconds each (SPEC.md: 5 minutes).
    history_ttl_s: float = 300.0
    #: Per channel-name pattern overrides of the two above, first match wins; JSON
    #: `[{"pattern": "typing:*", "size": 0}, {"pattern": "form:*", "size": 500, "ttl_s": 900}]`.
    history_rules: tuple[HistoryRule, ...] = ()
    #: Seconds a published message id is remembered per channel, so that a retried publish
    #: with the same id is not delivered twice.
    idempotency_ttl_s: float = 300.0
    #: Messages a `config.broadcast.replay` join gets when it asks for no `limit` (Supabase: 25).
    replay_default_limit: int = 25
    #: Seconds a closing server waits for clients to receive their `phx_close` frames.
    shutdown_grace_s: float = 2.0
    #: Python logging level name.
    log_level: str = "INFO"

    def tier_limits(self, tier: str) -> TierLimits:
        return self.tiers.get(tier) or self.tiers["free"]

    def history_rule(self, channel: str) -> HistoryRule | None:
        """The history kept for `channel` (no `realtime:` prefix); None when it keeps none."""
        pattern, size, ttl = "*", self.history_size, self.history_ttl_s
        for rule in self.history_rules:
            if fnmatch.fnmatchcase(channel, rule.pattern):
                pattern = rule.pattern
                size = rule.size if rule.size >= 0 else size
                ttl = rule.ttl_s if rule.ttl_s > 0 else ttl
                break
        return HistoryRule(pattern, size, ttl) if size > 0 else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read settings from `env` (usually `os.environ`).

        Raises:
            SettingsError: a variable with a value that does not parse.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "jwt_secret_is_default":
                continue
            key = PREFIX + f.name.upper()
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(key, raw, _PARSERS[f.name])
        if "jwt_secret" in values:
            values["jwt_secret_is_default"] = False
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check relations between values.

        Raises:
            SettingsError: naming the offending variable.
        """
        for name in (
            "port",
            "max_frame_bytes",
            "max_payload_bytes",
            "send_queue_max",
            "joins_per_second",
            "presence_per_minute",
            "max_connections_per_user",
            "max_channels_per_user",
            "service_role_max_channels",
            "replay_default_limit",
        ):
            value = getattr(self, name)
            if value <= 0 and not (name == "port" and value == 0):
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive, got {value}")
        if self.idle_timeout_s <= 0:
            raise SettingsError(f"{PREFIX}IDLE_TIMEOUT_S must be positive")
        if self.history_size < 0:
            raise SettingsError(f"{PREFIX}HISTORY_SIZE must be >= 0, got {self.history_size}")
        for name in ("history_ttl_s", "idempotency_ttl_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        self._validate_presence()
        if "free" not in self.tiers:
            raise SettingsError(f"{PREFIX}TIERS must define the `free` tier")
        if self.log_level.upper() not in logging.getLevelNamesMapping():
            raise SettingsError(f"{PREFIX}LOG_LEVEL is not a logging level: {self.log_level!r}")
        if self.jwt_secret_is_default and self.database_url is not None:
            raise SettingsError(
                f"{PREFIX}JWT_SECRET must be set outside embedded mode "
                f"({PREFIX}DATABASE_URL is set)"
            )

    def _validate_presence(self) -> None:
        steps = ("presence_idle_after_s", "presence_away_after_s", "presence_offline_after_s")
        for name in (*steps, "last_seen_retention_days", "audit_retention_days"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        for lower, higher in itertools.pairwise(steps):
            if getattr(self, lower) >= getattr(self, higher):
                raise SettingsError(
                    f"{PREFIX}{higher.upper()} must be greater than {PREFIX}{lower.upper()}"
                )


def _parse(key: str, raw: str, parser: Callable[[str], T]) -> T:
    try:
        return parser(raw)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{key}: invalid value {raw!r}: {exc}") from None


def _parse_bool(raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_tiers(raw: str) -> dict[str, TierLimits]:
    """`{"free": {"max_channels": 3, "messages_per_minute": 10}, ...}`, merged over defaults."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of tier name → limits")
    tiers = _default_tiers()
    for name, limits in data.items():
        if not isinstance(limits, dict):
            raise ValueError(f"tier {name!r}: expected an object")
        missing = [k for k in ("max_channels", "messages_per_minute") if k not in limits]
        if missing:
            raise ValueError(f"tier {name!r}: missing {', '.join(missing)}")
        tiers[name] = TierLimits(
            max_channels=int(limits["max_channels"]),
            messages_per_minute=int(limits["messages_per_minute"]),
        )
    return tiers


def _parse_table_list(raw: str) -> tuple[tuple[str, str], ...]:
    """`core_field_values, public.forms` → `(("public", "core_field_values"), ("public",
    "forms"))`: names as the catalog spells them (no quoting, case kept), duplicates dropped."""
    if not raw.strip():
        return ()
    tables: list[tuple[str, str]] = []
    for item in raw.split(","):
        name = item.strip()
        parts = name.split(".")
        if len(parts) == 1:
            parts = ["public", *parts]
        if len(parts) != 2 or not all(parts) or any(p != p.strip() for p in parts):
            raise ValueError(f"expected `table` or `schema.table`, got {name!r}")
        table = (parts[0], parts[1])
        if table not in tables:
            tables.append(table)
    return tuple(tables)


def _parse_history_rules(raw: str) -> tuple[HistoryRule, ...]:
    """`[{"pattern": "form:*", "size": 500, "ttl_s": 900}, ...]`; `size`/`ttl_s` default to
    HISTORY_SIZE/HISTORY_TTL_S when left out (filled in by `Settings.history_rule`)."""
    data = json.loads(raw)
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of {pattern, size, ttl_s} objects")
    rules = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("pattern"), str):
            raise ValueError(f"rule {index}: expected an object with a string `pattern`")
        size = int(item.get("size", -1))
        ttl = float(item.get("ttl_s", -1))
        if size < -1 or (ttl <= 0 and ttl != -1):
            raise ValueError(f"rule {index}: `size` must be >= 0 and `ttl_s` positive")
        rules.append(HistoryRule(item["pattern"], size, ttl))
    return tuple(rules)


def _parse_gc_thresholds(text: str) -> tuple[int, int, int] | None:
    if text.strip().lower() == "default":
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError("expected three non-negative integers `a,b,c`, or `default`")
    first, second, third = (int(p) for p in parts)
    return (first, second, third)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "jwt_secret": str,
    "data_dir": Path,
    "demo": _parse_bool,
    "database_url": str,
    "cdc_slot_name": str,
    "cdc_publication": str,
    "cdc_tables": _parse_table_list,
    "idle_timeout_s": float,
    "max_frame_bytes": int,
    "max_payload_bytes": int,
    "send_queue_max": int,
    "joins_per_second": int,
    "presence_per_minute": int,
    "presence_idle_after_s": float,
    "presence_away_after_s": float,
    "presence_offline_after_s": float,
    "last_seen_retention_days": float,
    "audit": _parse_bool,
    "audit_retention_days": float,
    "gc_thresholds": _parse_gc_thresholds,
    "max_connections_per_user": int,
    "max_channels_per_user": int,
    "service_role_max_channels": int,
    "tiers": _parse_tiers,
    "history_size": int,
    "history_ttl_s": float,
    "history_rules": _parse_history_rules,
    "idempotency_ttl_s": float,
    "replay_default_limit": int,
    "shutdown_grace_s": float,
    "log_level": str,
}
