"""Where the token signing secret comes from.

``FLEETLOG_JWT_SECRET`` when set (required with PostgreSQL: every server and token
minter of a fleet must share it). In embedded mode without it, a random secret is
generated once into ``<data dir>/jwt.secret`` (mode 0600) and reused; it is never
printed or logged.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from domain.errors import DomainError

ENV_VAR = "FLEETLOG_JWT_SECRET"
SECRET_FILE = "jwt.secret"
MIN_SECRET_BYTES = 32
"""HS256 wants a key at least as long as its 256-bit hash (RFC 7518 3.2)."""


class SecretError(DomainError):
    code = "jwt-secret"


def load_secret(environ: Mapping[str, str], data_dir: Path, *, embedded: bool) -> bytes:
    configured = environ.get(ENV_VAR)
    if configured:
        secret = configured.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretError(
                f"{ENV_VAR} is {len(secret)} bytes long; use at least {MIN_SECRET_BYTES} random bytes, "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
                length=len(secret),
            )
        return secret
    if not embedded:
        raise SecretError(
            f"set {ENV_VAR} (at least {MIN_SECRET_BYTES} random bytes, the same on every server and "
            "wherever tokens are minted): with DATABASE_URL there is no data directory to keep one in"
        )
    return _embedded_secret(data_dir / SECRET_FILE)


def _embedded_secret(path: Path) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_urlsafe(48).encode()
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(fresh)
            out.flush()
            os.fsync(out.fileno())
        # link() fails if another process won the race: then everyone uses its secret.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(
            f"{path} holds a secret of {len(secret)} bytes; delete the file to generate a new one "
            "(tokens signed with the old secret stop working)",
            path=str(path),
        )
    return secret
