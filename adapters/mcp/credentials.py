"""Who the MCP server acts as: the bearer token in ``FLEETLOG_TOKEN``.

The token is verified with the same ``TokenAuthority`` and signing secret as the HTTP
API, so it means the same ``Identity`` (subject, tenant, roles) in both. It comes from
the environment, never a flag, so it does not show in ``ps``. It is verified once at
start (a missing, forged or expired token stops the server before it serves anything)
and again on every tool call, so a token that expires mid-session stops working then,
as it would over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.auth import SecretError, TokenAuthority, Unauthenticated, load_secret
from adapters.bootstrap import Settings
from coordinator.identity import Identity
from domain.errors import DomainError

TOKEN_VAR = "FLEETLOG_TOKEN"
MINT_HINT = "mint one with `fleetlog token --tenant T --role R` (signed with this store's secret)"


class TokenRefused(DomainError):
    """The server's token is missing or does not verify: same code as HTTP's 401."""

    code = "unauthenticated"

    def __init__(self, reason: str):
        super().__init__(f"{TOKEN_VAR}: {reason}; {MINT_HINT}", reason=reason)


class Credentials:
    def __init__(self, authority: TokenAuthority, token: str):
        self._authority = authority
        self._token = token

    @classmethod
    def from_env(cls, environ: Mapping[str, str], settings: Settings) -> Credentials:
        """Read the token and the signing secret, and verify the token once.

        Raises ``TokenRefused``, or ``SecretError`` when no secret can be found or kept."""
        token = environ.get(TOKEN_VAR, "").strip()
        if not token:
            raise TokenRefused(
                "not set (the server acts only as the holder of a token: it has no other identity)"
            )
        try:
            secret = load_secret(environ, settings.data_dir, embedded=settings.database_url is None)
        except OSError as exc:  # the embedded secret lives in the data dir: unreadable or not a dir
            raise SecretError(
                f"cannot read or create the signing secret in {settings.data_dir}: {exc.strerror or exc}; "
                "check that --data-dir / FLEETLOG_DATA_DIR names a writable directory, or set "
                "FLEETLOG_JWT_SECRET",
                path=str(settings.data_dir),
            ) from None
        credentials = cls(TokenAuthority(secret), token)
        credentials.identity()
        return credentials

    def identity(self) -> Identity:
        try:
            return self._authority.verify(self._token)
        except Unauthenticated as exc:
            raise TokenRefused(str(exc.fields["reason"])) from None
