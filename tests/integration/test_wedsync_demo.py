"""The demo loader (issue 5, "Demo data"): loads idempotently into the configured store and
prints tokens a server on that store accepts, for users it knows."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings
from tests.support.wedsync_api import C, http
from wedsync_realtime.wedding.demo import DEMO_USERS
from wedsync_realtime.wedding.demo_cli import run_demo

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., Awaitable[RunningServer]]


async def test_demo_tokens_work_against_a_server_on_the_same_store(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    settings = make_settings(data_dir=tmp_path)
    for _ in range(2):  # idempotent
        out = io.StringIO()
        assert run_demo(settings, out=out, as_json=True) == 0
    printed = json.loads(out.getvalue())
    users = {u["user_id"]: u for u in printed["users"]}
    assert list(users) == [u.user_id for u in DEMO_USERS]
    assert users["lisa"]["tier"] == "free" and users["sarah"]["tier"] == "professional"
    assert (tmp_path / "wedsync.sqlite3").exists()

    server = await server_factory(data_dir=tmp_path)
    async with http(server) as api:
        fields = await api.get(
            f"/api/wedsync/couples/{C}/core-fields",
            headers={"Authorization": f"Bearer {users['emma']['token']}"},
        )
    assert fields.status_code == 200
    assert fields.json()["fields"]["venue_name"]["value"] == "Grand Hotel"


def test_demo_says_so_when_the_database_cannot_be_reached() -> None:
    """On PostgreSQL the demo needs the database: an unreachable one is exit 2 naming the
    variable, not a traceback (loading into PostgreSQL: test_wedsync_demo_postgres.py)."""
    settings = dataclasses.replace(make_settings(), database_url="postgresql://localhost:1/x")
    err = io.StringIO()
    assert run_demo(settings, out=io.StringIO(), err=err) == 2
    assert "WEDSYNC_DATABASE_URL" in err.getvalue()


def test_demo_prints_a_line_per_user(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(make_settings(data_dir=tmp_path), out=out) == 0
    text = out.getvalue()
    assert "James & Emma" in text
    for user in DEMO_USERS:
        assert f"\n{user.user_id:<8} {user.name} (" in text
