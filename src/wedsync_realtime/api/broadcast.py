"""`POST /api/broadcast`: Supabase's batch broadcast endpoint (reference notes §5).

Body `{"messages": [{"topic", "event", "payload", "private", "id"}]}` with `topic` the subtopic
(no `realtime:` prefix); answered 202. Only the `service_role` may call it here (Bearer token or
`apikey` header): 401 without a valid token, 403 for any other role.

Beyond Supabase (whose 202 has an empty body), the 202 lists each message's id and stream
position, and `duplicate: true` for a message whose `id` was already published on its channel
within the idempotency window: it is not delivered again, so a caller may retry a batch safely.
An `Idempotency-Key` header gives ids to the messages that have none: the key itself for a
one-message batch, `<key>:<index>` otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, Field

from wedsync_realtime.api.deps import get_node, service_caller
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.engine.history import MAX_MESSAGE_ID_LENGTH
from wedsync_realtime.engine.node import Node
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.session import CHANNEL_PREFIX

__all__ = ["BroadcastBatch", "router"]

router = APIRouter(tags=["broadcast"])


class BroadcastItem(BaseModel):
    topic: str = Field(min_length=1, description="Channel name without the `realtime:` prefix")
    event: str = Field(min_length=1)
    payload: dict[str, Any]
    private: bool = False
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MESSAGE_ID_LENGTH,
        description="Message id, sent as `meta.id`; publishing an id again is a no-op",
    )


class BroadcastBatch(BaseModel):
    messages: list[BroadcastItem] = Field(min_length=1, max_length=1000)


class PublishedItem(BaseModel):
    id: str
    offset: int | None = Field(default=None, description="Position in the channel's stream")
    epoch: str | None = None
    duplicate: bool = Field(default=False, description="Already published: not sent again")


class BroadcastAccepted(BaseModel):
    messages: list[PublishedItem]


@router.post("/api/broadcast", status_code=202)
@router.post("/realtime/v1/api/broadcast", status_code=202, include_in_schema=False)
async def broadcast(
    batch: BroadcastBatch,
    node: Annotated[Node, Depends(get_node)],
    _principal: Annotated[Principal, Depends(service_caller)],
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=MAX_MESSAGE_ID_LENGTH - 6)
    ] = None,
) -> BroadcastAccepted:
    """Broadcast each message to its channel's subscribers, in order."""
    limit = node.settings.max_payload_bytes
    for index, item in enumerate(batch.messages):
        size = len(orjson.dumps(item.payload))
        if size > limit:
            raise HTTPException(
                status_code=422,
                detail={
                    "message": f"messages[{index}].payload: Payload size exceeds the limit "
                    f"of {limit} bytes ({size} bytes)"
                },
            )
    results = []
    single = len(batch.messages) == 1
    for index, item in enumerate(batch.messages):
        message_id = item.id
        if message_id is None and idempotency_key is not None:
            message_id = idempotency_key if single else f"{idempotency_key}:{index}"
        published = await node.publish(
            OutboundBroadcast(
                topic=CHANNEL_PREFIX + item.topic, event=item.event, payload=item.payload
            ),
            message_id=message_id,
        )
        results.append(PublishedItem(**published.ack()))
    return BroadcastAccepted(messages=results)
