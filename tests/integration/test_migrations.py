"""`wedsync-realtime migrate` against a real PostgreSQL: versions, idempotence, replica identity,
row-level security as PostgreSQL enforces it, and the change-capture publication.

Each test gets a fresh, uniquely named database on 127.0.0.1:5432 (user postgres), force-dropped
afterwards. PostgreSQL down: skipped with a message outside CI, a failure when CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from wedsync_realtime.store.migrate import load_migrations, migrate

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
EXAMPLE_TABLES = {
    "user_profiles",
    "suppliers",
    "couples",
    "supplier_client_connections",
    "core_field_values",
    "forms",
    "form_responses",
    "journey_instances",
    "notifications",
    # 0003: what the domain layer reads.
    "supplier_team_members",
    "weddings",
    "form_recipients",
    "venues",
    # 0004: journeys, their ordered steps, and each couple's progress through them.
    "journeys",
    "journey_steps",
    "journey_instance_steps",
}
#: The venue directory and journey definitions are reference data, not streams anyone follows.
PUBLISHED_TABLES = EXAMPLE_TABLES - {"venues", "journeys", "journey_steps"}


def _admin_connection() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = (
            f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc}); "
            "run scripts/prepare_postgres.sh (make test does)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; in CI the postgres tests must run")
        pytest.skip(message)


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh empty database; its URL; force-dropped afterwards."""
    name = f"wedsync_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{SERVER_URL}/{name}"
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _fingerprint(url: str) -> list[tuple[Any, ...]]:
    """What migrations create and record, to show that a second run changes nothing."""
    with psycopg.connect(url) as conn:
        recorded = conn.execute(
            "SELECT version, applied_at::text FROM realtime.schema_migrations ORDER BY version"
        ).fetchall()
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('realtime', 'public', 'auth') ORDER BY 1, 2"
        ).fetchall()
        policies = conn.execute(
            "SELECT tablename, policyname, qual FROM pg_policies ORDER BY 1, 2"
        ).fetchall()
        functions = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname IN ('auth', 'public') ORDER BY 1"
        ).fetchall()
    return [*recorded, *relations, *policies, *functions]


def test_migrate_applies_all_and_records_versions(database_url: str) -> None:
    expected = [m.label for m in load_migrations()]
    assert expected[:2] == ["0001_realtime", "0002_wedsync_example"]
    assert migrate(database_url) == expected
    with psycopg.connect(database_url) as conn:
        versions = conn.execute(
            "SELECT version FROM realtime.schema_migrations ORDER BY version"
        ).fetchall()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'realtime'"
        ).fetchall()
        defaults = conn.execute(
            "INSERT INTO realtime.realtime_channels (name) VALUES ('supplier:1')"
            " RETURNING max_subscribers, message_rate_limit, payload_size_limit"
        ).fetchone()
        event = conn.execute(
            "INSERT INTO realtime.realtime_events (event_type) VALUES ('x')"
            " RETURNING priority, expires_at - created_at"
        ).fetchone()
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(
                "INSERT INTO realtime.realtime_events (event_type, priority) VALUES ('x', 11)"
            )
    assert [row[0] for row in versions] == [m.version for m in load_migrations()]
    assert {row[0] for row in tables} == {
        "schema_migrations",
        "realtime_channels",
        "realtime_subscriptions",
        "realtime_presence",
        "realtime_events",
        "realtime_metrics",
        "last_seen",
    }
    assert defaults == (1000, 100, 65536)
    assert event is not None and event[0] == 5
    assert event[1].total_seconds() == pytest.approx(300, abs=1)


def test_second_run_applies_nothing_and_changes_nothing(database_url: str) -> None:
    migrate(database_url)
    before = _fingerprint(database_url)
    assert migrate(database_url) == []
    assert _fingerprint(database_url) == before


def test_example_tables_have_full_replica_identity_and_rls(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relreplident::text, c.relrowsecurity FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    by_name = {name: (ident, rls) for name, ident, rls in rows}
    assert set(by_name) == EXAMPLE_TABLES
    assert all(value == ("f", True) for value in by_name.values()), by_name


def test_publication_lists_the_example_tables(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables"
            " WHERE pubname = 'wedsync_realtime'"
        ).fetchall()
    assert {(schema, table) for schema, table in rows} == {("public", t) for t in PUBLISHED_TABLES}


class _World:
    """Two couples, a supplier connected to couple A only, an unconnected supplier, an admin."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.couple_a, self.couple_b = uuid.uuid4(), uuid.uuid4()
        self.supplier, self.other_supplier = uuid.uuid4(), uuid.uuid4()
        self.couple_a_user, self.supplier_user = uuid.uuid4(), uuid.uuid4()
        self.other_supplier_user, self.admin_user = uuid.uuid4(), uuid.uuid4()
        conn.execute(
            "INSERT INTO couples (id, partner1_name) VALUES (%s, 'Emma'), (%s, 'Noah')",
            (self.couple_a, self.couple_b),
        )
        conn.execute(
            "INSERT INTO suppliers (id, business_name) VALUES (%s, 'Bloom'), (%s, 'Lens')",
            (self.supplier, self.other_supplier),
        )
        conn.execute(
            "INSERT INTO user_profiles (id, user_type, display_name, supplier_id, couple_id) VALUES"
            " (%s, 'couple', 'Emma', NULL, %s), (%s, 'supplier', 'Bloom', %s, NULL),"
            " (%s, 'supplier', 'Lens', %s, NULL), (%s, 'admin', 'Ada', NULL, NULL)",
            (
                self.couple_a_user,
                self.couple_a,
                self.supplier_user,
                self.supplier,
                self.other_supplier_user,
                self.other_supplier,
                self.admin_user,
            ),
        )
        conn.execute(
            "INSERT INTO supplier_client_connections (supplier_id, couple_id, status)"
            " VALUES (%s, %s, 'active'), (%s, %s, 'ended')",
            (self.supplier, self.couple_a, self.other_supplier, self.couple_b),
        )
        conn.execute(
            "INSERT INTO core_field_values (couple_id, field_name, value) VALUES"
            " (%s, 'venue', '\"Old Barn\"'), (%s, 'guests', '120'),"
            " (%s, 'venue', '\"Castle\"')",
            (self.couple_a, self.couple_a, self.couple_b),
        )


def _visible_couples(conn: psycopg.Connection[Any], sub: str, table: str) -> list[uuid.UUID]:
    """Couple ids of `table` rows visible to `sub`, as the `authenticated` role sees them."""
    claims = json.dumps({"sub": sub, "role": "authenticated"})
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE authenticated")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
        column = sql.Identifier("id" if table == "couples" else "couple_id")
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY 1").format(column, sql.Identifier(table))
        ).fetchall()
    return [row[0] for row in rows]


def test_row_level_security_is_enforced_by_postgresql(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        world = _World(conn)
        a, b = world.couple_a, world.couple_b
        # A connected supplier sees couple A's rows only.
        assert _visible_couples(conn, str(world.supplier_user), "core_field_values") == [a, a]
        assert _visible_couples(conn, str(world.supplier_user), "couples") == [a]
        # A couple sees its own.
        assert _visible_couples(conn, str(world.couple_a_user), "core_field_values") == [a, a]
        # A supplier whose only connection has ended, an unknown user, a non-uuid sub: nothing.
        assert _visible_couples(conn, str(world.other_supplier_user), "core_field_values") == []
        assert _visible_couples(conn, str(uuid.uuid4()), "core_field_values") == []
        assert _visible_couples(conn, "emma", "core_field_values") == []
        # An admin sees everything.
        admin_rows = _visible_couples(conn, str(world.admin_user), "core_field_values")
        assert sorted(map(str, admin_rows)) == sorted(map(str, [a, a, b]))
        # The check really ran as `authenticated`: the role has no write privilege.
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute("DELETE FROM core_field_values")


def _visible(conn: psycopg.Connection[Any], sub: str, query: sql.SQL) -> set[Any]:
    """The first column of `query`'s rows, as `sub` sees them under the `authenticated` role."""
    claims = json.dumps({"sub": sub, "role": "authenticated"})
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE authenticated")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
        return {row[0] for row in conn.execute(query).fetchall()}


def test_journey_progress_is_visible_to_its_pair_only(database_url: str) -> None:
    """Definitions are the supplier's (like forms); a couple's progress is its pair's."""
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        world = _World(conn)
        ours, theirs = uuid.uuid4(), uuid.uuid4()
        run_a, run_b = uuid.uuid4(), uuid.uuid4()
        conn.execute(
            "INSERT INTO journeys (id, supplier_id, name) VALUES (%s, %s, 'Booking'),"
            " (%s, %s, 'Shoot')",
            (ours, world.supplier, theirs, world.other_supplier),
        )
        conn.execute(
            "INSERT INTO journey_steps (journey_id, step_id, position, name) VALUES"
            " (%s, 'visit', 0, 'Visit'), (%s, 'shoot', 0, 'Shoot')",
            (ours, theirs),
        )
        for run, journey, owner, pair in (
            (run_a, ours, world.supplier, world.couple_a),
            (run_b, theirs, world.other_supplier, world.couple_b),
        ):
            conn.execute(
                "INSERT INTO journey_instances"
                " (id, journey_id, supplier_id, couple_id, journey_name)"
                " VALUES (%s, %s, %s, %s, 'Run')",
                (run, journey, owner, pair),
            )
        conn.execute(
            "INSERT INTO journey_instance_steps (instance_id, step_id, status) VALUES"
            " (%s, 'visit', 'available'), (%s, 'shoot', 'available')",
            (run_a, run_b),
        )
        journeys = sql.SQL("SELECT id FROM journeys")
        steps = sql.SQL("SELECT journey_id FROM journey_steps")
        progress = sql.SQL("SELECT instance_id FROM journey_instance_steps")
        supplier, couple = str(world.supplier_user), str(world.couple_a_user)
        other, admin = str(world.other_supplier_user), str(world.admin_user)
        # The supplier sees its definitions and its connected couple's progress.
        assert _visible(conn, supplier, journeys) == {ours}
        assert _visible(conn, supplier, steps) == {ours}
        assert _visible(conn, supplier, progress) == {run_a}
        # The couple sees its connected supplier's definitions and its own progress.
        assert _visible(conn, couple, journeys) == {ours}
        assert _visible(conn, couple, progress) == {run_a}
        # A supplier whose connection ended keeps its definitions, not the couple's progress.
        assert _visible(conn, other, journeys) == {theirs}
        assert _visible(conn, other, progress) == set()
        assert _visible(conn, str(uuid.uuid4()), progress) == set()
        assert _visible(conn, admin, progress) == {run_a, run_b}
        assert _visible(conn, admin, steps) == {ours, theirs}


def _cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WEDSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "wedsync_realtime", "migrate"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_command_applies_then_reports_up_to_date(database_url: str) -> None:
    first = _cli({"WEDSYNC_DATABASE_URL": database_url})
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"applied {m.label}" for m in load_migrations()]
    second = _cli({"WEDSYNC_DATABASE_URL": database_url})
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout


def test_migrate_command_without_url_names_the_variable() -> None:
    result = _cli({})
    assert result.returncode == 2
    assert "WEDSYNC_DATABASE_URL" in result.stderr


def test_migrate_command_reports_an_unreachable_database() -> None:
    result = _cli({"WEDSYNC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"})
    assert result.returncode == 1
    assert "migrate failed" in result.stderr


def test_audit_retention_deletes_by_index(database_url: str) -> None:
    """The hourly prune of the audit tables finds old rows through an index, not a scan."""
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET enable_seqscan = off")
        plans = {
            table: "\n".join(
                str(row[0])
                for row in conn.execute(
                    f"EXPLAIN DELETE FROM realtime.{table} WHERE {column} < now()"
                ).fetchall()
            )
            for table, column in (
                ("realtime_subscriptions", "disconnected_at"),
                ("realtime_presence", "last_activity"),
                ("realtime_events", "created_at"),
                ("realtime_metrics", "recorded_at"),
            )
        }
    for table, plan in plans.items():
        assert "Seq Scan" not in plan, (table, plan)


def test_a_changed_core_field_always_gets_a_new_version_and_time(database_url: str) -> None:
    """Event ids come from versions and times: PostgreSQL keeps them moving whoever writes."""
    migrate(database_url)
    couple, form, supplier = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO couples (id, partner1_name) VALUES (%s, 'Emma')", (couple,))
        conn.execute(
            "INSERT INTO core_field_values (couple_id, field_name, value, updated_at)"
            " VALUES (%s, 'guest_count', '100', '2026-01-01')",
            (couple,),
        )
        # A value changed without a version bump: the version moves anyway, and the time.
        row = conn.execute(
            "UPDATE core_field_values SET value = '120' WHERE couple_id = %s"
            " RETURNING version, updated_at > '2026-01-01'",
            (couple,),
        ).fetchone()
        assert row == (2, True)
        # A writer that bumps the version itself is not bumped twice.
        bumped = conn.execute(
            "UPDATE core_field_values SET value = '130', version = version + 1"
            " WHERE couple_id = %s RETURNING version",
            (couple,),
        ).fetchone()
        assert bumped == (3,)
        conn.execute("INSERT INTO suppliers (id, business_name) VALUES (%s, 'Lens')", (supplier,))
        conn.execute(
            "INSERT INTO forms (id, supplier_id, title) VALUES (%s, %s, 'Q')", (form, supplier)
        )
        conn.execute(
            "INSERT INTO form_responses (form_id, supplier_id, couple_id, updated_at)"
            " VALUES (%s, %s, %s, '2026-01-01')",
            (form, supplier, couple),
        )
        touched = conn.execute(
            "UPDATE form_responses SET data = '{\"a\": 1}' WHERE form_id = %s"
            " RETURNING updated_at > '2026-01-01'",
            (form,),
        ).fetchone()
        assert touched == (True,)
