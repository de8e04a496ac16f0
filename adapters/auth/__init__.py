"""Bearer tokens: HS256 JWTs carrying who is asking (``sub``), their tenant and roles.

HTTP, MCP and ``fleetlog token`` share this one module, so a token means the same
``Identity`` wherever it is presented."""

from __future__ import annotations

from adapters.auth.secret import SecretError, load_secret
from adapters.auth.tokens import TokenAuthority, Unauthenticated

__all__ = ["SecretError", "TokenAuthority", "Unauthenticated", "load_secret"]
