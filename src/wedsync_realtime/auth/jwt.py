"""JWT verification (HS256) with Supabase's rules and error texts.

`supabase/realtime` `jwt_verification.ex` / `channels_authorization.ex`: `exp` is required and in
the future, `role` is required, `sub` names the user. Connect-time failures are answered before
the upgrade with HTTP 401 and `{"error": "<text>"}` (reference notes §4.1); the texts here are the
same ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from wedsync_realtime.errors import AuthError, ErrorCode

__all__ = ["SERVICE_ROLE", "Principal", "TokenVerifier"]

SERVICE_ROLE = "service_role"


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller."""

    user_id: str
    role: str
    claims: Mapping[str, Any] = field(repr=False)
    expires_at: float
    token: str = field(repr=False)

    @property
    def subject(self) -> str | None:
        """The JWT `sub`, or None for keys without one (the anon key): per-user limits apply
        only to callers with a subject, or every anonymous client would share one budget."""
        sub = self.claims.get("sub")
        return str(sub) if sub is not None else None

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE

    @property
    def tier(self) -> str:
        """The `tier` claim inside `app_metadata`, `free` when absent."""
        meta = self.claims.get("app_metadata")
        tier = meta.get("tier") if isinstance(meta, Mapping) else None
        return tier if isinstance(tier, str) and tier else "free"


class TokenVerifier:
    """Verifies HS256 tokens signed with one secret."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock

    def verify(self, token: str | None) -> Principal:
        """Verify `token` and return its principal.

        Raises:
            AuthError: missing, malformed, wrongly signed, expired, or without `role`/`exp`.
        """
        if not token:
            raise AuthError(ErrorCode.UNAUTHORIZED, "API key is missing")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                # Expiry is checked below against our clock, with Supabase's message.
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise AuthError(ErrorCode.JWT_SIGNATURE, "Failed to validate JWT signature") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(
                ErrorCode.INVALID_JWT, "The token provided is not a valid JWT"
            ) from None
        except jwt.PyJWTError:
            raise AuthError(
                ErrorCode.MALFORMED_JWT, "The token provided is not a valid JWT"
            ) from None
        exp, role = claims.get("exp"), claims.get("role")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or not isinstance(role, str):
            raise AuthError(ErrorCode.INVALID_JWT, "Fields `role` and `exp` are required in JWT")
        expired_for = self._clock() - round(exp)
        if expired_for >= 0:
            seconds = max(1, math.ceil(expired_for))
            raise AuthError(ErrorCode.TOKEN_EXPIRED, f"Token has expired {seconds} seconds ago")
        sub = claims.get("sub")
        # A token without `sub` (an anon or service key) is a caller without a user id.
        user_id = str(sub) if sub is not None else f"{role}:anonymous"
        # Supabase rounds decimal `exp`; expiry timers must use the same rounded instant, or
        # they wake while the token is still valid.
        return Principal(
            user_id=user_id, role=role, claims=claims, expires_at=float(round(exp)), token=token
        )

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign `claims` with the same secret (the `token` command and tests)."""
        return jwt.encode(dict(claims), self._secret, algorithm="HS256")
