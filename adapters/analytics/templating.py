"""Rendering a ClickHouse migration for one database, single node or cluster.

The placeholders are documented at the top of
``migrations/clickhouse/0001_raw_tables.sql``; this module substitutes exactly those
and refuses any other ``{...}``, so a typo fails the migration instead of reaching
ClickHouse. Substitution is one regex pass: the ``{uuid}``/``{shard}``/``{replica}``
macros it writes into replicated engines are never rescanned.
"""

from __future__ import annotations

import re

from adapters.analytics.client import IDENTIFIER
from adapters.store.migrate import MigrationError

CLUSTER_ONLY = "-- cluster only"
REPLICA_ARGS = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'"
"""ClickHouse's own default replica path: keyed by the table's uuid, so it survives
EXCHANGE TABLES (a rebuild's swap)."""

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^{}]*))?\}")
_ENGINE = re.compile(r"^\s*([A-Za-z]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def render(sql: str, database: str, cluster: str | None) -> list[str]:
    """The statements of one migration file, ready to run one by one."""
    if not IDENTIFIER.match(database):
        raise MigrationError(f"not a database name: {database!r}")
    out = []
    for statement in split_statements(sql):
        lines = statement.splitlines()
        if cluster is None and any(line.strip() == CLUSTER_ONLY for line in lines):
            continue
        code = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
        rendered = _substitute(code.strip(), database, cluster)
        out.append("\n".join(line.rstrip() for line in rendered.splitlines()))  # an empty {on_cluster}
    return out


def split_statements(sql: str) -> list[str]:
    """Statements end with ``;`` at the end of a line (the house rule of these files);
    comment-only chunks (a file's trailing notes) are dropped. The ``;`` is removed:
    clients append their own FORMAT clause after the statement."""
    out, chunk = [], []
    for line in sql.splitlines():
        chunk.append(line)
        if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            out.append("\n".join(chunk).rstrip().removesuffix(";"))
            chunk = []
    if any(line.strip() and not line.lstrip().startswith("--") for line in chunk):
        raise MigrationError(f"a statement does not end with ';': {' '.join(chunk)[:80]!r}")
    return out


def _substitute(statement: str, database: str, cluster: str | None) -> str:
    def one(match: re.Match[str]) -> str:
        name, arg = match[1], match[2]
        if arg is None and name == "db":
            return database
        if arg is None and name == "local":
            return "" if cluster is None else "_local"
        if arg is None and name == "on_cluster":
            return "" if cluster is None else f"ON CLUSTER '{cluster}'"
        if arg is None and name == "cluster" and cluster is not None:
            return cluster
        if arg is not None and name == "engine":
            return engine(arg, cluster)
        raise MigrationError(f"unknown placeholder {match[0]} in: {statement[:80]!r}")

    return _PLACEHOLDER.sub(one, statement)


def engine(spec: str, cluster: str | None) -> str:
    """``ReplacingMergeTree(version)`` as is on a single node; its Replicated twin (replica
    path first, then the engine's own arguments) in cluster mode."""
    match = _ENGINE.match(spec)
    if not match or not match[1].endswith("MergeTree"):
        raise MigrationError(f"{{engine:...}} takes a MergeTree-family engine, not {spec!r}")
    name, args = match[1], (match[2] or "").strip()
    if cluster is None:
        return f"{name}({args})" if args else name
    return f"Replicated{name}({REPLICA_ARGS}{', ' + args if args else ''})"
