"""`wedsync-realtime demo`: load the demo wedding into the configured store, print a token per user.

Issue 5, "Demo data": "`wedsync-realtime demo` loads (idempotently) a wedding to try it all ...
prints a token per user". The store is the embedded default's (`WEDSYNC_DATA_DIR`); on
PostgreSQL (`WEDSYNC_DATABASE_URL` set) the platform owns the WedSync tables and this refuses.

Tokens are signed with `WEDSYNC_JWT_SECRET` (as `wedsync-realtime token` does), with ``sub`` the
demo user's id — the id the server's directory knows them by — ``role: authenticated``, and for
supplier users ``app_metadata.tier`` from their supplier's plan, so their channel and message
limits are the plan's. Couples and the admin get the free tier's limits (3 channels per
connection): a couple's app joins ``user:``, ``couple:`` and ``core_fields:`` first.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.settings import Settings
from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.demo import DEMO_USERS, DemoUser, load_demo
from wedsync_realtime.wedding.runtime import open_embedded_database

__all__ = ["DemoToken", "demo_tokens", "run_demo"]

#: Default lifetime of the printed tokens: a day of trying things out.
DEFAULT_TTL_S = 86_400


@dataclass(frozen=True, slots=True)
class DemoToken:
    user: DemoUser
    tier: str
    token: str

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user.user_id,
            "name": self.user.name,
            "user_type": self.user.user_type.value,
            "supplier_id": self.user.supplier_id,
            "couple_id": self.user.couple_id,
            "tier": self.tier,
            "token": self.token,
        }


def _tier(database: SqliteDatabase, user: DemoUser) -> str:
    if user.supplier_id is None:
        return "free"
    row = database.query_one("SELECT tier FROM suppliers WHERE id = ?", (user.supplier_id,))
    return str(row["tier"]) if row is not None else "free"


def demo_tokens(
    settings: Settings, database: SqliteDatabase, *, ttl_s: int = DEFAULT_TTL_S
) -> list[DemoToken]:
    """A signed token per demo user, in `DEMO_USERS` order."""
    verifier = TokenVerifier(settings.jwt_secret)
    now = int(time.time())
    tokens = []
    for user in DEMO_USERS:
        tier = _tier(database, user)
        claims: dict[str, Any] = {
            "sub": user.user_id,
            "role": "authenticated",
            "iat": now,
            "exp": now + ttl_s,
            "user_name": user.name,
            "user_type": user.user_type.value,
        }
        if user.supplier_id is not None:
            claims["app_metadata"] = {"tier": tier}
        tokens.append(DemoToken(user, tier, verifier.sign(claims)))
    return tokens


def run_demo(
    settings: Settings,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    as_json: bool = False,
    ttl_s: int = DEFAULT_TTL_S,
) -> int:
    """Load the demo (idempotent) and print the tokens; the exit code (2: not embedded)."""
    if settings.database_url is not None:
        print(
            "wedsync-realtime: demo loads the embedded store; unset WEDSYNC_DATABASE_URL "
            "(on PostgreSQL the platform owns the WedSync tables)",
            file=err,
        )
        return 2
    if settings.jwt_secret_is_default:
        print(
            "wedsync-realtime: WEDSYNC_JWT_SECRET is not set: these tokens are signed with the "
            "DEVELOPMENT secret",
            file=err,
        )
    with open_embedded_database(settings) as database:
        ids = load_demo(database)
        tokens = demo_tokens(settings, database, ttl_s=ttl_s)
    if as_json:
        body: dict[str, Any] = {
            "couple_id": ids.couple,
            "wedding_id": ids.wedding,
            "users": [t.to_json() for t in tokens],
        }
        print(json.dumps(body, indent=2), file=out)
        return 0
    print(f"Demo wedding loaded: James & Emma ({ids.couple}, wedding {ids.wedding})", file=out)
    print(f"Store: {settings.data_dir}; tokens valid for {ttl_s} s", file=out)
    for token in tokens:
        user = token.user
        org = user.supplier_id or user.couple_id or "-"
        label = f"{user.name} ({user.user_type.value}, {org}, tier {token.tier})"
        print(f"{user.user_id:<8} {label}", file=out)
        print(f"         {token.token}", file=out)
    return 0
