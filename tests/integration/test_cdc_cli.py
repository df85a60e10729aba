"""`wedsync-realtime cdc status|drop-slot` against a real PostgreSQL slot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.cdc import migrated_database, unique_slot

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with migrated_database("wedsync_cdc_cli_test") as url:
        yield url


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEDSYNC_")}
    env["WEDSYNC_DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-m", "wedsync_realtime", "cdc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_shows_lag_and_drop_slot_removes_it(db_url: str) -> None:
    slot = unique_slot()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        conn.execute("INSERT INTO suppliers (business_name) VALUES ('lagging')")

    shown = _cli(db_url, "status", "--slot", slot)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["exists"] is True and status["slot_name"] == slot
    assert status["plugin"] == "pgoutput" and status["active"] is False
    assert status["lag_bytes"] > 0  # the insert is not confirmed by any consumer
    assert status["wal_status"] in ("reserved", "extended")

    dropped = _cli(db_url, "drop-slot", "--slot", slot)
    assert dropped.returncode == 0 and f"dropped replication slot {slot}" in dropped.stdout
    missing = _cli(db_url, "status", "--slot", slot)
    assert missing.returncode == 1 and json.loads(missing.stdout)["exists"] is False
    again = _cli(db_url, "drop-slot", "--slot", slot)
    assert again.returncode == 0 and "nothing to drop" in again.stdout


def test_needs_the_database_url() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEDSYNC_")}
    result = subprocess.run(
        [sys.executable, "-m", "wedsync_realtime", "cdc", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "WEDSYNC_DATABASE_URL" in result.stderr


def test_serve_stops_with_the_reason_when_an_enabled_table_does_not_exist(db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEDSYNC_")}
    env |= {
        "WEDSYNC_DATABASE_URL": db_url,
        "WEDSYNC_JWT_SECRET": "cli-test-secret-0123456789abcdef",
        "WEDSYNC_CDC_SLOT_NAME": unique_slot(),
        "WEDSYNC_CDC_TABLES": "core_field_values,no_such_table",
        "WEDSYNC_DATA_DIR": ":memory:",
    }
    # Were start-up to succeed, the server would serve until the timeout: the test fails.
    result = subprocess.run(
        [sys.executable, "-m", "wedsync_realtime", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # uvicorn logs the start-up failure's traceback and exits with its STARTUP_FAILURE code.
    assert result.returncode == 3, result.stderr
    assert (
        "cannot enable Postgres Changes for table public.no_such_table: it does not exist"
        in result.stderr
    )
