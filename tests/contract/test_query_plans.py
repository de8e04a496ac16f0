"""No named query walks a whole table to find its rows, whatever plan it was given.

A prepared statement's generic plan is made once and lasts the session (until the
table's statistics change): made while the tables are small, as on a new database, a
join that looks cheap then (hash the given rows, walk the table's primary key) walked
the whole jobs table on every claim, start and completion afterwards, ever slower as
jobs accumulated (found under the HTTP latency benchmark: PostgreSQL's CPU doubled and
jobs queued for tens of milliseconds). Here every named query is planned generically on
a freshly migrated, empty database, under the settings write transactions run with,
and every scan of a table must be bounded by an index condition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from adapters.sql import queries
from adapters.store.postgres import WRITE_BEGIN
from adapters.store.prepared import prepared_query

pytestmark = pytest.mark.postgres

READS_EVERYTHING = {
    "dump_jobs": "a rebuild check reads every row",
    "dump_queue": "a rebuild check reads every row",
    "dump_idempotency": "a rebuild check reads every row",
    "dump_edges": "a rebuild check reads every row",
    "dump_factories": "a rebuild check reads every row",
    "dump_profiles": "a rebuild check reads every row",
    "dump_tenants": "a rebuild check reads every row",
    "list_jobs": "a page of a listing walks the key order from its cursor, filtered",
    "list_factories": "lists every factory",
    "quota_tenants": "lists the tenants with quotas",
    "analytics_positions": "every consumer's position (one row per analytics table)",
    "lock_silent_factories": "the reaper's sweep over the factories, in key order (one row per worker host)",
}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _unbounded(plan: dict[str, Any]) -> list[str]:
    """The scans of a table with nothing to bound them: a sequential scan, or an index
    scan without an index condition (the whole index in order)."""
    out = []
    for node in _nodes(plan):
        kind = node["Node Type"]
        table = node.get("Relation Name")
        if kind == "Seq Scan" or (kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node):
            index = f" using {node['Index Name']}" if "Index Name" in node else ""
            out.append(f"{kind} on {table}{index}")
    return out


def test_no_named_query_plans_a_walk_over_a_whole_table(pg_database: str) -> None:
    found = {}
    with psycopg.connect(pg_database, autocommit=True) as conn:
        for name in sorted(queries("postgres")):
            statement = prepared_query(name)
            if statement is None or name in READS_EVERYTHING:
                continue
            with conn.transaction(force_rollback=True):
                for setting in WRITE_BEGIN[1:]:
                    conn.execute(setting)
                conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                conn.execute(statement.prepare)
                nulls = ", ".join(["NULL"] * len(statement.params))
                call = f"{statement.statement}({nulls})" if nulls else statement.statement
                [[explained]] = conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {call}").fetchall()
                conn.execute(f"DEALLOCATE {statement.statement}")
            unbounded = _unbounded(explained[0]["Plan"])
            if unbounded:
                found[name] = unbounded
    assert found == {}
