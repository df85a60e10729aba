"""`GET /api/channels/{name}/history`: a channel's retained messages, for an authorized caller.

Centrifugo's history API (reference/centrifugo-phoenix-collab.md §1.2): oldest first, at most
`limit`, optionally after a position (`since_offset` + `epoch`) or since a time (`since_ms`);
`recoverable` says whether nothing in the range asked for has been dropped, and `position` is
the stream's top — a caller that loads state elsewhere reads `limit=0` first to learn where to
resume from. Binary payloads are returned base64-encoded.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from wedsync_realtime.api.deps import caller, get_node
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action
from wedsync_realtime.backends.base import StreamPosition
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import ChannelError
from wedsync_realtime.protocol.frames import PayloadEncoding
from wedsync_realtime.protocol.session import CHANNEL_PREFIX

__all__ = ["router"]

router = APIRouter(tags=["history"])


class Position(BaseModel):
    offset: int
    epoch: str


class HistoryMessage(BaseModel):
    id: str
    offset: int
    time_ms: int = Field(description="When the server accepted it, ms since the Unix epoch")
    event: str
    payload: Any = Field(description="The JSON payload, or base64 text when `binary`")
    binary: bool = False


class ChannelHistory(BaseModel):
    channel: str
    position: Position = Field(description="The stream's newest position")
    recoverable: bool = Field(description="False when part of the asked range is gone")
    messages: list[HistoryMessage]


@router.get(
    "/api/channels/{name}/history",
    responses={401: {}, 403: {}, 404: {}, 422: {}},
)
async def channel_history(
    name: str,
    node: Annotated[Node, Depends(get_node)],
    principal: Annotated[Principal, Depends(caller)],
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    since_offset: Annotated[int | None, Query(ge=0)] = None,
    epoch: str | None = None,
    since_ms: Annotated[int | None, Query(ge=0)] = None,
    private: bool = False,
) -> ChannelHistory:
    """Messages the channel still holds; the caller needs read access to the channel."""
    if (since_offset is None) != (epoch is None):
        raise HTTPException(422, {"message": "give `since_offset` and `epoch` together"})
    if since_offset is not None and since_ms is not None:
        raise HTTPException(422, {"message": "give `since_offset` or `since_ms`, not both"})
    try:
        await node.require(principal, name, Action.SUBSCRIBE, private, "read from")
    except ChannelError as exc:
        raise HTTPException(403, {"message": exc.message}) from None
    topic = CHANNEL_PREFIX + name
    if node.history_rule(topic) is None:
        raise HTTPException(404, {"message": f"Channel {name} keeps no history"})
    since = StreamPosition(since_offset, epoch) if since_offset is not None and epoch else None
    read = await node.history.read(topic, since=since, since_ms=since_ms, limit=limit)
    return ChannelHistory(
        channel=name,
        position=Position(offset=read.top.offset, epoch=read.top.epoch),
        recoverable=read.recoverable,
        messages=[
            _message(entry.id, entry.offset, entry.time_ms, entry.body) for entry in read.entries
        ],
    )


def _message(message_id: str, offset: int, time_ms: int, body: dict[str, Any]) -> HistoryMessage:
    binary = body["encoding"] == PayloadEncoding.BINARY
    payload: Any = base64.b64encode(body["raw"]).decode() if binary else body["payload"]
    return HistoryMessage(
        id=message_id,
        offset=offset,
        time_ms=time_ms,
        event=body["event"],
        payload=payload,
        binary=binary,
    )
