"""Settings from `WEDSYNC_*` variables: typed, defaulted, and failing with the variable's name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from wedsync_realtime.settings import (
    DEV_JWT_SECRET,
    HistoryRule,
    Settings,
    SettingsError,
    TierLimits,
)

FREE = TierLimits(max_channels=3, messages_per_minute=10)
PAID = TierLimits(max_channels=10, messages_per_minute=100)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 4000)
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert settings.jwt_secret_is_default is True
    assert settings.database_url is None
    assert settings.data_dir == Path("var")
    # Longer than Phoenix's 60 s, so that a phone heartbeating every 60 s is not cut off.
    assert settings.idle_timeout_s == 90.0
    assert settings.max_payload_bytes == 65_536
    assert settings.tier_limits("free") == FREE
    for tier in ("paid", "starter", "professional", "scale", "enterprise"):
        assert settings.tier_limits(tier) == PAID


def test_unrelated_and_empty_variables_are_ignored() -> None:
    env = {"PORT": "1", "WEDSYNC_PORT": "", "WEDSYNC_UNKNOWN": "x", "WEDSYNC_JWT_SECRET": ""}
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "expected"),
    [
        ("WEDSYNC_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("WEDSYNC_PORT", "8080", "port", 8080),
        ("WEDSYNC_PORT", "0", "port", 0),  # a free port, as tests use
        ("WEDSYNC_JWT_SECRET", "s3cret", "jwt_secret", "s3cret"),
        ("WEDSYNC_DATA_DIR", "/tmp/wedsync", "data_dir", Path("/tmp/wedsync")),
        ("WEDSYNC_IDLE_TIMEOUT_S", "12.5", "idle_timeout_s", 12.5),
        ("WEDSYNC_MAX_FRAME_BYTES", "2048", "max_frame_bytes", 2048),
        ("WEDSYNC_MAX_PAYLOAD_BYTES", "1024", "max_payload_bytes", 1024),
        ("WEDSYNC_SEND_QUEUE_MAX", "16", "send_queue_max", 16),
        ("WEDSYNC_JOINS_PER_SECOND", "3", "joins_per_second", 3),
        ("WEDSYNC_MAX_CONNECTIONS_PER_USER", "2", "max_connections_per_user", 2),
        ("WEDSYNC_MAX_CHANNELS_PER_USER", "7", "max_channels_per_user", 7),
        ("WEDSYNC_SERVICE_ROLE_MAX_CHANNELS", "500", "service_role_max_channels", 500),
        ("WEDSYNC_SHUTDOWN_GRACE_S", "0.5", "shutdown_grace_s", 0.5),
        ("WEDSYNC_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
        ("WEDSYNC_LOG_LEVEL", "warning", "log_level", "warning"),
    ],
)
def test_each_variable_is_parsed(variable: str, raw: str, attribute: str, expected: Any) -> None:
    settings = Settings.from_env({variable: raw})
    assert getattr(settings, attribute) == expected
    # Nothing else moved.
    defaults = dataclasses.asdict(Settings())
    actual = dataclasses.asdict(settings)
    changed = {k for k in defaults if defaults[k] != actual[k]}
    assert changed <= {attribute, "jwt_secret_is_default"}


def test_database_url_with_a_secret() -> None:
    settings = Settings.from_env(
        {"WEDSYNC_DATABASE_URL": "postgresql://db/wedsync", "WEDSYNC_JWT_SECRET": "s3cret"}
    )
    assert settings.database_url == "postgresql://db/wedsync"
    assert settings.jwt_secret_is_default is False


def test_setting_the_secret_clears_the_default_flag() -> None:
    assert Settings.from_env({"WEDSYNC_JWT_SECRET": "x"}).jwt_secret_is_default is False
    # Even a secret equal to the development one was chosen on purpose.
    assert Settings.from_env({"WEDSYNC_JWT_SECRET": DEV_JWT_SECRET}).jwt_secret_is_default is False


def test_default_flag_cannot_be_set_from_the_environment() -> None:
    settings = Settings.from_env({"WEDSYNC_JWT_SECRET_IS_DEFAULT": "false"})
    assert settings.jwt_secret_is_default is True


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("WEDSYNC_PORT", "abc"),
        ("WEDSYNC_PORT", "40.5"),
        ("WEDSYNC_IDLE_TIMEOUT_S", "soon"),
        ("WEDSYNC_MAX_FRAME_BYTES", "1MB"),
        ("WEDSYNC_SEND_QUEUE_MAX", "many"),
        ("WEDSYNC_SHUTDOWN_GRACE_S", "2s"),
        ("WEDSYNC_TIERS", "not json"),
    ],
)
def test_unparsable_value_names_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=variable) as info:
        Settings.from_env({variable: raw})
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    "variable",
    [
        "WEDSYNC_PORT",
        "WEDSYNC_MAX_FRAME_BYTES",
        "WEDSYNC_MAX_PAYLOAD_BYTES",
        "WEDSYNC_SEND_QUEUE_MAX",
        "WEDSYNC_JOINS_PER_SECOND",
        "WEDSYNC_MAX_CONNECTIONS_PER_USER",
        "WEDSYNC_MAX_CHANNELS_PER_USER",
        "WEDSYNC_SERVICE_ROLE_MAX_CHANNELS",
    ],
)
def test_counts_must_be_positive(variable: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable} must be positive"):
        Settings.from_env({variable: "-1"})
    if variable != "WEDSYNC_PORT":
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({variable: "0"})


@pytest.mark.parametrize("raw", ["0", "-5"])
def test_idle_timeout_must_be_positive(raw: str) -> None:
    with pytest.raises(SettingsError, match="WEDSYNC_IDLE_TIMEOUT_S"):
        Settings.from_env({"WEDSYNC_IDLE_TIMEOUT_S": raw})


def test_log_level_must_be_a_logging_level() -> None:
    with pytest.raises(SettingsError, match="WEDSYNC_LOG_LEVEL"):
        Settings.from_env({"WEDSYNC_LOG_LEVEL": "LOUD"})


def test_database_url_needs_a_real_secret() -> None:
    with pytest.raises(SettingsError, match="WEDSYNC_JWT_SECRET must be set"):
        Settings.from_env({"WEDSYNC_DATABASE_URL": "postgresql://db/wedsync"})


# -- tiers -------------------------------------------------------------------------------------


def tiers_env(value: Any) -> dict[str, str]:
    return {"WEDSYNC_TIERS": json.dumps(value)}


def test_tiers_merge_over_the_defaults() -> None:
    settings = Settings.from_env(
        tiers_env({"gold": {"max_channels": 20, "messages_per_minute": 500}})
    )
    assert settings.tier_limits("gold") == TierLimits(20, 500)
    assert settings.tier_limits("free") == FREE
    assert settings.tier_limits("paid") == PAID


def test_tiers_can_override_a_default_tier() -> None:
    settings = Settings.from_env(tiers_env({"free": {"max_channels": 1, "messages_per_minute": 5}}))
    assert settings.tier_limits("free") == TierLimits(1, 5)
    assert settings.tier_limits("scale") == PAID


def test_tier_values_are_cast_to_integers() -> None:
    settings = Settings.from_env(
        tiers_env({"gold": {"max_channels": "20", "messages_per_minute": 500.0}})
    )
    assert settings.tier_limits("gold") == TierLimits(20, 500)


def test_unknown_tier_gets_free_limits() -> None:
    assert Settings().tier_limits("platinum") == FREE
    assert Settings().tier_limits("") == FREE


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ([], "expected a JSON object"),
        ("free", "expected a JSON object"),
        ({"gold": 5}, "tier 'gold': expected an object"),
        ({"gold": {"max_channels": "many", "messages_per_minute": 1}}, "invalid literal"),
        ({"gold": {"max_channels": None, "messages_per_minute": 1}}, "int()"),
        ({"gold": {"max_channels": 3}}, "messages_per_minute"),
        ({"gold": {"messages_per_minute": 3}}, "max_channels"),
        ({"gold": {}}, "max_channels"),
    ],
)
def test_bad_tiers_raise_settings_error(value: Any, detail: str) -> None:
    with pytest.raises(SettingsError, match="WEDSYNC_TIERS") as info:
        Settings.from_env(tiers_env(value))
    assert detail in str(info.value)


def test_tiers_must_define_free_when_built_directly() -> None:
    settings = Settings(tiers={"paid": PAID})
    with pytest.raises(SettingsError, match="WEDSYNC_TIERS must define the `free` tier"):
        settings.validate()


def test_history_defaults_and_rules() -> None:
    default = Settings.from_env({})
    assert default.history_rule("room") == HistoryRule("*", 100, 300.0)  # SPEC: 100 for 5 min
    rules = json.dumps(
        [
            {"pattern": "typing:*", "size": 0},
            {"pattern": "form:*", "size": 500, "ttl_s": 900},
            {"pattern": "form:*:drafts", "size": 5},  # shadowed by the rule before it
            {"pattern": "journey:*", "ttl_s": 60},
        ]
    )
    settings = Settings.from_env({"WEDSYNC_HISTORY_RULES": rules, "WEDSYNC_HISTORY_SIZE": "50"})
    assert settings.history_rule("typing:form-1") is None
    assert settings.history_rule("form:1") == HistoryRule("form:*", 500, 900.0)
    assert settings.history_rule("form:1:drafts") == HistoryRule("form:*", 500, 900.0)
    assert settings.history_rule("journey:j1:c1") == HistoryRule("journey:*", 50, 60.0)
    assert settings.history_rule("room") == HistoryRule("*", 50, 300.0)
    assert Settings.from_env({"WEDSYNC_HISTORY_SIZE": "0"}).history_rule("room") is None


@pytest.mark.parametrize(
    "raw",
    [
        '{"pattern": "x"}',
        '[{"size": 3}]',
        '[{"pattern": "x", "size": -2}]',
        '[{"pattern": "x", "ttl_s": 0}]',
    ],
)
def test_bad_history_rules_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="WEDSYNC_HISTORY_RULES"):
        Settings.from_env({"WEDSYNC_HISTORY_RULES": raw})


# -- cdc_tables ----------------------------------------------------------------------------------


def test_cdc_tables_default_leaves_the_publication_alone() -> None:
    assert Settings.from_env({}).cdc_tables == ()
    assert Settings.from_env({"WEDSYNC_CDC_TABLES": ""}).cdc_tables == ()
    assert Settings.from_env({"WEDSYNC_CDC_TABLES": "  "}).cdc_tables == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("core_field_values", (("public", "core_field_values"),)),
        ("public.core_field_values", (("public", "core_field_values"),)),
        (
            " core_field_values , crm.Leads,forms ",
            (("public", "core_field_values"), ("crm", "Leads"), ("public", "forms")),
        ),
        # Duplicates, also spelled differently, are kept once, in first-seen order.
        ("forms,public.forms,couples,forms", (("public", "forms"), ("public", "couples"))),
    ],
)
def test_cdc_tables_are_parsed_to_schema_and_table(
    raw: str, expected: tuple[tuple[str, str], ...]
) -> None:
    settings = Settings.from_env({"WEDSYNC_CDC_TABLES": raw})
    assert settings.cdc_tables == expected
    # Nothing else moved.
    assert dataclasses.replace(settings, cdc_tables=()) == Settings()


@pytest.mark.parametrize(
    "raw", ["forms,,couples", "forms,", ".forms", "public.", "a.b.c", "public. forms"]
)
def test_bad_cdc_tables_name_the_variable_and_the_item(raw: str) -> None:
    with pytest.raises(SettingsError, match="WEDSYNC_CDC_TABLES") as info:
        Settings.from_env({"WEDSYNC_CDC_TABLES": raw})
    assert "expected `table` or `schema.table`" in str(info.value)


def test_gc_thresholds_default_tuned_overridable_or_cpythons() -> None:
    assert Settings().gc_thresholds == (100_000, 50, 1_000)
    tuned = Settings.from_env({"WEDSYNC_GC_THRESHOLDS": " 5000, 20 ,100"})
    assert tuned.gc_thresholds == (5000, 20, 100)
    assert Settings.from_env({"WEDSYNC_GC_THRESHOLDS": "default"}).gc_thresholds is None
    for bad in ("1,2", "a,b,c", "1,-2,3"):
        with pytest.raises(SettingsError, match="WEDSYNC_GC_THRESHOLDS"):
            Settings.from_env({"WEDSYNC_GC_THRESHOLDS": bad})
