"""Applying ``migrations/<backend>/NNNN_name.sql`` in order, once each, tracked in
``fleet_schema_migrations`` (version, name, checksum, applied_at)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import psycopg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x666C6565746C6F67  # "fleetlog": serialises concurrent migrators


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def migrations(backend: str) -> list[Migration]:
    folder = resources.files("migrations").joinpath(backend)
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    for expected, m in enumerate(found, start=1):
        if m.version != expected:
            raise MigrationError(f"migrations/{backend}: expected {expected:04d}, found {m.version:04d}")
    return found


def _check_applied(applied: dict[int, str], backend: str) -> None:
    known = {m.version: m for m in migrations(backend)}
    for version, checksum in applied.items():
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"the database has migration {version:04d}, which this Fleetlog does not know: "
                "it was migrated by a newer version; upgrade Fleetlog"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{m.name} changed after it was applied; migrations "
                "are forward-only: restore the file and add a new migration instead"
            )


_CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS fleet_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at text NOT NULL
)"""


def migrate_postgres(url: str) -> list[Migration]:
    """Apply pending migrations in one transaction; returns what was applied."""
    with psycopg.connect(url, autocommit=False, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(_CREATE_TRACKING)
        rows = conn.execute("SELECT version, checksum FROM fleet_schema_migrations").fetchall()
        applied = {int(v): c for v, c in rows}
        _check_applied(applied, "postgres")
        done = []
        for m in migrations("postgres"):
            if m.version in applied:
                continue
            conn.execute(m.sql.encode())  # no parameters: simple protocol, many statements
            conn.execute(
                "INSERT INTO fleet_schema_migrations VALUES (%s, %s, %s, %s)",
                (m.version, m.name, m.checksum, datetime.now(UTC).isoformat()),
            )
            done.append(m)
        conn.commit()
        return done


def _statements(sql: str) -> list[str]:
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf)
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") for ln in buf.splitlines() if ln.strip()):
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {buf[:80]!r}")
    return out


def migrate_sqlite(path: Path) -> list[Migration]:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_CREATE_TRACKING)
        applied = dict(conn.execute("SELECT version, checksum FROM fleet_schema_migrations").fetchall())
        _check_applied(applied, "sqlite")
        done = []
        for m in migrations("sqlite"):
            if m.version in applied:
                continue
            for statement in _statements(m.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO fleet_schema_migrations VALUES (?, ?, ?, ?)",
                (m.version, m.name, m.checksum, datetime.now(UTC).isoformat()),
            )
            done.append(m)
        conn.execute("COMMIT")
        return done
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
