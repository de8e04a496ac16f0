"""``fleetlog token``: mint a bearer token for the HTTP API and MCP.

Whoever can run this holds the signing secret (``FLEETLOG_JWT_SECRET``, or the
embedded data directory's), so it is an operator command: it can mint any role, and
``--all-tenants`` mints a fleet-wide token (a worker serving every tenant, or an
operator). The token goes to stdout and nothing else does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from adapters.auth import TokenAuthority, load_secret
from adapters.bootstrap import Settings
from adapters.cli.context import default_subject
from coordinator.identity import Role
from domain.errors import DomainError

DEFAULT_TTL_SECONDS = 3600


def _roles(text: str) -> list[Role]:
    out = []
    for part in text.split(","):
        name = part.strip()
        try:
            out.append(Role(name))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{name}' is not a role: use {', '.join(r.value for r in Role)}"
            ) from None
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetlog token", description=__doc__)
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant", help="the tenant the token acts in")
    scope.add_argument(
        "--all-tenants", action="store_true", help="a fleet-wide token (operators, shared workers)"
    )
    p.add_argument(
        "--role",
        type=_roles,
        action="append",
        required=True,
        help="admin, submitter, worker or reader; repeat or separate with commas",
    )
    p.add_argument(
        "--ttl", type=float, default=DEFAULT_TTL_SECONDS, help="seconds until it expires (default 3600)"
    )
    p.add_argument("--subject", default=None, help="who the token names (default: OS user name)")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", type=Path, help="embedded store directory holding the secret")
    store.add_argument("--database-url", help="with PostgreSQL the secret must come from FLEETLOG_JWT_SECRET")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = dict(os.environ)
    if args.data_dir:
        env.pop("DATABASE_URL", None)
    try:
        settings = Settings.from_env(env, data_dir=args.data_dir, database_url=args.database_url)
        authority = TokenAuthority(
            load_secret(env, settings.data_dir, embedded=settings.database_url is None)
        )
        token = authority.issue(
            args.subject or default_subject(),
            None if args.all_tenants else args.tenant,
            [role for group in args.role for role in group],
            ttl_seconds=args.ttl,
            now=datetime.now(UTC),
        )
    except DomainError as exc:
        sys.stderr.write(f"fleetlog token: {exc.message}\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0
