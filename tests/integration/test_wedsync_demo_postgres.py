"""`wedsync-realtime demo` in production mode (issue 5, "Demo data", on PostgreSQL): the demo
wedding loads into the migrated WedSync tables with stable uuids (`demo_uuid`), the same wedding
as the embedded default's, idempotently (a second run writes no row; a core field once set and
a journey's progress are the couple's), and the printed tokens (``sub`` the user's uuid) work
against a server on that database; an unmigrated database is refused, naming
``wedsync-realtime migrate``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.conftest import TEST_SECRET, make_settings
from tests.integration.test_wedsync_sources import ServerFactory
from tests.support.cdc import (
    SERVER_URL,
    admin_connection,
    migrated_database,
    write,
)
from tests.support.pg_server import pg_server
from tests.support.wedsync_api import http, refused
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.demo import DEMO_USERS, demo, demo_uuid, load_demo
from wedsync_realtime.wedding.demo_cli import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

COMMAND = [sys.executable, "-m", "wedsync_realtime"]

Rows = set[tuple[Any, ...]]


def _u(name: str | None) -> str | None:
    """A demo id as PostgreSQL knows it."""
    return None if name is None else str(demo_uuid(name))


def _demo(url: str) -> dict[str, Any]:
    """Run the demo in-process against `url`; its JSON output."""
    out, err = io.StringIO(), io.StringIO()
    assert run_demo(make_settings(database_url=url), out=out, err=err, as_json=True) == 0, (
        err.getvalue()
    )
    printed: dict[str, Any] = json.loads(out.getvalue())
    return printed


def _demo_command(url: str) -> dict[str, Any]:
    """`wedsync-realtime demo --json` as a user runs it against `url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEDSYNC_")}
    env |= {"WEDSYNC_JWT_SECRET": TEST_SECRET, "WEDSYNC_DATABASE_URL": url}
    done = subprocess.run(
        [*COMMAND, "demo", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = json.loads(done.stdout)
    return printed


def _fingerprint(url: str) -> dict[str, list[str]]:
    """Every row of every public table with the transaction that wrote it (``xmin``): equal
    fingerprints mean not a row was inserted, deleted or rewritten, even with the same values."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        return {
            table: [
                str(r[0])
                for r in conn.execute(
                    sql.SQL(
                        "SELECT t.xmin::text || ' ' || to_jsonb(t)::text FROM public.{} t"
                        " ORDER BY 1"
                    ).format(sql.Identifier(table))
                ).fetchall()
            ]
            for table in tables
        }


#: The demo wedding, table by table, in both stores: (embedded query, PostgreSQL query, the
#: columns holding ids, the columns holding JSON).
WEDDING: dict[str, tuple[str, str, set[int], set[int]]] = {
    "suppliers": (
        "SELECT id, name, category, tier FROM suppliers",
        "SELECT id, business_name, category, tier FROM suppliers",
        {0},
        set(),
    ),
    "couples": (
        "SELECT id, partner1_name, partner2_name FROM couples",
        "SELECT id, partner1_name, partner2_name FROM couples",
        {0},
        set(),
    ),
    "users": (
        "SELECT id, type, name, supplier_id, couple_id FROM users",
        "SELECT id, user_type, display_name, supplier_id, couple_id FROM user_profiles",
        {0, 3, 4},
        set(),
    ),
    "team": (
        "SELECT supplier_id, user_id, role FROM supplier_team_members",
        "SELECT supplier_id, user_id, role FROM supplier_team_members",
        {0, 1},
        set(),
    ),
    "connections": (
        "SELECT supplier_id, couple_id, status FROM connections",
        "SELECT supplier_id, couple_id, status FROM supplier_client_connections",
        {0, 1},
        set(),
    ),
    "weddings": (
        "SELECT id, couple_id FROM weddings",
        "SELECT id, couple_id FROM weddings",
        {0, 1},
        set(),
    ),
    "forms": (
        "SELECT id, supplier_id, title, fields FROM forms",
        "SELECT id, supplier_id, title, fields FROM forms",
        {0, 1},
        {3},
    ),
    "form_recipients": (
        "SELECT form_id, couple_id FROM form_recipients",
        "SELECT form_id, couple_id FROM form_recipients",
        {0, 1},
        set(),
    ),
    "venues": (
        "SELECT id, name, address, capacity FROM venues",
        "SELECT id, name, address, capacity FROM venues",
        {0},
        set(),
    ),
    "journeys": (
        "SELECT id, supplier_id, name FROM journeys",
        "SELECT id, supplier_id, name FROM journeys",
        {0, 1},
        set(),
    ),
    "journey_steps": (
        "SELECT journey_id, step_id, position, name, kind FROM journey_steps",
        "SELECT journey_id, step_id, position, name, kind FROM journey_steps",
        {0},
        set(),
    ),
    "journey_instances": (
        "SELECT id, journey_id, supplier_id, couple_id, status FROM journey_instances",
        "SELECT id, journey_id, supplier_id, couple_id, status FROM journey_instances",
        {0, 1, 2, 3},
        set(),
    ),
    "journey_instance_steps": (
        "SELECT instance_id, step_id, status FROM journey_instance_steps",
        "SELECT instance_id, step_id, status FROM journey_instance_steps",
        {0},
        set(),
    ),
    "core_field_values": (
        "SELECT couple_id, field_name, value, version, updated_by FROM core_field_values",
        "SELECT couple_id, field_name, value, version, updated_by FROM core_field_values",
        {0, 4},
        {2},
    ),
}


def _embedded_wedding() -> dict[str, Rows]:
    """The embedded default's demo wedding, its ids mapped to the uuids PostgreSQL uses."""
    with SqliteDatabase.open(":memory:") as db:
        load_demo(db)
        wedding: dict[str, Rows] = {}
        for table, (query, _, ids, jsons) in WEDDING.items():
            wedding[table] = {
                tuple(
                    _u(v)
                    if k in ids
                    else json.dumps(json.loads(v), sort_keys=True)
                    if k in jsons
                    else v
                    for k, v in enumerate(row)
                )
                for row in db.query(query)
            }
        return wedding


def _postgres_wedding(url: str) -> dict[str, Rows]:
    """The same view of the WedSync tables on PostgreSQL."""
    wedding: dict[str, Rows] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table, (_, query, ids, jsons) in WEDDING.items():
            wedding[table] = {
                tuple(
                    (None if v is None else str(v))
                    if k in ids
                    else json.dumps(v, sort_keys=True)
                    if k in jsons
                    else v
                    for k, v in enumerate(row)
                )
                for row in conn.execute(query).fetchall()
            }
    return wedding


def test_the_demo_loads_once_and_prints_tokens_for_the_users_uuids() -> None:
    with migrated_database("wedsync_demo_pg_test") as url:
        printed = _demo(url)
        loaded = _fingerprint(url)
        # The command, run again, changes nothing: not a row written.
        again = _demo_command(url)
        assert _fingerprint(url) == loaded
        assert len(loaded["journey_instance_steps"]) == 3
        assert len(loaded["user_profiles"]) == len(DEMO_USERS)

        assert printed["couple_id"] == again["couple_id"] == _u(demo.couple)
        assert printed["wedding_id"] == again["wedding_id"] == _u(demo.wedding)
        with psycopg.connect(url, autocommit=True) as conn:
            profiles = {str(r[0]) for r in conn.execute("SELECT id FROM user_profiles").fetchall()}
        for output in (printed, again):
            users = output["users"]
            assert [u["demo_id"] for u in users] == [u.user_id for u in DEMO_USERS]
            for user, demo_user in zip(users, DEMO_USERS, strict=True):
                claims = jwt.decode(user["token"], TEST_SECRET, algorithms=["HS256"])
                assert claims["sub"] == user["user_id"] == _u(demo_user.user_id)
                assert claims["sub"] in profiles
                assert claims["role"] == "authenticated"
                assert user["supplier_id"] == _u(demo_user.supplier_id)
                assert user["couple_id"] == _u(demo_user.couple_id)
                if demo_user.supplier_id is not None:
                    assert claims["app_metadata"] == {"tier": user["tier"]}

        # Tiers from the suppliers' plans, as the embedded default prints them.
        embedded = io.StringIO()
        assert run_demo(make_settings(), out=embedded, as_json=True) == 0
        tiers = {u["demo_id"]: u["tier"] for u in json.loads(embedded.getvalue())["users"]}
        assert {u["demo_id"]: u["tier"] for u in printed["users"]} == tiers
        assert tiers["sarah"] == "professional" and tiers["lisa"] == "free"


def test_it_is_the_embedded_demo_wedding_and_what_the_couple_did_stays() -> None:
    with migrated_database("wedsync_demo_pg_test") as url:
        _demo(url)
        assert _postgres_wedding(url) == _embedded_wedding()

        # The couple changes a core field and completes the walkthrough; the demo, run again,
        # leaves both as they are.
        couple, walkthrough, emma = (
            demo_uuid(demo.couple),
            demo_uuid(demo.walkthrough),
            demo_uuid("emma"),
        )
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute(
                "UPDATE core_field_values SET value = %s, version = 2, updated_by = %s"
                " WHERE couple_id = %s AND field_name = 'guest_count'",
                (Jsonb(150), emma, couple),
            )
            conn.execute(
                "UPDATE journey_instance_steps SET status = 'completed', completed_at = now(),"
                " completed_by = %s WHERE instance_id = %s AND step_id = 'venue-walkthrough'",
                (emma, walkthrough),
            )
            conn.execute(
                "UPDATE journey_instance_steps SET status = 'available'"
                " WHERE instance_id = %s AND step_id = 'contract-review'",
                (walkthrough,),
            )
        played = _fingerprint(url)
        _demo(url)
        assert _fingerprint(url) == played


def test_an_unmigrated_database_is_refused_naming_the_migrate_command() -> None:
    name = f"wedsync_demo_bare_{uuid.uuid4().hex[:10]}"
    with admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        err = io.StringIO()
        settings = make_settings(database_url=f"{SERVER_URL}/{name}")
        assert run_demo(settings, out=io.StringIO(), err=err) == 2
        assert "wedsync-realtime migrate" in err.getvalue()
        with psycopg.connect(f"{SERVER_URL}/{name}", autocommit=True) as conn:
            created = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()
        assert created == (0,)
    finally:
        with admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def test_a_production_server_accepts_the_demo_tokens(server_factory: ServerFactory) -> None:
    with migrated_database("wedsync_demo_pg_test") as url:
        async with pg_server(server_factory, url) as server:
            changes = server.node.postgres_changes
            assert changes is not None
            await changes.capture.wait_streaming(timeout=20.0)
            # Loaded while change capture runs: the demo's transaction is captured too.
            printed = await asyncio.to_thread(_demo, url)
            tokens = {u["demo_id"]: u["token"] for u in printed["users"]}
            clients = f"supplier:{_u(demo.photographer)}:clients"

            sarah = await server.connect(tokens["sarah"])
            _, reply = await sarah.join(clients)
            assert reply.payload["status"] == "ok", reply.payload
            rita = await server.connect(tokens["rita"])
            await refused(rita, clients)

            async with http(server) as api:
                response = await api.get(
                    f"/api/wedsync/journeys/{_u(demo.walkthrough)}",
                    headers={"Authorization": f"Bearer {tokens['emma']}"},
                )
            assert response.status_code == 200, response.text
            journey = response.json()
            assert journey["journey_name"] == "Venue Booking"
            assert journey["supplier_id"] == _u(demo.venue_owner)
            assert journey["couple_id"] == _u(demo.couple)
            assert [(s["name"], s["status"]) for s in journey["steps"]] == [
                ("Venue Walkthrough", "available"),
                ("Contract Review", "locked"),
                ("Final Details", "locked"),
            ]

            # Change capture goes on past the demo's transaction: the couple's next change
            # reaches Sarah, named after Emma.
            await write(
                url,
                (
                    "UPDATE core_field_values SET value = '150', version = version + 1,"
                    " updated_by = %s, updated_at = now()"
                    " WHERE couple_id = %s AND field_name = 'guest_count'",
                    (demo_uuid("emma"), demo_uuid(demo.couple)),
                ),
            )
            # (The demo's own core fields, version 1, may come first: Sarah joined after the
            # demo committed, perhaps before change capture had routed it.)
            frame = await sarah.recv_until(
                lambda f: (
                    f.event == "broadcast"
                    and f.payload["payload"].get("field_name") == "guest_count"
                    and f.payload["payload"].get("version") == 2
                ),
                10.0,
            )
            change = frame.payload
            assert change["event"] == "core_fields_updated"
            assert change["payload"]["new_value"] == 150
            assert change["payload"]["updated_by"] == _u("emma")
            assert change["payload"]["updated_by_name"] == "Emma"
