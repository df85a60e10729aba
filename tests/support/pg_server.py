"""A server on PostgreSQL with change capture on its own replication slot, for one test.

Kept apart from tests/support/cdc.py, which the benchmarks import (this module needs the test
server fixtures of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.conftest import RunningServer
from tests.support.cdc import drop_test_slot, unique_slot

__all__ = ["pg_server"]


@asynccontextmanager
async def pg_server(
    server_factory: Callable[..., Awaitable[RunningServer]], url: str, **overrides: Any
) -> AsyncIterator[RunningServer]:
    """`server_factory(database_url=url, cdc_slot_name=<a fresh slot>, **overrides)`; on exit
    the node is closed and then the slot dropped."""
    slot = unique_slot()
    server = await server_factory(database_url=url, cdc_slot_name=slot, **overrides)
    try:
        yield server
    finally:
        # The server stops with the factory; the slot must go after it has let go of it.
        await server.node.close()
        await drop_test_slot(url, slot)
