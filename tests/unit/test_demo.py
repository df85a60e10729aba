"""The demo wedding loads idempotently and the catalog's rules read it from SQLite."""

from __future__ import annotations

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action, NameRulesPolicy
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.demo import DEMO_USERS, demo, load_demo
from wedsync_realtime.wedding.policy import CatalogPolicy
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory


def principal(user_id: str) -> Principal:
    claims = {"sub": user_id, "role": "authenticated", "exp": 2_000_000_000}
    return Principal(
        user_id=user_id, role="authenticated", claims=claims, expires_at=2e9, token="t"
    )


def table_sizes(database: SqliteDatabase) -> dict[str, int]:
    tables = [r[0] for r in database.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: int(database.query(f"SELECT count(*) FROM {t}")[0][0]) for t in tables}


async def test_loading_twice_changes_nothing() -> None:
    with SqliteDatabase.open(":memory:") as database:
        load_demo(database)
        once = table_sizes(database)
        load_demo(database)
        assert table_sizes(database) == once
        assert once["users"] == len(DEMO_USERS)


async def test_the_five_suppliers_are_connected_to_james_and_emma() -> None:
    with SqliteDatabase.open(":memory:") as database:
        load_demo(database)
        directory = SqliteDirectory(database)
        assert await directory.connected_suppliers(demo.couple) == tuple(
            sorted(demo.connected_suppliers)
        )
        assert await directory.couple_name(demo.couple) == "James & Emma"
        assert await directory.supplier_name(demo.caterer) == "Lisa's Catering"


async def test_the_catalog_rules_read_the_sqlite_directory() -> None:
    with SqliteDatabase.open(":memory:") as database:
        load_demo(database)
        policy = CatalogPolicy(SqliteDirectory(database), NameRulesPolicy())

        async def allowed(user: str, channel: str) -> bool:
            decision = await policy.authorize(
                principal(user), channel, Action.SUBSCRIBE, private=True
            )
            return decision.allowed

        assert await allowed("lisa", f"core_fields:{demo.couple}")
        assert not await allowed("rita", f"core_fields:{demo.couple}")
        assert await allowed("emma", f"journey:{demo.walkthrough}:{demo.couple}")
        assert await allowed("mike", f"journey:progress:{demo.walkthrough}")
        assert not await allowed("sarah", f"journey:progress:{demo.walkthrough}")
        assert await allowed("james", f"form:{demo.shot_list_form}")
        assert not await allowed("olivia", f"form:{demo.shot_list_form}")
        assert await allowed("tom", f"wedding:{demo.wedding}")
        assert not await allowed("rita", f"wedding:{demo.wedding}")
