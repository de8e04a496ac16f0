"""The README's "For analysts" section stays true: its column tables list exactly what
ClickHouse has (and the raw tables' meanings are ``DESCRIPTIONS``), and every example
query runs, read-only as through ``fleetlog analytics sql``, on a history built through
the fleet and copied by the real consumer, and answers what that history says.

The history starts about two hours before the real now (the queries look back from
ClickHouse's ``now()``), within one UTC hour:

- acme/render (priority high): J1 succeeds (m-large, $0.50), J2 succeeds with interim
  usage only (m-small, $0.05), J5 is reaped twice (from f-a, then from f-b), after which
  both zombies write under their old leases: f-a twice (succeed, checkpoint), f-b once
  (fail).
- acme/index (priority low): J3 fails with a retryable timeout on f-b (m-small, $0.01),
  then succeeds on f-a (m-small, $0.02); J4 fails with bad_input, not retryable, and is
  dead-lettered.
- globex/render (priority critical): J7 succeeds (m-large, $1.25).
- globex/ingest: J6 is leased and started by f-b, then silent (its lease is a day long).
- f-a and f-b heartbeat once (fleet-wide factory events, tenant '').
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from adapters.analytics.analytics import ClickHouseAnalytics
from coordinator.analytics import AnalyticsConsumer
from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from domain.factory import FactoryReport
from domain.job.spec import ErrorInfo, RunInsights
from projections.analytics.columns import DESCRIPTIONS
from tests.analytics.conftest import Ch
from tests.analytics.test_consumer import drain
from tests.support import FakeClock, build_fleet, fleet_wide, sqlite_settings, tenant

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## For analysts"
DOCUMENTED = ("fleet_events", "job_runs", "run_insights", "jobs_latest", "tenant_hourly_v", "model_daily_v")
QUERIABLE = (*DOCUMENTED, "tenant_hourly", "model_daily")
QUERIED = re.compile(rf"\bfleetlog\.({'|'.join(QUERIABLE)})\b")
"""A table named as the README names it: in the database ``fleetlog``."""

ACME, GLOBEX = tenant("acme"), tenant("globex")
WORKER = fleet_wide("worker")

# --------------------------------------------------------------- the README


def section() -> str:
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + len(SECTION) + 1)
    return text[start : None if end < 0 else end]


def examples() -> dict[str, str]:
    """Question heading -> SQL, for every ```sql block of the section (each under its own
    #### heading)."""
    out: dict[str, str] = {}
    heading = None
    lines = iter(section().splitlines())
    for line in lines:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            body = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                body.append(inner)
            if line.strip() == "```sql":
                assert heading is not None and heading not in out, f"one ```sql block per heading: {heading}"
                out[heading] = "\n".join(body)
    return out


def column_tables() -> dict[str, list[tuple[str, str, str]]]:
    """Table -> (column, type, meaning) rows of the section's #### `table` listings."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in section().splitlines():
        heading = re.fullmatch(r"#### `(\w+)`.*", line)
        if heading:
            current = heading[1]
            out[current] = []
            continue
        cells = re.fullmatch(r"\| `(\w+)` \| (.+?) \| (.+) \|", line)
        if cells and current is not None:
            out[current].append((cells[1], cells[2], cells[3]))
        elif line.startswith("#"):
            current = None
    return out


def the(question: str) -> str:
    """The example whose heading contains ``question``."""
    found = [sql for heading, sql in examples().items() if question in heading]
    assert len(found) == 1, f"no single example about {question!r}: {list(examples())}"
    return found[0]


# --------------------------------------------------------------- the history


@pytest.fixture
def clock() -> FakeClock:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return FakeClock(hour - timedelta(hours=2) + timedelta(minutes=1))


@pytest.fixture
def fleet(tmp_path: Path, clock: FakeClock) -> Iterator[Fleet]:
    # SQLite only: the queries read ClickHouse, whatever store the log is in.
    app = build_fleet(sqlite_settings(tmp_path / "data"), clock)
    try:
        yield app
    finally:
        app.close()


def claim(fleet: Fleet, factory: str, queue: str, lease: float, *, start: bool = False) -> dict[UUID, int]:
    got = fleet.claim(
        WORKER,
        ClaimRequest(factory_id=factory, queues=(queue,), max_jobs=10, lease_seconds=lease, start=start),
    )
    return {c.job.id: c.epoch for c in got}


def stale(write: Any) -> None:
    with pytest.raises(Exception, match=r"(?i)stale|epoch"):
        write()


def history(fleet: Fleet, clock: FakeClock) -> dict[str, UUID]:
    for factory in ("f-a", "f-b"):
        fleet.heartbeat(WORKER, FactoryReport(factory_id=factory, heartbeat_timeout_seconds=86_400))

    def submit(who: Any, queue: str, priority: str, lease: float = 60.0) -> UUID:
        spec = {"queue": queue, "priority": priority, "lease_seconds": lease, "payload": {}}
        return fleet.submit(who, spec).job.id

    j = {
        "J1": submit(ACME, "render", "high"),
        "J2": submit(ACME, "render", "high"),
        "J5": submit(ACME, "render", "high"),
        "J3": submit(ACME, "index", "low"),
        "J4": submit(ACME, "index", "low"),
        "J7": submit(GLOBEX, "render", "critical"),
    }
    clock.advance(10)
    first = claim(fleet, "f-a", "render", 30)  # J1, J2, J5, J7 waited 10 s
    assert set(first) == {j["J1"], j["J2"], j["J5"], j["J7"]}
    fleet.report_insights(
        WORKER,
        j["J2"],
        first[j["J2"]],
        RunInsights(model="m-small", tokens_in=300, tokens_out=50, cost_usd=0.05),
    )
    clock.advance(15)
    large = RunInsights(model="m-large", tokens_in=1000, tokens_out=200, tokens_cached=400, cost_usd=0.5)
    fleet.succeed(WORKER, j["J1"], first[j["J1"]], result={}, insights=large)
    fleet.succeed(WORKER, j["J2"], first[j["J2"]], result={})  # its interim usage counts
    dearer = RunInsights(model="m-large", tokens_in=2000, tokens_out=400, cost_usd=1.25)
    fleet.succeed(WORKER, j["J7"], first[j["J7"]], result={}, insights=dearer)

    clock.advance(45)  # J5's lease ran out 30 s after the claim
    fleet.reaper.run_once()  # J5 expires (from f-a)
    index = claim(fleet, "f-b", "index", 600)  # J3, J4 waited 70 s
    assert set(index) == {j["J3"], j["J4"]}
    clock.advance(5)
    timeout = ErrorInfo(kind="timeout", message="slow", retryable=True)
    small = RunInsights(model="m-small", tokens_in=100, tokens_out=10, cost_usd=0.01)
    fleet.fail(WORKER, j["J3"], index[j["J3"]], timeout, insights=small)
    fleet.fail(WORKER, j["J4"], index[j["J4"]], ErrorInfo(kind="bad_input", message="no", retryable=False))

    clock.advance(5)
    second = claim(fleet, "f-b", "render", 30)  # J5 again
    assert set(second) == {j["J5"]}
    retry = claim(fleet, "f-a", "index", 600)  # J3's retry is due
    assert set(retry) == {j["J3"]}
    clock.advance(10)
    fleet.succeed(
        WORKER,
        j["J3"],
        retry[j["J3"]],
        result={},
        insights=RunInsights(model="m-small", tokens_in=150, cost_usd=0.02),
    )

    clock.advance(30)
    fleet.reaper.run_once()  # J5 expires again (from f-b)
    stale(lambda: fleet.succeed(WORKER, j["J5"], first[j["J5"]], result={}))
    stale(lambda: fleet.checkpoint(WORKER, j["J5"], first[j["J5"]], {"page": 1}))
    stale(lambda: fleet.fail(WORKER, j["J5"], second[j["J5"]], timeout))

    clock.advance(10)
    j["J6"] = submit(GLOBEX, "ingest", "medium", lease=86_400)
    assert set(claim(fleet, "f-b", "ingest", 86_400, start=True)) == {j["J6"]}  # then silence
    return j


@pytest.fixture
def copied(fleet: Fleet, ch: Ch, clock: FakeClock) -> dict[str, UUID]:
    """The history, copied into the test's ClickHouse database by the real consumer."""
    jobs = history(fleet, clock)
    consumer = AnalyticsConsumer(
        fleet.ctx.store, ClickHouseAnalytics(ch.client, ch.settings), clock, member="test"
    )
    try:
        assert drain(consumer) > 0
    finally:
        consumer.close()
    return jobs


def run(ch: Ch, sql: str) -> list[dict[str, Any]]:
    """A README query as ``fleetlog analytics sql`` runs it (read-only), on this test's
    database instead of ``fleetlog``."""
    columns, rows = ch.sink.query(QUERIED.sub(lambda m: f"{ch.settings.database}.{m[1]}", sql))
    return [dict(zip(columns, row, strict=True)) for row in rows]


# --------------------------------------------------------------- the tests


def test_the_section_lists_every_table_with_exactly_its_columns_and_types(ch: Ch) -> None:
    listed = column_tables()
    assert list(listed) == list(DOCUMENTED)
    for table in DOCUMENTED:
        actual = ch.rows(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position",
            db=ch.settings.database,
            t=table,
        )
        assert [(name, kind) for name, kind, _ in listed[table]] == actual, table
    for table, meanings in DESCRIPTIONS.items():
        documented = {name: meaning for name, _, meaning in listed[table]}
        for column, meaning in meanings.items():
            assert documented[column] == meaning, f"{table}.{column}: README differs from DESCRIPTIONS"


def test_every_example_runs_and_answers_something(ch: Ch, copied: dict[str, UUID]) -> None:
    queries = examples()
    assert len(queries) == 10
    for question, sql in queries.items():
        assert QUERIED.search(sql), f"{question}: name tables as fleetlog.<table>"
        rows = run(ch, sql)
        assert rows, f"{question}: no rows"


def test_the_examples_answer_what_the_history_says(ch: Ch, copied: dict[str, UUID]) -> None:
    j = copied
    # The job reaped twice, by both its holders
    reaped = run(ch, the("reaped more than once"))
    assert [(r["job_id"], r["expiries"], r["holders"]) for r in reaped] == [(j["J5"], 2, "f-a, f-b")]
    # Cost per tenant and model: the usage reported, the interim one included
    spend = run(ch, the("spend on each model"))
    assert [(r["tenant"], r["model"], r["runs"], r["tokens_in"], r["cost_usd"]) for r in spend] == [
        ("globex", "m-large", 1, 2000, 1.25),
        ("acme", "m-large", 1, 1000, 0.5),
        ("acme", "m-small", 3, 550, 0.08),
    ]
    assert spend[1]["tokens_cached"] == 400
    # The most expensive job first
    dearest = run(ch, the("cost the most"))
    assert [(r["job_id"], r["cost_usd"]) for r in dearest[:2]] == [(j["J7"], 1.25), (j["J1"], 0.5)]
    assert {r["job_id"]: r["runs"] for r in dearest}[j["J3"]] == 2
    # Failures by factory and kind
    failures = run(ch, the("errors does each factory"))
    assert [(r["factory_id"], r["error_kind"], r["failures"], r["retryable"]) for r in failures] == [
        ("f-b", "bad_input", 1, 0),
        ("f-b", "timeout", 1, 1),
    ]
    # Stale writes, by the factory that held the epoch they presented
    refused = run(ch, the("refused as stale"))
    assert [(r["factory_id"], r["command"], r["refused"], r["jobs"]) for r in refused] == [
        ("f-a", "checkpoint", 1, 1),
        ("f-a", "succeed", 1, 1),
        ("f-b", "fail", 1, 1),
    ]
    # The silent leased job
    silent = run(ch, the("silent for over an hour"))
    assert [(r["job_id"], r["state"], r["factory_id"]) for r in silent] == [(j["J6"], "running", "f-b")]
    # acme's hour
    hours = run(ch, the("`acme` get done each hour"))
    totals = {
        k: sum(r[k] for r in hours) for k in ("submitted", "succeeded", "failed", "dead_lettered", "reaped")
    }
    assert totals == {"submitted": 5, "succeeded": 3, "failed": 2, "dead_lettered": 1, "reaped": 2}
    assert sum(r["stale_refused"] for r in hours) == 3 and sum(r["runs"] for r in hours) == 7
    # Retry rates: J3 of acme/index, J5 of acme/render
    rates = {(r["tenant"], r["queue"]): (r["jobs"], r["retried"]) for r in run(ch, the("retries most often"))}
    assert rates == {
        ("acme", "index"): (2, 1),
        ("acme", "render"): (3, 1),
        ("globex", "render"): (1, 0),
        ("globex", "ingest"): (1, 0),
    }
    # Waits: acme/index waited 70 s before its first lease
    waits = {(r["tenant"], r["queue"]): r["wait_max_s"] for r in run(ch, the("wait longest"))}
    assert waits[("acme", "index")] == 70.0 and waits[("globex", "render")] == 10.0
    by_priority = {r["priority"]: r["runs"] for r in run(ch, the("at each priority"))}
    assert by_priority == {0: 1, 10: 4, 30: 3}
