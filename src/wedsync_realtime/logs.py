"""Logging set-up: one format, and no secrets in log lines."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactTokens", "configure_logging", "install_log_filters"]

# Query parameters and headers that carry JWTs (uvicorn logs headers at DEBUG).
_TOKEN_PARAM = re.compile(
    r"(apikey=|x-api-key:\s*|authorization:\s*bearer\s+|apikey:\s*)[^&\s\"']+", re.IGNORECASE
)
# uvicorn's sans-I/O WebSocket protocol logs this after every denial response we send before the
# upgrade (it never marks a denied handshake as complete); our endpoint always either accepts or
# denies, so for us the line is always spurious.
_SPURIOUS = "ASGI callable returned without completing handshake."


class RedactTokens(logging.Filter):
    """Masks tokens (`apikey=` query values, `x-api-key`/`apikey`/`authorization` headers)
    that uvicorn puts into its log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _SPURIOUS:
            return False
        if record.args:
            record.args = tuple(
                _TOKEN_PARAM.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_PARAM.sub(r"\1[redacted]", record.msg)
        return True


def configure_logging(level: str) -> None:
    """Process-wide logging for `serve`."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def install_log_filters() -> None:
    """Keep tokens out of uvicorn's log lines (idempotent)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
