"""In-process cost of `Node.publish` with and without history (no sockets, no subscribers):
what history's append, the channel lock and the message id add to every broadcast.

    PYTHONPATH=. taskset -c 0 .venv/bin/python -m benchmarks.publish_cost
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from wedsync_realtime.app import build_node
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.settings import Settings

MESSAGES = 50_000
CHANNELS = 100


async def cost_us(history_size: int) -> float:
    settings = Settings(
        jwt_secret="publish-cost",
        jwt_secret_is_default=False,
        history_size=history_size,
        data_dir=Path(":memory:"),
    )
    async with build_node(settings) as node:
        start = time.perf_counter()
        for i in range(MESSAGES):
            await node.publish(OutboundBroadcast(f"realtime:room{i % CHANNELS}", "msg", {"n": i}))
        return (time.perf_counter() - start) / MESSAGES * 1e6


async def main() -> None:
    for size in (100, 0):
        print(f"history_size={size}: {await cost_us(size):.1f} us per publish")


if __name__ == "__main__":
    asyncio.run(main())
