"""Minting and verifying tokens (PyJWT, HS256 only: ``alg=none`` and every other
algorithm are refused before the signature is even looked at)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.errors import CoordinatorError, InvalidRequest, validation_errors
from coordinator.identity import Identity, Role
from domain.job.spec import TenantName

ALGORITHM = "HS256"
LEEWAY_SECONDS = 5
"""Clock skew tolerated between the minter and the verifier."""
MAX_TTL_SECONDS = 366 * 86_400
VERIFIED_CACHE_SIZE = 4096
"""Distinct tokens whose verification is remembered (a worker presents the same token on
every request; decoding and checking the HMAC again cost ~15% of the server's CPU)."""


class Unauthenticated(CoordinatorError):
    """No usable credentials: the HTTP layer answers 401."""

    code = "unauthenticated"

    def __init__(self, reason: str):
        super().__init__(
            f"{reason}; send `Authorization: Bearer <token>` with a token from "
            "`fleetlog token --tenant T --role R`",
            reason=reason,
        )


class TokenClaims(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: Annotated[str, Field(min_length=1, max_length=200)]
    tenant: TenantName | None = None
    """None: fleet-wide (minted only with ``--all-tenants``)."""
    roles: Annotated[tuple[Role, ...], Field(min_length=1, max_length=4)]
    exp: int
    iat: int | None = None


class TokenAuthority:
    def __init__(self, secret: bytes, *, cache_size: int = VERIFIED_CACHE_SIZE):
        self._secret = secret
        # token text -> (identity, exp). Keyed by the whole token, signature included, so
        # only a byte-identical copy of a token that passed every check can hit; expiry is
        # checked again on every hit.
        self._verified: OrderedDict[str, tuple[Identity, int]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def issue(
        self,
        subject: str,
        tenant: str | None,
        roles: Collection[Role],
        *,
        ttl_seconds: float,
        now: datetime,
    ) -> str:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidRequest(
                "token",
                [{"loc": "ttl", "msg": f"use 1 to {MAX_TTL_SECONDS} seconds", "type": "range"}],
            )
        issued = int(now.timestamp())
        try:
            claims = TokenClaims(
                sub=subject,
                tenant=tenant,
                roles=tuple(sorted(set(roles))),
                iat=issued,
                exp=issued + int(ttl_seconds),
            )
        except ValidationError as exc:
            raise InvalidRequest("token", validation_errors(exc)) from None
        return jwt.encode(claims.model_dump(), self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Identity:
        with self._lock:
            hit = self._verified.get(token)
            if hit is not None:
                identity, exp = hit
                if time.time() <= exp + LEEWAY_SECONDS:
                    self._verified.move_to_end(token)
                    return identity
                del self._verified[token]
                raise Unauthenticated("the token has expired")
        identity, exp = self._decode(token)
        if self._cache_size > 0:
            with self._lock:
                self._verified[token] = (identity, exp)
                if len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)
        return identity

    def _decode(self, token: str) -> tuple[Identity, int]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "roles"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated(f"the token is not signed with {ALGORITHM}") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature does not match this server's secret") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no '{exc.claim}' claim") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is malformed ({exc})") from None
        try:
            claims = TokenClaims.model_validate(payload)
        except ValidationError as exc:
            where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise Unauthenticated(f"the token's claims are invalid ({where})") from None
        return Identity(claims.sub, claims.tenant, frozenset(claims.roles)), claims.exp
