"""JWT verification with Supabase's rules and error texts (reference notes §4.1), fake clock."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from wedsync_realtime.auth.jwt import Principal, TokenVerifier
from wedsync_realtime.errors import AuthError, ErrorCode

# 64 bytes or more: PyJWT warns about shorter HMAC keys, and HS512 needs 64.
SECRET = "unit-test-secret-for-wedsync-realtime-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-that-is-also-long-enough-for-every-hmac-0123456789"
NOW = 1_700_000_000.0


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(SECRET, clock=lambda: NOW)


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    body = {"sub": "user-1", "role": "authenticated", "exp": NOW + 3600, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, secret, algorithm=algorithm)


def test_valid_token(verifier: TokenVerifier) -> None:
    raw = token(email="a@example.com")
    principal = verifier.verify(raw)
    assert principal.user_id == "user-1"
    assert principal.role == "authenticated"
    assert principal.expires_at == NOW + 3600
    assert principal.token == raw
    assert principal.claims["email"] == "a@example.com"
    assert not principal.is_service
    assert principal.tier == "free"


def test_supabase_style_token_with_audience_and_iat(verifier: TokenVerifier) -> None:
    # Supabase user tokens carry `aud: "authenticated"`; no audience is configured here.
    principal = verifier.verify(token(aud="authenticated", iat=int(NOW) - 10, iss="supabase"))
    assert principal.user_id == "user-1"


def test_sign_round_trips(verifier: TokenVerifier) -> None:
    raw = verifier.sign({"sub": "u9", "role": "anon", "exp": NOW + 5})
    assert verifier.verify(raw).user_id == "u9"


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_token(verifier: TokenVerifier, missing: str | None) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(missing)
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert info.value.message == "API key is missing"
    assert info.value.reason == "Unauthorized: API key is missing"


@pytest.mark.parametrize(
    "garbage", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30", token()[:-30] + "!!!"]
)
def test_garbage_token(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(garbage)
    assert info.value.code is ErrorCode.MALFORMED_JWT
    assert info.value.message == "The token provided is not a valid JWT"


def test_wrong_signature(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(token(secret=OTHER_SECRET))
    assert info.value.code is ErrorCode.JWT_SIGNATURE
    assert info.value.message == "Failed to validate JWT signature"


def test_tampered_claims_fail_the_signature(verifier: TokenVerifier) -> None:
    header, _, signature = token().split(".")
    forged = jwt.encode({"sub": "admin", "role": "service_role", "exp": NOW + 60}, "x" * 64)
    with pytest.raises(AuthError) as info:
        verifier.verify(f"{header}.{forged.split('.')[1]}.{signature}")
    assert info.value.code is ErrorCode.JWT_SIGNATURE


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused(verifier: TokenVerifier, algorithm: str) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(token(algorithm=algorithm))
    assert info.value.code is ErrorCode.INVALID_JWT
    assert info.value.message == "The token provided is not a valid JWT"


def test_unsigned_token_is_refused(verifier: TokenVerifier) -> None:
    unsigned = jwt.encode({"sub": "u", "role": "service_role", "exp": NOW + 60}, None, "none")
    with pytest.raises(AuthError) as info:
        verifier.verify(unsigned)
    assert info.value.message == "The token provided is not a valid JWT"


@pytest.mark.parametrize(("expired_for", "seconds"), [(30, 30), (1, 1), (0, 1), (86400, 86400)])
def test_expired_token(verifier: TokenVerifier, expired_for: int, seconds: int) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(token(exp=int(NOW) - expired_for))
    assert info.value.code is ErrorCode.TOKEN_EXPIRED
    assert info.value.message == f"Token has expired {seconds} seconds ago"


def test_expiry_follows_the_injected_clock() -> None:
    now = [NOW]
    verifier = TokenVerifier(SECRET, clock=lambda: now[0])
    raw = token(exp=NOW + 10)
    assert verifier.verify(raw).user_id == "user-1"
    now[0] = NOW + 9.5
    assert verifier.verify(raw).user_id == "user-1"
    now[0] = NOW + 25
    with pytest.raises(AuthError, match="Token has expired 15 seconds ago"):
        verifier.verify(raw)


@pytest.mark.parametrize(
    "claims",
    [
        {"role": None},
        {"exp": None},
        {"role": None, "exp": None},
        {"role": 5},
        {"exp": "tomorrow"},
        {"exp": True},
    ],
)
def test_role_and_exp_are_required(verifier: TokenVerifier, claims: dict[str, Any]) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(token(**claims))
    assert info.value.code is ErrorCode.INVALID_JWT
    assert info.value.message == "Fields `role` and `exp` are required in JWT"


def test_decimal_exp_is_accepted_and_rounded_as_supabase_does(verifier: TokenVerifier) -> None:
    # Expiry timers use this instant, so it must be the one `verify` itself checks against.
    assert verifier.verify(token(exp=NOW + 100.4)).expires_at == NOW + 100
    assert verifier.verify(token(exp=NOW + 100.6)).expires_at == NOW + 101


@pytest.mark.parametrize(
    ("app_metadata", "tier"),
    [
        ({"tier": "paid"}, "paid"),
        ({"tier": "enterprise", "provider": "email"}, "enterprise"),
        ({"provider": "email"}, "free"),
        ({"tier": ""}, "free"),
        ({"tier": 3}, "free"),
        ("paid", "free"),
        (None, "free"),
    ],
)
def test_tier_from_app_metadata(verifier: TokenVerifier, app_metadata: Any, tier: str) -> None:
    assert verifier.verify(token(app_metadata=app_metadata)).tier == tier


def test_tier_is_not_read_from_user_metadata(verifier: TokenVerifier) -> None:
    # user_metadata is writable by the user; only app_metadata may grant a tier.
    principal = verifier.verify(token(user_metadata={"tier": "enterprise"}))
    assert principal.tier == "free"


@pytest.mark.parametrize(
    ("role", "user_id"), [("anon", "anon:anonymous"), ("service_role", "service_role:anonymous")]
)
def test_token_without_sub(verifier: TokenVerifier, role: str, user_id: str) -> None:
    principal = verifier.verify(token(sub=None, role=role))
    assert principal.user_id == user_id
    assert principal.is_service is (role == "service_role")


def test_principal_repr_hides_the_token(verifier: TokenVerifier) -> None:
    raw = token()
    principal = verifier.verify(raw)
    assert raw not in repr(principal)
    assert isinstance(principal, Principal)
