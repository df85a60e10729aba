"""Running the application under uvicorn, with a graceful drain on SIGTERM."""

from __future__ import annotations

import gc
import socket

import uvicorn

from wedsync_realtime.app import RealtimeApp
from wedsync_realtime.engine.node import Node
from wedsync_realtime.transport.uvicorn_ws import FastWebSocketProtocol

__all__ = ["Server", "tune_garbage_collector", "uvicorn_config"]


def tune_garbage_collector(thresholds: tuple[int, int, int] | None) -> None:
    """Set the collector's thresholds (None: CPython's) and freeze what start-up allocated.

    A server holding thousands of sockets keeps hundreds of thousands of long-lived container
    objects; CPython's default thresholds make a full collection walk them all every few
    seconds under load, stopping the event loop for 0.5 s or more (BENCHMARKS.md, "Core Fields
    benchmark"). Larger thresholds make those passes rare, and `gc.freeze` takes the modules,
    settings and store loaded at start-up out of every later pass (the Instagram recipe).
    """
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    gc.collect()
    gc.freeze()


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
