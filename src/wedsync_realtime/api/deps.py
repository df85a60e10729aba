"""Dependencies shared by the REST endpoints: the node, and the caller's verified token.

Tokens come as `Authorization: Bearer <jwt>` or in an `apikey` header; Authorization wins, as in
Supabase's `AuthTenant` plug. Errors keep Supabase's REST shape `{"message": ...}`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.engine.node import Node
from wedsync_realtime.errors import AuthError

__all__ = ["caller", "get_node", "service_caller"]


async def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


async def caller(
    node: Annotated[Node, Depends(get_node)],
    authorization: Annotated[str | None, Header()] = None,
    apikey: Annotated[str | None, Header()] = None,
) -> Principal:
    """Whoever the token says; 401 without a valid token."""
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    token = token or apikey
    try:
        return node.verifier.verify(token)
    except AuthError as exc:
        raise HTTPException(status_code=401, detail={"message": exc.message}) from None


async def service_caller(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """The caller, who must be the service role (our own back end); 403 for anyone else."""
    if not principal.is_service:
        raise HTTPException(
            status_code=403, detail={"message": "Only the service role may call this endpoint"}
        )
    return principal
