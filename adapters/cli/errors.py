"""Errors the command line raises itself (bad arguments, unreadable input, an
unreachable store). They subclass ``DomainError`` so the one boundary in ``main``
reports them exactly like the coordinator's own refusals."""

from __future__ import annotations

import json

from domain.errors import DomainError


class CliError(DomainError):
    code = "cli-error"


class InvalidJson(CliError):
    code = "invalid-json"

    def __init__(self, flag: str, exc: json.JSONDecodeError):
        super().__init__(
            f"{flag} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); "
            f'quote the whole value for your shell, e.g. {flag} \'{{"key": "value"}}\'',
            flag=flag,
            line=exc.lineno,
            column=exc.colno,
        )


class WrongJsonType(CliError):
    code = "invalid-json"

    def __init__(self, flag: str, expected: str, got: object):
        super().__init__(
            f"{flag} must be a JSON {expected}, not {type(got).__name__}",
            flag=flag,
            expected=expected,
        )


class InputUnreadable(CliError):
    code = "input-unreadable"

    def __init__(self, flag: str, path: str, reason: str):
        super().__init__(f"{flag}: cannot read {path}: {reason}", flag=flag, path=path)


class ScopeRequired(CliError):
    """A command that reads or acts on jobs was given no tenant scope at all."""

    code = "tenant-required"

    def __init__(self, action: str):
        super().__init__(
            f"{action} needs a scope: pass --tenant T (or set FLEETLOG_TENANT) for one "
            "tenant, or --all-tenants to act across every tenant",
            action=action,
        )


class ConflictingOptions(CliError):
    code = "conflicting-options"

    def __init__(self, first: str, second: str, advice: str):
        super().__init__(f"{first} and {second} cannot be used together: {advice}", options=[first, second])


class StoreUnreachable(CliError):
    """The store could not be opened or migrated (wrong URL, server down, bad path)."""

    code = "unavailable"
    retryable = True

    def __init__(self, store: str, detail: str, *, postgres: bool):
        advice = (
            "check --database-url / DATABASE_URL and that the server is running"
            if postgres
            else "check that --data-dir / FLEETLOG_DATA_DIR names a writable directory"
        )
        super().__init__(f"cannot open the store ({store}): {detail}; {advice}", store=store, detail=detail)


class MigrationFailed(CliError):
    code = "migration-failed"

    def __init__(self, store: str, detail: str):
        super().__init__(f"cannot migrate the store ({store}): {detail}", store=store, detail=detail)
