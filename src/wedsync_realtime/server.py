"""Running the application under uvicorn, with a graceful drain on SIGTERM."""

from __future__ import annotations

import socket

import uvicorn

from wedsync_realtime.app import RealtimeApp
from wedsync_realtime.engine.node import Node
from wedsync_realtime.transport.uvicorn_ws import FastWebSocketProtocol

__all__ = ["Server", "uvicorn_config"]


def uvicorn_config(app: RealtimeApp, host: str, port: int, max_frame_bytes: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvicorn's sans-I/O websockets protocol with a direct write for fan-out.
        ws=FastWebSocketProtocol,
        ws_max_size=max_frame_bytes,
        ws_per_message_deflate=False,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        log_config=None,
        access_log=False,
    )


class Server(uvicorn.Server):
    """uvicorn's server, draining the node before uvicorn closes sockets on shutdown.

    uvicorn closes WebSockets with 1012 on its own; draining first gives every channel its
    `system` error and `phx_close`, and every socket a 1001 close frame.
    """

    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.node.drain()
        await super().shutdown(sockets)
