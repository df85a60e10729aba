"""`wedsync-realtime demo`: load the demo wedding into the configured store, print a token per user.

Issue 5, "Demo data": "`wedsync-realtime demo` loads (idempotently) a wedding to try it all ...
prints a token per user". The store is the one the server uses: the embedded default's
(`WEDSYNC_DATA_DIR`), or with `WEDSYNC_DATABASE_URL` the migrated PostgreSQL database, where every
demo id is `demo_uuid` of it (`demo_postgres`; exit 2 when the database cannot be reached or is
not migrated).

Tokens are signed with `WEDSYNC_JWT_SECRET` (as `wedsync-realtime token` does), with ``sub`` the
demo user's id in that store — the id the server's directory knows them by (a uuid on
PostgreSQL) — ``role: authenticated``, and for supplier users ``app_metadata.tier`` from their
supplier's plan (as the store holds it), so their channel and message limits are the plan's.
Couples and the admin get the free tier's limits (3 channels per connection): a couple's app
joins ``user:``, ``couple:`` and ``core_fields:`` first.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import psycopg

from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.settings import Settings
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.demo import DEMO_USERS, DemoUser, demo, demo_uuid, load_demo
from wedsync_realtime.wedding.demo_postgres import DemoTablesMissing, load_demo_postgres
from wedsync_realtime.wedding.runtime import open_embedded_database

__all__ = ["DemoToken", "demo_tokens", "run_demo"]

#: Default lifetime of the printed tokens: a day of trying things out.
DEFAULT_TTL_S = 86_400


#: A demo id as the store knows it: itself on the embedded default, `demo_uuid` on PostgreSQL.
StoreId = Callable[[str], str]


def _same(name: str) -> str:
    return name


def _postgres_id(name: str) -> str:
    return str(demo_uuid(name))


@dataclass(frozen=True, slots=True)
class DemoToken:
    user: DemoUser
    tier: str
    token: str
    #: The store's ids of the user (the token's ``sub``), its supplier and its couple.
    user_id: str
    supplier_id: str | None
    couple_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "demo_id": self.user.user_id,
            "name": self.user.name,
            "user_type": self.user.user_type.value,
            "supplier_id": self.supplier_id,
            "couple_id": self.couple_id,
            "tier": self.tier,
            "token": self.token,
        }


def _sqlite_tiers(database: SqliteDatabase) -> dict[str, str]:
    return {str(r["id"]): str(r["tier"]) for r in database.query("SELECT id, tier FROM suppliers")}


def demo_tokens(
    settings: Settings, database: SqliteDatabase, *, ttl_s: int = DEFAULT_TTL_S
) -> list[DemoToken]:
    """A signed token per demo user of the embedded store, in `DEMO_USERS` order."""
    return _tokens(settings, _sqlite_tiers(database), _same, ttl_s=ttl_s)


def _tokens(
    settings: Settings, tiers: Mapping[str, str], store_id: StoreId, *, ttl_s: int
) -> list[DemoToken]:
    """A signed token per demo user; `tiers`: the suppliers' plans by demo supplier id."""
    verifier = TokenVerifier(settings.jwt_secret)
    now = int(time.time())
    tokens = []
    for user in DEMO_USERS:
        tier = "free" if user.supplier_id is None else tiers.get(user.supplier_id, "free")
        sub = store_id(user.user_id)
        claims: dict[str, Any] = {
            "sub": sub,
            "role": "authenticated",
            "iat": now,
            "exp": now + ttl_s,
            "user_name": user.name,
            "user_type": user.user_type.value,
        }
        if user.supplier_id is not None:
            claims["app_metadata"] = {"tier": tier}
        tokens.append(
            DemoToken(
                user,
                tier,
                verifier.sign(claims),
                user_id=sub,
                supplier_id=None if user.supplier_id is None else store_id(user.supplier_id),
                couple_id=None if user.couple_id is None else store_id(user.couple_id),
            )
        )
    return tokens


def run_demo(
    settings: Settings,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    as_json: bool = False,
    ttl_s: int = DEFAULT_TTL_S,
) -> int:
    """Load the demo (idempotent) into the configured store and print the tokens; the exit code
    (2: PostgreSQL unreachable or not migrated)."""
    if settings.jwt_secret_is_default:
        print(
            "wedsync-realtime: WEDSYNC_JWT_SECRET is not set: these tokens are signed with the "
            "DEVELOPMENT secret",
            file=err,
        )
    if settings.database_url is not None:
        try:
            with psycopg.connect(
                settings.database_url, autocommit=True, connect_timeout=10
            ) as conn:
                tiers = load_demo_postgres(conn)
                info = conn.info
                store = f"PostgreSQL {info.host}:{info.port}/{info.dbname}"
        except DemoTablesMissing as exc:
            print(
                "wedsync-realtime: demo: the database of WEDSYNC_DATABASE_URL is not migrated "
                f"({exc}); run `wedsync-realtime migrate` first",
                file=err,
            )
            return 2
        except psycopg.Error as exc:
            print(
                f"wedsync-realtime: demo: cannot load the demo into WEDSYNC_DATABASE_URL: {exc}",
                file=err,
            )
            return 2
        store_id: StoreId = _postgres_id
    else:
        with open_embedded_database(settings) as database:
            load_demo(database)
            tiers = _sqlite_tiers(database)
        store, store_id = str(settings.data_dir), _same
    tokens = _tokens(settings, tiers, store_id, ttl_s=ttl_s)
    couple, wedding = store_id(demo.couple), store_id(demo.wedding)
    if as_json:
        body: dict[str, Any] = {
            "couple_id": couple,
            "wedding_id": wedding,
            "users": [t.to_json() for t in tokens],
        }
        print(json.dumps(body, indent=2), file=out)
        return 0
    print(f"Demo wedding loaded: James & Emma ({couple}, wedding {wedding})", file=out)
    print(f"Store: {store}; tokens valid for {ttl_s} s", file=out)
    for token in tokens:
        user = token.user
        org = token.supplier_id or token.couple_id or "-"
        label = f"{user.name} ({user.user_type.value}, {org}, tier {token.tier})"
        if token.user_id != user.user_id:
            label += f" sub {token.user_id}"
        print(f"{user.user_id:<8} {label}", file=out)
        print(f"         {token.token}", file=out)
    return 0
