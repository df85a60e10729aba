"""`POST /api/broadcast`: Supabase's batch broadcast endpoint (reference notes §5).

Body `{"messages": [{"topic", "event", "payload", "private"}]}` with `topic` the subtopic (no
`realtime:` prefix); answered 202 with an empty body. Only the `service_role` may call it here
(Bearer token or `apikey` header): 401 without a valid token, 403 for any other role.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import AuthError
from wedsync_realtime.protocol.broadcast import OutboundBroadcast
from wedsync_realtime.protocol.session import CHANNEL_PREFIX

__all__ = ["BroadcastBatch", "router"]

router = APIRouter(tags=["broadcast"])


class BroadcastItem(BaseModel):
    topic: str = Field(min_length=1, description="Channel name without the `realtime:` prefix")
    event: str = Field(min_length=1)
    payload: dict[str, Any]
    private: bool = False
    id: str | None = Field(default=None, description="Optional message id, sent as `meta.id`")


class BroadcastBatch(BaseModel):
    messages: list[BroadcastItem] = Field(min_length=1, max_length=1000)


def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def service_principal(
    node: Annotated[Node, Depends(get_node)],
    authorization: Annotated[str | None, Header()] = None,
    apikey: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, who must be the service role. Authorization wins over apikey (AuthTenant)."""
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    token = token or apikey
    try:
        principal = node.verifier.verify(token)
    except AuthError as exc:
        raise HTTPException(status_code=401, detail={"message": exc.message}) from None
    if not principal.is_service:
        raise HTTPException(
            status_code=403, detail={"message": "Only the service role may broadcast"}
        )
    return principal


@router.post("/api/broadcast", status_code=202, response_class=Response)
@router.post(
    "/realtime/v1/api/broadcast", status_code=202, response_class=Response, include_in_schema=False
)
async def broadcast(
    batch: BroadcastBatch,
    node: Annotated[Node, Depends(get_node)],
    _principal: Annotated[Principal, Depends(service_principal)],
) -> Response:
    """Broadcast each message to its channel's subscribers."""
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
    for item in batch.messages:
        await node.publish(
            OutboundBroadcast(
                topic=CHANNEL_PREFIX + item.topic,
                event=item.event,
                payload=item.payload,
                meta={"id": item.id} if item.id else None,
            )
        )
    return Response(status_code=202)
