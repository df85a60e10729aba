"""`wedsync-realtime`: serve, mint tokens, migrate the database, inspect change capture."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from wedsync_realtime.app import build_app, build_node
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.logs import configure_logging
from wedsync_realtime.server import Server, tune_garbage_collector, uvicorn_config
from wedsync_realtime.settings import PREFIX, Settings, SettingsError
from wedsync_realtime.wedding.demo_cli import run_demo

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wedsync-realtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the server")
    serve.add_argument("--host", help="interface to bind (default WEDSYNC_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default WEDSYNC_PORT or 4000)")
    token = commands.add_parser("token", help="print a signed JWT for development and tests")
    token.add_argument("--sub", required=True, help="user id (the `sub` claim)")
    token.add_argument("--role", default="authenticated", help="the `role` claim")
    token.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="K=V",
        help="extra claim; V is parsed as JSON when it is JSON (repeatable)",
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds until `exp`")
    demo = commands.add_parser(
        "demo",
        help="load the demo wedding (embedded store, or PostgreSQL with WEDSYNC_DATABASE_URL) "
        "and print a token per demo user",
    )
    demo.add_argument("--json", action="store_true", help="print the tokens as JSON")
    commands.add_parser(
        "migrate",
        help=f"apply the database migrations to {PREFIX}DATABASE_URL (versioned, idempotent)",
    )
    cdc = commands.add_parser("cdc", help="change capture: replication slot status and removal")
    cdc_commands = cdc.add_subparsers(dest="cdc_command", required=True)
    for name, text in (
        ("status", "print the replication slot's status and lag as JSON"),
        ("drop-slot", "drop the replication slot (WAL it retained is released)"),
    ):
        sub = cdc_commands.add_parser(name, help=text)
        sub.add_argument(
            "--slot",
            default=None,
            help=f"slot name (default {PREFIX}CDC_SLOT_NAME or wedsync_realtime)",
        )
    return parser


def _database_url(environ: Mapping[str, str], command: str) -> str | None:
    url = environ.get(f"{PREFIX}DATABASE_URL", "").strip()
    if not url:
        print(
            f"wedsync-realtime: {command} needs {PREFIX}DATABASE_URL (postgresql://...), "
            "which is not set",
            file=sys.stderr,
        )
        return None
    return url


def _cdc(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """`cdc status` / `cdc drop-slot`: like `migrate`, only the database URL matters here."""
    import asyncio

    import psycopg

    from wedsync_realtime.cdc.slot import SlotError, drop_slot, slot_status, validate_slot_name

    url = _database_url(environ, f"cdc {args.cdc_command}")
    if url is None:
        return 2
    slot = args.slot or environ.get(f"{PREFIX}CDC_SLOT_NAME", "").strip() or "wedsync_realtime"

    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            if args.cdc_command == "status":
                status = await slot_status(conn, slot)
                if status is None:
                    print(json.dumps({"slot_name": slot, "exists": False}))
                    return 1
                print(json.dumps({"exists": True, **status.as_dict()}))
                return 0
            if await drop_slot(conn, slot):
                print(f"dropped replication slot {slot}")
            else:
                print(f"no replication slot named {slot}; nothing to drop")
            return 0

    try:
        validate_slot_name(slot)
        return asyncio.run(run())
    except (SlotError, psycopg.Error) as exc:
        print(f"wedsync-realtime: cdc {args.cdc_command} failed: {exc}", file=sys.stderr)
        return 1


def _migrate(environ: Mapping[str, str]) -> int:
    """Only the database URL matters here: migrating needs no JWT secret or other settings."""
    # Imported here so `serve` and `token` do not load the PostgreSQL driver.
    import psycopg

    from wedsync_realtime.store.migrate import MigrationError, migrate

    url = _database_url(environ, "migrate")
    if url is None:
        return 2
    try:
        applied = migrate(url)
    except (MigrationError, psycopg.Error) as exc:
        print(f"wedsync-realtime: migrate failed: {exc}", file=sys.stderr)
        return 1
    for label in applied:
        print(f"applied {label}")
    if not applied:
        print("database is up to date; nothing to apply")
    return 0


def _claims(args: argparse.Namespace) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": args.sub, "role": args.role, "iat": now, "exp": now + args.ttl}
    for item in args.claim:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--claim expects K=V, got {item!r}")
        try:
            claims[key] = json.loads(value)
        except json.JSONDecodeError:
            claims[key] = value
    return claims


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        return _migrate(os.environ)
    if args.command == "cdc":
        return _cdc(args, os.environ)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"wedsync-realtime: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        print(TokenVerifier(settings.jwt_secret).sign(_claims(args)))
        return 0
    if args.command == "demo":
        return run_demo(settings, as_json=args.json)
    configure_logging(settings.log_level)
    if str(settings.data_dir) != ":memory:":  # ":memory:" keeps the store in memory
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    node = build_node(settings)
    app = build_app(settings, node)
    tune_garbage_collector(settings.gc_thresholds)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    server = Server(uvicorn_config(app, host, port, settings.max_frame_bytes), node)
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
