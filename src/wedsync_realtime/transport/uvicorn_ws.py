"""uvicorn's sans-I/O WebSocket protocol, plus a non-blocking write of pre-framed bytes.

The ASGI path costs a coroutine, a message dict, a UTF-8 encode and a frame build for every frame
to every subscriber. Fan-out writes the same frame to thousands of sockets, so the endpoint uses
`write_nowait` when it runs under this protocol: the frame is built once and written straight to
each socket whose buffer has room. Everything else (handshake, reading, pings, close) stays
uvicorn's. This class is the one place that knows uvicorn's internals; the tests run through it.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["FastWebSocketProtocol"]


class FastWebSocketProtocol(WebSocketsSansIOProtocol):
    """Configured with `uvicorn.Config(ws=FastWebSocketProtocol)`."""

    def write_nowait(self, wire: bytes) -> bool:
        """Write a complete frame if the socket is open and below its high-water mark."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(wire)
        return True

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake."""
        self.transport.abort()
