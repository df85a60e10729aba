"""The WebSocket endpoint as a raw ASGI application.

Connect-time checks happen before the upgrade and are answered as HTTP errors with a JSON body
`{"error": "<text>"}`, as Supabase does (reference notes §4.1): 401 for a missing or bad token,
400 for an unsupported `vsn`, 429 for too many connections of one user, 503 while shutting down.
Servers without the ASGI "websocket.http.response" extension get a close 1008 instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send

from wedsync_realtime.engine.connection import Connection
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import AuthError, CloseCode, ConnectionRefused
from wedsync_realtime.protocol.frames import ProtocolVersion
from wedsync_realtime.protocol.session import OutFrame
from wedsync_realtime.protocol.wsframe import websocket_frame
from wedsync_realtime.transport.uvicorn_ws import FastWebSocketProtocol

__all__ = ["WebSocketEndpoint"]

log = logging.getLogger(__name__)


_POLICY_VIOLATION = 1008


class AsgiTransport:
    """Writes frames through an ASGI `send` callable, and directly to the socket when the server
    is uvicorn with `FastWebSocketProtocol` (the fan-out fast path)."""

    __slots__ = ("_closed", "_fast", "_send")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._closed = False
        protocol = getattr(send, "__self__", None)
        self._fast = protocol if isinstance(protocol, FastWebSocketProtocol) else None

    def write_nowait(self, frame: OutFrame, wire: bytes | None) -> bool:
        if self._fast is None or self._closed:
            return False
        return self._fast.write_nowait(wire if wire is not None else websocket_frame(frame))

    async def send(self, frame: OutFrame) -> None:
        if self._closed:
            return
        message = (
            {"type": "websocket.send", "text": frame}
            if isinstance(frame, str)
            else {"type": "websocket.send", "bytes": frame}
        )
        try:
            await self._send(message)
        except (OSError, RuntimeError):
            # The peer went away between our check and the write; the receive loop ends soon.
            self._closed = True

    def abort(self) -> None:
        self._closed = True
        if self._fast is not None:
            self._fast.abort()
        else:
            # Plain ASGI has no abort: the blocked write ends when the server's ping times out.
            log.warning("cannot abort the connection: the ASGI server exposes no transport")

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, RuntimeError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


class WebSocketEndpoint:
    """`/socket/websocket` and `/realtime/v1/websocket`."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("WebSocketEndpoint serves WebSocket scopes only")
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        try:
            conn = self._admit(scope)
        except _Denied as denied:
            log.warning("refused connection from %s: %s", _peer(scope), denied.error)
            await _deny(scope, send, denied.status, denied.error)
            return
        writer: asyncio.Task[None] | None = None
        try:
            await send({"type": "websocket.accept"})
            writer = asyncio.create_task(
                conn.write_loop(AsgiTransport(send)), name=f"writer-{conn.id}"
            )
            await self._read_loop(conn, receive)
        finally:
            # Also when the peer vanished during the accept: the node must forget it.
            self.node.disconnect(conn)
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)

    def _admit(self, scope: Scope) -> Connection:
        params = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Supabase reads the x-api-key header first, then the apikey parameter (user_socket.ex).
        token = headers.get("x-api-key") or _first(params, "apikey")
        try:
            version = ProtocolVersion.from_query(_first(params, "vsn"))
        except ValueError as exc:
            raise _Denied(400, str(exc)) from None
        try:
            principal = self.node.verifier.verify(token)
        except AuthError as exc:
            raise _Denied(401, exc.message) from None
        try:
            return self.node.connect(principal, version, _peer(scope))
        except ConnectionRefused as exc:
            raise _Denied(exc.status, exc.message) from None

    async def _read_loop(self, conn: Connection, receive: Receive) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                try:
                    if text is not None:
                        await conn.receive_text(text)
                    else:
                        await conn.receive_bytes(message.get("bytes") or b"")
                except Exception:
                    conn.log.exception("internal error while handling a frame")
                    conn.close(CloseCode.INTERNAL_ERROR, "internal error")
            elif kind == "websocket.disconnect":
                return


class _Denied(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


async def _deny(scope: Scope, send: Send, status: int, error: str) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps({"error": error})
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": error[:120]})
