"""What a command runs with: settings (which store), who is asking, and the Fleet,
opened on first use and closed by ``main``.

Until HTTP tokens exist the CLI is a trusted local operator: it holds every role, in
one tenant (``--tenant``) or across all of them (``--all-tenants``).
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from adapters.bootstrap import Settings, build_app
from adapters.cli.errors import ConflictingOptions, MigrationFailed, ScopeRequired, StoreUnreachable
from adapters.store.migrate import MigrationError
from coordinator.errors import Unavailable
from coordinator.fleet import Fleet
from coordinator.identity import Identity


class Scope(StrEnum):
    NONE = "none"
    """Needs no identity (migrate, reap, schedule)."""
    OPTIONAL = "optional"
    """The tenant if one is given, else fleet-wide. Writes that need a tenant (submit)
    are refused by the coordinator with its own TenantRequired message."""
    REQUIRED = "required"
    """Reads and acts on jobs: --tenant or an explicit --all-tenants."""


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    if args.data_dir and args.database_url:
        raise ConflictingOptions("--data-dir", "--database-url", "pass one: the embedded store or PostgreSQL")
    env = dict(environ)
    if args.data_dir:
        env.pop("DATABASE_URL", None)  # an explicit --data-dir beats DATABASE_URL in the environment
    return Settings.from_env(
        env,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        database_url=args.database_url,
        # One short-lived process runs one command at a time: a small pool is plenty.
        pool_size=1,
        max_overflow=4,
    )


def default_subject() -> str:
    try:
        return getpass.getuser() or "cli"
    except (OSError, KeyError, ImportError):  # no USER/LOGNAME and no passwd entry
        return "cli"


def identity_from(
    args: argparse.Namespace, environ: Mapping[str, str], scope: Scope, command: str
) -> Identity | None:
    if scope is Scope.NONE:
        return None
    if args.all_tenants and args.tenant:
        raise ConflictingOptions("--tenant", "--all-tenants", "pass --tenant for one tenant, or neither")
    subject = args.subject or default_subject()
    if args.all_tenants:
        return Identity.of(subject, None)
    tenant = args.tenant or environ.get("FLEETLOG_TENANT") or None
    if tenant is None and scope is Scope.REQUIRED:
        raise ScopeRequired(f"fleetlog {command}")
    return Identity.of(subject, tenant)


@contextmanager
def store_errors(settings: Settings) -> Iterator[None]:
    """The composition root reports a store it cannot open as ``Unavailable``; say it in
    the CLI's terms (which flag or variable to check)."""
    try:
        yield
    except Unavailable as exc:
        cause = exc.__cause__
        if isinstance(cause, MigrationError):
            raise MigrationFailed(settings.describe(), str(cause)) from None
        text = str(cause or exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        raise StoreUnreachable(
            settings.describe(), detail, postgres=settings.database_url is not None
        ) from None


class Invocation:
    """One command's run: its settings, its identity, and a Fleet opened lazily."""

    def __init__(self, settings: Settings, identity: Identity | None):
        self.settings = settings
        self._identity = identity
        self._fleet: Fleet | None = None

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise RuntimeError("this command was registered with Scope.NONE: it has no identity")
        return self._identity

    @property
    def fleet(self) -> Fleet:
        if self._fleet is None:
            with store_errors(self.settings):
                self._fleet = build_app(self.settings)
        return self._fleet

    def close(self) -> None:
        if self._fleet is not None:
            self._fleet.close()
            self._fleet = None
