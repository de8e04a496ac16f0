"""SQLite's side of test_query_plans: no named query scans a whole table where an index
could find its rows (``EXPLAIN QUERY PLAN`` on a freshly migrated, empty database, where
SQLite has no statistics and plans by its rules alone).

A ``SCAN <table>`` visits every row; ``SCAN <table> USING INDEX`` walks an index from
one end. Both are allowed only where reading everything is the point, or where the walk
is in the order asked for and stops early (a claim takes the first jobs in claim order:
``ORDER BY ... LIMIT``; "is anything claimable" stops at the first claimable row), which
is also what PostgreSQL does for them."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from adapters.sql import queries
from adapters.store.migrate import migrate_sqlite
from tests.contract.test_query_plans import READS_EVERYTHING

WALKS_IN_ORDER = {
    "lock_claimable_any": "the first jobs in claim order, across tenants (LIMIT)",
    "guard_hand_over": "whether any job is claimable: stops at the first one",
    "tenants_with_work": "a loose index scan: the first probe starts at the lowest tenant",
}
_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _walks(conn: sqlite3.Connection, sql: str, aliases: dict[str, str]) -> list[str]:
    params = {name: None for name in _PARAM.findall(sql)}
    rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    out = []
    for *_, detail in rows:
        match = re.match(r"SCAN (\w+)", detail)
        if match and aliases.get(match.group(1)) is not None:
            out.append(detail)
    return out


def _aliases(sql: str, tables: set[str]) -> dict[str, str]:
    """Every name a table goes by in ``sql``: its own, and ``FROM fleet_queue q``'s q."""
    found = {t: t for t in tables}
    for table, alias in re.findall(r"\b(fleet_\w+|fleetlog_\w+)\s+(?:AS\s+)?([a-z]\w*)\b", sql):
        if table in tables and alias.upper() not in {"WHERE", "ON", "SET", "JOIN", "ORDER", "GROUP"}:
            found[alias] = table
    return found


def test_no_named_sqlite_query_scans_a_whole_table(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    migrate_sqlite(path)
    found = {}
    with sqlite3.connect(path) as conn:
        tables = _tables(conn)
        for name, sql in sorted(queries("sqlite").items()):
            if name in READS_EVERYTHING or name in WALKS_IN_ORDER:
                continue
            statements = [s for s in sql.split(";") if s.strip()]
            walks = [w for s in statements for w in _walks(conn, s, _aliases(s, tables))]
            if walks:
                found[name] = walks
    assert found == {}


def test_the_claim_order_walks_are_what_they_say(tmp_path: Path) -> None:
    """The queries allowed to walk do walk an index (not the table), and the loose index
    scan's later probes are searches."""
    path = tmp_path / "fleet.sqlite"
    migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        tables = _tables(conn)
        for name in WALKS_IN_ORDER:
            sql = queries("sqlite")[name]
            for walk in _walks(conn, sql, _aliases(sql, tables)):
                if name != "guard_hand_over":
                    assert "USING INDEX" in walk or "USING COVERING INDEX" in walk, (name, walk)
        sql = queries("sqlite")["tenants_with_work"]
        plan = [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, dict.fromkeys(_PARAM.findall(sql)))]
        probe = "SEARCH q USING INDEX fleet_queue_tenant_order (tenant>?)"
        assert any(p.startswith(probe) for p in plan), plan
