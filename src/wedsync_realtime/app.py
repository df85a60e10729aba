"""The composition root: builds the node, its backends, auth and the ASGI application.

Nothing else in the package constructs these; tests build their servers through here too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from wedsync_realtime.api import broadcast, history, wedsync
from wedsync_realtime.api.realtime_api import channel_type
from wedsync_realtime.auth.jwt import TokenVerifier
from wedsync_realtime.auth.policy import NameRulesPolicy
from wedsync_realtime.backends.memory import MemoryBroker, MemoryHistory
from wedsync_realtime.cdc.capture import CaptureConfig
from wedsync_realtime.cdc.subscriptions import PostgresChanges
from wedsync_realtime.engine.audit import AuditLog, AuditRecorder, node_figures
from wedsync_realtime.engine.node import Node
from wedsync_realtime.logs import install_log_filters
from wedsync_realtime.settings import Settings
from wedsync_realtime.store.audit_postgres import PostgresAuditLog
from wedsync_realtime.store.audit_sqlite import SqliteAuditLog
from wedsync_realtime.transport.asgi import WebSocketEndpoint
from wedsync_realtime.wedding.captured import FACT_TABLES, FEED_TABLES, DomainCapture
from wedsync_realtime.wedding.directory import Directory
from wedsync_realtime.wedding.policy import CatalogPolicy
from wedsync_realtime.wedding.postgres_stores import PostgresDirectory, domain_pool
from wedsync_realtime.wedding.presence_events import PresenceAnnouncer, PresenceHooks
from wedsync_realtime.wedding.runtime import open_embedded_directory, runtime_for

__all__ = ["RealtimeApp", "build_app", "build_node"]

log = logging.getLogger(__name__)

SOCKET_PATHS = ("/socket/websocket", "/realtime/v1/websocket")


def build_node(settings: Settings) -> Node:
    """The engine for `settings`: embedded default (memory broker) unless configured otherwise."""
    if settings.jwt_secret_is_default:
        log.warning(
            "WEDSYNC_JWT_SECRET is not set: using the DEVELOPMENT secret. Anyone can mint tokens "
            "for this server. Set WEDSYNC_JWT_SECRET before exposing it."
        )
    # The WedSync catalog decides its own channels (supplier:, couple:, wedding:, ...) whatever
    # the client's `private` flag says; every other channel follows the name rules. The rules
    # read the WedSync tables: of the server's SQLite store on the embedded default, of
    # PostgreSQL in production mode. The domain services use the same store (`build_app`
    # finds it through the policy: `runtime_for`).
    directory: Directory
    audit_log: AuditLog  # the audit log's tables live in the same store
    if settings.database_url is None:
        directory = open_embedded_directory(settings)
        audit_log = SqliteAuditLog(directory.database)
    else:
        directory = PostgresDirectory(domain_pool(settings.database_url))
        audit_log = PostgresAuditLog(directory.pool)
    history = MemoryHistory(idempotency_ttl=settings.idempotency_ttl_s)
    postgres_changes = None
    if settings.database_url is not None:
        postgres_changes = PostgresChanges(
            CaptureConfig(
                dsn=settings.database_url,
                slot_name=settings.cdc_slot_name,
                publication=settings.cdc_publication,
                tables=_with_domain_tables(settings.cdc_tables),
            ),
            enabled_tables=frozenset(settings.cdc_tables) or None,
        )
    node = Node(
        settings,
        verifier=TokenVerifier(settings.jwt_secret),
        policy=CatalogPolicy(directory, fallback=NameRulesPolicy()),
        broker=MemoryBroker(),
        history=history,
        postgres_changes=postgres_changes,
    )
    node.housekeeping.append(history.prune)
    if settings.audit:
        node.audit = AuditRecorder(
            audit_log,
            channel_type=channel_type,
            figures=lambda: node_figures(node),
            retention_days=settings.audit_retention_days,
        )
        node.housekeeping.append(node.audit.housekeeping)  # metrics snapshots and pruning
    return node


def _with_domain_tables(tables: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`WEDSYNC_CDC_TABLES` plus the tables the WedSync domain reads from change capture.

    Without them the domain would go quiet (no core-field events) and, worse, rights taken away
    while joined would never be re-checked: a narrowed list must not switch that off.
    """
    if not tables:
        return tables  # the publication as the migrations made it holds them all
    wanted = [("public", t) for t in sorted(FEED_TABLES | FACT_TABLES)]
    missing = [t for t in wanted if t not in tables]
    if missing:
        log.warning(
            "WEDSYNC_CDC_TABLES: also enabling %s, which the WedSync domain reads from change "
            "capture (its events and the re-check of rights)",
            ", ".join(f"{schema}.{table}" for schema, table in missing),
        )
    return (*tables, *missing)


def build_app(settings: Settings, node: Node | None = None) -> RealtimeApp:
    """The ASGI application. The node starts and stops with the application's lifespan."""
    install_log_filters()
    node = node if node is not None else build_node(settings)
    # The WedSync services on the node's embedded store (None on PostgreSQL).
    wedding = runtime_for(node)
    if wedding is not None:
        wedding.router.audit = node.audit  # every routed domain event is an audit row
        # Last seen (7 days): the engine reports who it sees; the domain stores it. And
        # `presence_updated`: a user's status changes, announced on the channels of the people
        # who may see it (a supplier's clients, a couple's suppliers).
        announcer = PresenceAnnouncer(node, wedding.directory, wedding.route)
        node.presence_listener = PresenceHooks(wedding.presence, announcer)
        node.housekeeping.append(wedding.presence.housekeeping)
        if node.postgres_changes is not None:
            # Production mode: the platform writes the WedSync tables; their committed changes
            # become domain events through the same router as the embedded write API's.
            capture = DomainCapture(wedding.changes, node.reauthorize)
            node.postgres_changes.add_transaction_listener(capture.consume)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if wedding is not None:
            await wedding.open()
        try:
            async with node:
                yield
        finally:
            if wedding is not None:
                await wedding.close()

    app = FastAPI(title="WedSync Realtime", version="0.1.0", lifespan=lifespan)
    app.state.node = node
    app.state.wedding = wedding
    app.include_router(broadcast.router)
    app.include_router(history.router)
    wedsync.install(app)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """200 while the server accepts connections, 503 while it shuts down. With Postgres
        Changes, `postgres_changes` says whether capture streams and its lag: WAL bytes
        received or announced by PostgreSQL but not yet handed to fan-out and acknowledged."""
        if node.accepting:
            body: dict[str, object] = {"status": "ok", "connections": len(node.connections)}
            changes = node.postgres_changes
            if changes is not None:
                body["postgres_changes"] = {
                    "streaming": changes.ready,
                    "lag_bytes": changes.lag_bytes,
                    "subscriptions": changes.subscription_count(),
                }
            return JSONResponse(body)
        return JSONResponse({"status": "shutting_down"}, status_code=503)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Supabase answers REST errors as {"message": ...}; keep that shape.
        body = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    return RealtimeApp(app, node)


class RealtimeApp:
    """The outermost ASGI app: WebSocket upgrades on the socket paths go straight to the
    endpoint, everything else to the FastAPI app.

    Mounting the socket outside FastAPI keeps Starlette's middleware from wrapping `send` for
    every frame of the fan-out, and leaves the endpoint holding the server's own `send`.
    """

    def __init__(self, api: FastAPI, node: Node) -> None:
        self.api = api
        self.node = node
        self._socket = WebSocketEndpoint(node)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] in SOCKET_PATHS:
            await self._socket(scope, receive, send)
        else:
            await self.api(scope, receive, send)
