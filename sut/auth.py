"""JWT bearer tokens: HS256 only, claims sub (user id as a string), role, exp."""

from __future__ import annotations

import time

import jwt

from sut.domain import Principal, Role

ALGORITHM = "HS256"
# tokens verified already, until their exp: a client sends the same token with every request, and checking its
# signature again was 4 % of an inbox request's CPU. Only valid tokens are kept; the oldest entry goes first.
VERIFIED_MAX = 10_000
_verified: dict[tuple[str, str], tuple[Principal, int]] = {}


class AuthError(Exception):
    """The token is missing, malformed, expired, forged or uses another algorithm."""


def encode_token(secret: str, *, user_id: int, role: Role, ttl: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "role": role.value, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> Principal:
    known = _verified.get((secret, token))
    if known is not None and known[1] > time.time():   # PyJWT's rule: valid while exp > now
        return known[0]
    principal, exp = _verify(secret, token)
    if len(_verified) >= VERIFIED_MAX:
        del _verified[next(iter(_verified))]
    _verified[(secret, token)] = (principal, exp)
    return principal


def _verify(secret: str, token: str) -> tuple[Principal, int]:
    try:
        # algorithms pinned: 'none', RS256 with the secret as a public key and every other alg are refused
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    sub, role = claims.get("sub"), claims.get("role")
    if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit() or len(sub) > 19 \
            or not 0 < int(sub) < 2**63:
        raise AuthError("invalid token: sub must be a positive integer user id")
    if role not in (Role.CUSTOMER.value, Role.ARTIST.value):
        raise AuthError("invalid token: role must be customer or artist")
    return Principal(user_id=int(sub), role=Role(role)), int(claims["exp"])   # PyJWT accepts integers only


def bearer(header: str | None) -> str:
    """The token from an Authorization header value."""
    if not header:
        raise AuthError("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'")
    return token.strip()
